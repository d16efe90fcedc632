"""Delivery: a bounded inbound queue, one dispatch thread, one worker thread per notifier.

The request path only calls :meth:`Pipeline.submit`, which never blocks: a ``qsize`` check
and a ``SimpleQueue.put``. Building alerts (formatting tracebacks), throttling, logging and
signals happen on the dispatch thread; each notifier sends on its own thread, so a slow or
dead notifier never delays another. Threads start lazily, restart in a forked child (which
never re-sends its parent's queue), and are flushed and stopped at interpreter exit.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import logging
import math
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeAlias

from .alert import Alert, PendingAlert
from .dispatch import Clock, Dispatcher, Throttle
from .flood import FloodGuard
from .notifiers.base import Notifier
from .signals import alert_dropped, alert_failed, alert_sent, send_safely, weak_sender

logger = logging.getLogger("flask_alerting")

#: Something the dispatch thread turns into an alert: an Alert, or a callable building one
#: (so that formatting happens off the request path). ``None`` means "nothing to send".
Item: TypeAlias = Alert | Callable[[], Alert | None]


@contextmanager
def guard(what: str) -> Iterator[None]:
    """Log and swallow any exception: a bug in alerting must never break the app."""
    try:
        yield
    except Exception:
        logger.exception("flask-alerting: internal error while %s", what)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for transient delivery failures.

    Attempt ``n`` (1-based) waits ``min(cap, initial * factor ** (n - 1))`` seconds; an
    alert keeps being retried while less than ``give_up_after`` seconds have passed since
    its first failure.
    """

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    give_up_after: float = 3600.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.cap, self.initial * self.factor ** max(0, attempt - 1)))

    def should_retry(self, first_failure: float, now: float) -> bool:
        """Whether an alert that first failed at ``first_failure`` is still worth retrying."""
        return now - first_failure < self.give_up_after


class _Marker:
    """Control items on the inbound queue, handled in order with the alerts."""

    def __init__(self, action: str, then: Callable[[], object] | None = None) -> None:
        self.action = action
        self.then = then
        self.done = threading.Event()


_STOP = _Marker("stop")


class _DropCounter:
    """Counts lost alerts; logs the first of a burst, then at most once a minute."""

    def __init__(self, where: str, clock: Clock) -> None:
        self.where = where
        self.clock = clock
        self.total = 0
        self._last_log: float | None = None
        self._unlogged = 0

    def add(self, alert: Alert | None, reason: str, sender: Any) -> None:
        self.total += 1
        self._unlogged += 1
        now = self.clock()
        if self._last_log is None or now - self._last_log >= 60.0:
            logger.warning(
                "flask-alerting: %d alert(s) dropped (%s, %s); the next delivered alert "
                "will say how many",
                self._unlogged,
                self.where,
                reason,
            )
            self._last_log = now
            self._unlogged = 0
        if alert is not None:
            send_safely(alert_dropped, sender, alert=alert, reason=reason)


class NotifierWorker:
    """Delivers alerts to one notifier, in order, on its own daemon thread.

    :param notifier: the notifier.
    :param sender: the Flask app (signal sender).
    :param queue_size: bound of this worker's queue.
    :param retry: backoff for transient failures.
    :param clock: monotonic seconds (for retry bookkeeping).
    :param wait: ``wait(seconds)`` used between retries; default waits on an event that
        :meth:`nudge` and :meth:`stop` set. Tests inject one that advances a fake clock.
    """

    def __init__(
        self,
        notifier: Notifier,
        *,
        sender: Any,
        queue_size: int,
        retry: RetryPolicy,
        clock: Clock = time.monotonic,
        wait: Callable[[float], object] | None = None,
        thread_name: str = "flask-alerting-notifier",
    ) -> None:
        self.notifier = notifier
        self.sender = sender
        self.queue_size = queue_size
        self.retry = retry
        self.clock = clock
        self._custom_wait = wait
        self.thread_name = thread_name
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[Alert] = collections.deque()
        self._busy = False
        self._untold_drops = 0
        self._stopping = False
        self._retiring = False
        self._nudge = threading.Event()
        self._thread: threading.Thread | None = None
        self.drops = _DropCounter(f"queue of {self.notifier.name}", self.clock)
        self.sent = 0
        self.failed = 0
        self.refreshed = 0
        self._next_refresh: float | None = None
        self._refresh_failing = False

    # -- producer side (dispatch thread) ------------------------------------------------

    def put(self, alert: Alert) -> bool:
        """Queue ``alert``; False (and counted) when the queue is full."""
        with self._cond:
            if len(self._queue) >= self.queue_size:
                self._untold_drops += 1
                full = True
            else:
                self._queue.append(alert)
                self._cond.notify()
                full = False
            if self._thread is None and not self._stopping:
                thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
                if _start_thread(thread):
                    self._thread = thread
        if full:
            self.drops.add(alert, "queue full", self.sender)
        return not full

    def count_drop(self) -> None:
        """An alert meant for everybody was lost upstream: tell it in the next message."""
        with self._cond:
            self._untold_drops += 1

    def nudge(self) -> None:
        """Cut a retry backoff short: try again now (and look whether a refresh is due)."""
        self._nudge.set()
        with self._cond:
            self._cond.notify_all()

    @property
    def depth(self) -> int:
        """Alerts queued or in flight."""
        return len(self._queue) + self._busy

    def wait_idle(self, timeout: float | None) -> bool:
        """Block until everything queued was delivered or given up; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    @property
    def has_thread(self) -> bool:
        """Whether this worker's delivery thread was started (and has not ended)."""
        return self._thread is not None and self._thread.is_alive()

    def deliver_inline(self, deadline: float) -> None:
        """Deliver what is queued on the calling thread, one attempt each, until
        ``deadline``: for when the delivery thread could not be started (at interpreter
        exit, Python 3.12 refuses new threads)."""
        while not self.has_thread and time.monotonic() < deadline:
            with self._cond:
                if not self._queue:
                    return
                alert = self._queue.popleft()
                self._busy = True
                self._inflight = alert
                stopping, self._stopping = self._stopping, True  # no retry waits inline
            try:
                with guard(f"delivering through {self.notifier.name}"):
                    self._deliver(alert)
            finally:
                with self._cond:
                    self._stopping = stopping
                    self._busy = False
                    self._inflight = None
                    self._cond.notify_all()

    def retire(self) -> None:
        """Deliver what is queued, then end the thread and close the notifier, without
        waiting here (the app was freed). Retries still run their course."""
        with self._cond:
            self._retiring = True
            self._cond.notify_all()
            idle = self._thread is None and not self._queue
        if idle:
            with guard(f"closing {self.notifier.name}"):
                self.notifier.close()

    def stop(self, timeout: float | None) -> tuple[list[Alert], Alert | None]:
        """Stop the thread; return the alerts it did not deliver, and the one it may
        still be sending (its outcome is unknown: the thread is a daemon left to it)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._nudge.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
            inflight = self._inflight if self._busy else None
        return left, inflight

    # -- consumer side (own thread) -----------------------------------------------------

    _inflight: Alert | None = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping and not self._retiring:
                    timeout = self._refresh_timeout()
                    if timeout is not None and timeout <= 0:
                        break  # idle, and the notifier's refresh is due
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                if not self._queue and self._retiring:  # everything was delivered
                    self._thread = None
                    break
                alert = self._queue.popleft() if self._queue else None
                self._busy = True
                self._inflight = alert
            try:
                with guard(f"delivering through {self.notifier.name}"):
                    if alert is None:
                        self._refresh()
                    else:
                        self._deliver(alert)
            except BaseException:
                # SystemExit or the like from a signal receiver: this thread is the
                # notifier's only one and must live on.
                logger.exception(
                    "flask-alerting: internal error while delivering through %s",
                    self.notifier.name,
                )
            finally:
                with self._cond:
                    self._busy = False
                    self._inflight = None
                    self._cond.notify_all()
        with guard(f"closing {self.notifier.name}"):
            self.notifier.close()

    def _refresh_timeout(self) -> float | None:
        """Seconds until the notifier's next :meth:`~Notifier.refresh` (called with the
        condition held); None when it has nothing to refresh."""
        interval = self.notifier.refresh_interval
        try:
            pending = interval is not None and self.notifier.pending_refresh()
        except Exception:
            logger.exception("flask-alerting: %s: pending_refresh() failed", self.notifier.name)
            pending = False
        if not pending or interval is None:
            self._next_refresh = None
            return None
        now = self.clock()
        if self._next_refresh is None:
            self._next_refresh = now + interval
        return self._next_refresh - now

    def _refresh(self) -> None:
        notifier = self.notifier
        self._next_refresh = self.clock() + (notifier.refresh_interval or 0.0)
        try:
            notifier.refresh()
        except Exception as exc:
            if not self._refresh_failing:
                logger.warning(
                    "flask-alerting: %s could not refresh what it delivered: %s (tried "
                    "again every %g s)",
                    notifier.name,
                    notifier.describe_error(exc),
                    notifier.refresh_interval,
                )
            self._refresh_failing = True
        else:
            if self._refresh_failing:
                logger.warning("flask-alerting: %s refreshes again", notifier.name)
            self._refresh_failing = False
            self.refreshed += 1

    def _wait(self, seconds: float) -> None:
        if self._custom_wait is not None:
            self._custom_wait(seconds)
        else:
            self._nudge.wait(seconds)
        self._nudge.clear()

    def _deliver(self, alert: Alert) -> None:
        first_failure: float | None = None
        attempt = 0
        while True:
            told = self._untold_drops
            outgoing = alert.replace(dropped=alert.dropped + told) if told else alert
            try:
                self.notifier.send(outgoing)
            except BaseException as exc:
                # A notifier raising SystemExit (a library calling sys.exit()) must not end
                # this thread nor lose the alert silently: it is a failure like any other.
                # Only a KeyboardInterrupt on the main thread (delivering inline at exit)
                # is the user's; on our own threads it can only come from the notifier.
                if isinstance(exc, KeyboardInterrupt) and _on_main_thread():
                    raise
                attempt += 1
                now = self.clock()
                if first_failure is None:
                    first_failure = now
                transient = self.notifier.is_transient(exc)
                # A server may say how long to wait (HTTP Retry-After): at least that.
                delay = self.retry.delay(attempt)
                asked = _retry_after(exc)
                will_retry = (
                    transient
                    and not self._stopping
                    and self.retry.should_retry(first_failure, now)
                    and (asked is None or self.retry.should_retry(first_failure, now + asked))
                )
                if asked is not None:
                    delay = max(delay, asked)
                reason = self.notifier.describe_error(exc)
                if attempt == 1 or not will_retry:
                    logger.warning(
                        "flask-alerting: %s could not deliver %r: %s (%s)",
                        self.notifier.name,
                        alert.title,
                        reason,
                        "will retry"
                        if will_retry
                        else ("gave up" if transient else "permanent failure, not retried"),
                    )
                send_safely(
                    alert_failed,
                    self.sender,
                    notifier=self.notifier,
                    alert=alert,
                    exception=exc,
                    will_retry=will_retry,
                )
                if not will_retry:
                    self.failed += 1
                    return
                self._wait(delay)
                if self._stopping:
                    # shutdown() reports what is left; give the alert back to the queue.
                    with self._cond:
                        self._queue.appendleft(alert)
                    return
            else:
                self.sent += 1
                interval = self.notifier.refresh_interval
                if interval is not None and self._next_refresh is None:
                    # The clock of a refresh starts with the delivery it would repeat.
                    self._next_refresh = self.clock() + interval
                if told:
                    with self._cond:
                        self._untold_drops -= told
                send_safely(alert_sent, self.sender, notifier=self.notifier, alert=outgoing)
                return


def _retry_after(exc: BaseException) -> float | None:
    """The delay ``exc`` asks for (``TransientError(retry_after=...)``), if any."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


_pipelines: weakref.WeakSet[Pipeline] = weakref.WeakSet()

#: Alerts dropped by a full inbound queue that are later sent as ``alert_dropped``; past
#: this many per batch they are only counted and logged.
MAX_DROPS_SIGNALLED = 100


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _start_thread(thread: threading.Thread) -> bool:
    """Start ``thread``; False (logged) when Python refuses, as it does at exit (3.12)."""
    try:
        thread.start()
    except RuntimeError as exc:
        logger.warning("flask-alerting: could not start thread %s: %s", thread.name, exc)
        return False
    return True


def _drain(inbound: queue.SimpleQueue[Any]) -> list[Any]:
    items = []
    while True:
        try:
            items.append(inbound.get_nowait())
        except queue.Empty:
            return items

#: Seconds the dispatch thread lets alerts gather after waking up (see Pipeline._run).
#: Measured on a 2-core VM: every wake-up of a second Python thread costs the request
#: thread far more than the work it does (a GIL hand-over and two OS wake-ups), so
#: batching by 100 ms is what keeps an error storm from slowing the application
#: (benchmarks/bench_errors.py). flush() and shutdown() cut the wait short.
BATCH_DELAY = 0.1


class Pipeline:
    """Inbound queue -> dispatch thread (build, signal, log, throttle) -> notifier workers.

    :param sender: the Flask app (held weakly: the threads never keep it alive).
    :param name: used in thread names.
    :param notifiers: where alerts go.
    :param queue_size: bound of the inbound queue and of each notifier's queue.
    :param throttle_seconds: throttle window; 0 disables throttling.
    :param retry: backoff policy for transient failures.
    :param log: called on the dispatch thread with every raised alert.
    :param log_logged: called instead of ``log`` for alerts their source already logged
        (see :class:`~flask_alerting.alert.PendingAlert`); None: nothing to write.
    :param wants_logged: whether ``log_logged`` would write anything now.
    :param clock: monotonic seconds.
    :param shutdown_timeout: what the exit hook spends flushing.
    :param rate_limit: alerts a minute that leave one by one (the flood guard, before
        every notifier's queue); None or 0: no limit.
    :param labels: ``app`` and ``host`` labels, for the flood summaries.
    """

    def __init__(
        self,
        *,
        sender: Any,
        name: str,
        notifiers: Sequence[Notifier],
        queue_size: int,
        throttle_seconds: float,
        retry: RetryPolicy,
        log: Callable[[Alert], None],
        log_logged: Callable[[Alert], None] | None = None,
        wants_logged: Callable[[], bool] | None = None,
        clock: Clock = time.monotonic,
        shutdown_timeout: float = 5.0,
        rate_limit: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.sender = weak_sender(sender)
        self.name = name
        self.rate_limit = rate_limit
        self.labels = dict(labels or {})
        self.notifiers = tuple(notifiers)
        self.queue_size = queue_size
        self.throttle_seconds = throttle_seconds
        self.retry = retry
        self.log = log
        self.log_logged = log_logged
        self.wants_logged = wants_logged
        self.clock = clock
        self.shutdown_timeout = shutdown_timeout
        self.closed = False
        self.after_close = 0
        self._reset()
        _pipelines.add(self)

    def _reset(self) -> None:
        """Fresh queues, locks and threads: at creation and in a forked child."""
        self._lock = threading.Lock()
        self._inbound: queue.SimpleQueue[Item | _Marker] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._inline_lock = threading.Lock()
        self._overflow_counts: dict[str, tuple[int, datetime]] = {}
        self._dropped_items: list[Item] = []
        self._running = False
        self._thread: threading.Thread | None = None
        self.drops = _DropCounter("inbound queue", self.clock)
        self.workers = [
            NotifierWorker(
                notifier,
                sender=self.sender,
                queue_size=self.queue_size,
                retry=self.retry,
                clock=self.clock,
                thread_name=f"flask-alerting-{self.name}-{notifier.name}-{i}",
            )
            for i, notifier in enumerate(self.notifiers)
        ]
        self.dispatcher = Dispatcher(
            sender=self.sender,
            throttle=Throttle(self.throttle_seconds, self.clock),
            deliver=self._deliver,
            log=self.log,
            log_logged=self.log_logged,
            wants_logged=self.wants_logged,
            guard=FloodGuard(self.rate_limit, self.clock, labels=self.labels)
            if self.rate_limit
            else None,
        )

    # -- hot path -----------------------------------------------------------------------

    def submit(self, item: Item) -> None:
        """Hand an alert (or a builder of one) to the dispatch thread. Never blocks."""
        if not self._running:
            if not self._start():
                self._after_close(item)
                return
        if self._inbound.qsize() >= self.queue_size:
            self._overflow(item)
            return
        self._inbound.put(item)

    # -- slow paths ---------------------------------------------------------------------

    def _start(self) -> bool:
        with self._lock:
            if self.closed:
                return False
            if not self._running:
                thread = threading.Thread(
                    target=self._run, name=f"flask-alerting-{self.name}-dispatch", daemon=True
                )
                if _start_thread(thread):
                    self._thread = thread
                    self._running = True
        # Without a thread (it could not start) items wait in the queue; flush() and
        # shutdown() then process them on their caller's thread.
        return True

    def _after_close(self, item: Item) -> None:
        """An alert raised after shutdown(): not sent, but counted and said (once)."""
        with self._lock:
            self.after_close += 1
            first = self.after_close == 1
        if first:
            logger.warning(
                "flask-alerting: an alert was raised after shutdown() of app %r and is not "
                "sent (further ones are only counted: stats()['after_shutdown'])",
                self.name,
            )

    def _overflow(self, item: Item) -> None:
        with self._lock, guard("counting a dropped alert"):
            if isinstance(item, PendingAlert) and item.build is None:
                # A storm's bare count: kept as a number per fingerprint and merged into
                # its digest by the dispatch thread, so first + digests = all even when
                # the queue is full.
                count, _ = self._overflow_counts.get(item.fingerprint, (0, item.timestamp))
                self._overflow_counts[item.fingerprint] = (count + 1, item.timestamp)
                return
            for worker in self.workers:
                worker.count_drop()
            # Counted and logged now; signalled (and built, for receivers) later, on the
            # dispatch thread, not here on the request path.
            self.drops.add(None, "queue full", self.sender)
            if len(self._dropped_items) < MAX_DROPS_SIGNALLED:
                self._dropped_items.append(item)

    def _after_batch(self) -> None:
        """Merge counts that overflowed the queue; signal the alerts dropped by it."""
        with self._lock:
            counts, self._overflow_counts = self._overflow_counts, {}
            dropped, self._dropped_items = self._dropped_items, []
        for fingerprint, (count, timestamp) in counts.items():
            with guard("counting overflowed occurrences"):
                occurrence = PendingAlert(None, fingerprint, timestamp, logged=True)
                for _ in range(count):
                    self.dispatcher.dispatch_pending(occurrence)
        if dropped and alert_dropped.receivers:
            for item in dropped:
                with guard("signalling a dropped alert"):
                    alert = item if isinstance(item, Alert) else item()
                    if alert is not None:
                        send_safely(alert_dropped, self.sender, alert=alert, reason="queue full")

    def _deliver(self, alert: Alert) -> None:
        for worker in self.workers:
            worker.put(alert)

    def _run(self) -> None:
        inbound = self._inbound
        dispatcher = self.dispatcher
        while True:
            due: float | None = None
            with guard("emitting digests"):
                due = dispatcher.tick()
            timeout = None if due is None else max(0.0, due - self.clock())
            try:
                item = inbound.get(timeout=timeout)
            except queue.Empty:
                continue
            if not isinstance(item, _Marker):
                # The first alert of a burst is handled at once: it leaves without delay
                # and opens its throttle window, so that the rest of a storm is counted
                # cheaply. Then let the burst gather and take it in one go: one wake-up
                # of this thread (and one hand-over of the GIL) per batch instead of one
                # per alert, which is what a request thread raising alerts in a storm
                # would pay for. flush() and shutdown() cut the wait short.
                self._handle(item)
                self._wake.wait(BATCH_DELAY)
                self._wake.clear()
                try:
                    item = inbound.get_nowait()
                except queue.Empty:
                    self._after_batch()
                    continue
            while True:
                if not self._handle(item):
                    return
                try:
                    item = inbound.get_nowait()
                except queue.Empty:
                    break
            self._after_batch()

    def _handle(self, item: Item | _Marker) -> bool:
        """Process one inbound item; False for the stop marker."""
        dispatcher = self.dispatcher
        if isinstance(item, _Marker):
            if item is _STOP:
                return False
            if item.action == "retire":
                self._retired(item)
                return False
            # Digests whose window ended are due now: hand them over before the marker is
            # done, so that flush() waits for them too.
            with guard("emitting digests"):
                if item.action == "drain":
                    dispatcher.drain()
                else:
                    dispatcher.tick()
            item.done.set()
            return True
        with guard("building an alert"):
            if isinstance(item, PendingAlert):
                dispatcher.dispatch_pending(item)
            else:
                alert = item if isinstance(item, Alert) else item()
                if alert is not None:
                    dispatcher.dispatch(alert)
        return True

    # -- control ------------------------------------------------------------------------

    def retire(self, then: Callable[[], object] | None = None) -> None:
        """The app is gone: deliver what it raised (pending digests included) on the
        threads, then end them, close the notifiers and call ``then``. Never waits: this
        runs wherever the app happened to be freed."""
        with self._lock:
            closed, self.closed = self.closed, True
            running = self._running and not closed
            if running:
                self._inbound.put(_Marker("retire", then))
                self._wake.set()
        if running:
            return
        if closed:  # shut down already: notifiers closed, nothing left
            if then is not None:
                with guard("retiring a pipeline"):
                    then()
            return
        left = [item for item in _drain(self._inbound) if not isinstance(item, _Marker)]
        if left:  # only when the dispatch thread could not be started
            logger.warning(
                "flask-alerting: app %r was freed with %d alert(s) not delivered",
                self.name,
                len(left),
            )
        for worker in self.workers:
            worker.retire()
        if then is not None:
            with guard("retiring a pipeline"):
                then()

    def _retired(self, marker: _Marker) -> None:
        """The dispatch thread's last step after :meth:`retire` (see there)."""
        self._after_batch()
        with guard("emitting digests"):
            self.dispatcher.drain()
        with self._lock:
            self._running = False
        for worker in self.workers:
            worker.retire()
        if marker.then is not None:
            with guard("retiring a pipeline"):
                marker.then()
        marker.done.set()

    def _marker(self, action: str, timeout: float) -> bool:
        if not self._running:
            return True
        marker = _Marker(action)
        self._inbound.put(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    def flush(self, timeout: float = 5.0, *, drain: bool = False) -> bool:
        """Wait until everything submitted so far was delivered or given up.

        Backing-off retries are tried again at once. With ``drain``, pending digests are
        emitted first. True when nothing is left undelivered.
        """
        deadline = time.monotonic() + timeout
        if self._running:
            if not self._marker("drain" if drain else "flush", timeout):
                return False
        else:
            self._process_inline(drain)
        ok = True
        for worker in self.workers:
            if not worker.has_thread:
                worker.deliver_inline(deadline)
            worker.nudge()
            remaining = max(0.0, deadline - time.monotonic())
            ok = worker.wait_idle(remaining) and ok
        return ok

    def _process_inline(self, drain: bool) -> None:
        """The dispatch step on the caller's thread, for when the dispatch thread could
        not be started: what was submitted is never silently left in the queue."""
        with self._inline_lock:  # one caller at a time
            for item in _drain(self._inbound):
                if not isinstance(item, _Marker):
                    self._handle(item)
            self._after_batch()
            with guard("emitting digests"):
                if drain:
                    self.dispatcher.drain()
                else:
                    self.dispatcher.tick()

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush (digests included), stop the threads, close the notifiers.

        Logs and signals (``alert_dropped``, reason ``"shutdown"``) what could not be
        delivered. True when nothing was lost. Safe to call more than once.
        """
        if timeout is None:
            timeout = self.shutdown_timeout
        with self._lock:
            if self.closed:
                return True
        deadline = time.monotonic() + timeout

        def remaining() -> float:
            # A short floor lets idle threads notice the stop even when flushing used it all;
            # threads still blocked in a notifier are daemons and are not waited for longer.
            return max(0.05, deadline - time.monotonic())

        delivered = self.flush(timeout, drain=True)
        with self._lock:
            self.closed = True
            running, self._running = self._running, False
        if running:
            self._inbound.put(_STOP)
            self._wake.set()
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(remaining())
        lost: list[tuple[Notifier, Alert]] = []
        # Submitted after the flush, while stopping: never delivered, but never silent.
        late = [item for item in _drain(self._inbound) if not isinstance(item, _Marker)]
        with guard("reporting alerts raised during shutdown"):
            for item in late:
                alert = item if isinstance(item, Alert) else item()
                if alert is not None:
                    lost += [(worker.notifier, alert) for worker in self.workers]
        for worker in self.workers:
            left, inflight = worker.stop(remaining())
            lost += [(worker.notifier, alert) for alert in left]
            if inflight is not None:
                delivered = False
                logger.warning(
                    "flask-alerting: %s was still sending %r at shutdown; whether it "
                    "arrives is unknown",
                    worker.notifier.name,
                    inflight.title,
                )
            if worker.has_thread:
                continue  # close() under a send still running could break the notifier
            with guard(f"closing {worker.notifier.name}"):
                worker.notifier.close()
        if lost:
            delivered = False
            logger.error(
                "flask-alerting: shutting down with %d alert(s) undelivered: %s",
                len(lost),
                "; ".join(f"{n.name}: {a.title!r}" for n, a in lost[:10]),
            )
            for _, alert in lost:
                send_safely(alert_dropped, self.sender, alert=alert, reason="shutdown")
        return delivered

    def stats(self) -> dict[str, Any]:
        """Counters and queue depths, for status displays."""
        return {
            "inbound": self._inbound.qsize(),
            "raised": self.dispatcher.raised,
            "suppressed": self.dispatcher.suppressed,
            "digests": self.dispatcher.digests,
            "folded": self.dispatcher.folded,
            "dropped": self.drops.total + sum(w.drops.total for w in self.workers),
            "after_shutdown": self.after_close,
            "throttle_windows": self.dispatcher.throttle.pending(),
            "notifiers": {
                w.notifier.name: {"queued": w.depth, "sent": w.sent, "failed": w.failed}
                for w in self.workers
            },
        }

    def _after_fork(self) -> None:
        # The child must not re-send what the parent had queued, nor wait on the parent's
        # threads (they do not exist here): start over, lazily.
        if not self.closed:
            self._reset()


def _after_fork_in_child() -> None:
    for pipeline in list(_pipelines):
        pipeline._after_fork()


def _shutdown_all() -> None:
    for pipeline in list(_pipelines):
        with guard("shutting down at exit"):
            pipeline.shutdown()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_shutdown_all)
