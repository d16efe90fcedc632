"""One notifier's delivery: its queue, its thread, retries with backoff, refreshes.

Each notifier gets a :class:`NotifierWorker`, so that a slow or dead notifier never
delays another. The worker delivers in order; a transient failure (see
:meth:`~flask_alerting.Notifier.is_transient`) is retried with the backoff of a
:class:`RetryPolicy` until it succeeds or the policy gives up.

An alert recorded in the durable outbox comes with its record id; once the alert is
delivered or given up, the worker calls :attr:`NotifierWorker.on_settled` with it, on its
own thread and before it takes the next alert (see :mod:`.outbox`).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable

from .._lifecycle import guard, start_thread
from ..alert import Alert
from ..dispatch import Clock
from ..notifiers.base import Notifier
from ..signals import alert_failed, alert_sent, send_safely
from .drops import DropCounter

logger = logging.getLogger("flask_alerting")


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
        sender: object,
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

    #: Called with the record id of an alert recorded in the outbox once it was delivered
    #: or given up, on this worker's thread (see :mod:`.outbox`); None: no outbox.
    on_settled: Callable[[str], None] | None = None

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        # Each alert with its outbox record id (None when it was not recorded).
        self._queue: collections.deque[tuple[Alert, str | None]] = collections.deque()
        #: Alerts that stop() left undelivered but that their outbox records keep.
        self.kept = 0
        self._busy = False
        self._untold_drops = 0
        self._stopping = False
        self._retiring = False
        self._nudge = threading.Event()
        self._thread: threading.Thread | None = None
        self.drops = DropCounter(f"queue of {self.notifier.name}", self.clock)
        self.sent = 0
        self.failed = 0
        self.refreshed = 0
        self._next_refresh: float | None = None
        self._refresh_failing = False

    # -- producer side (dispatch thread) ------------------------------------------------

    def put(self, alert: Alert, record: str | None = None) -> bool:
        """Queue ``alert``; False (and counted) when the queue is full.

        :param record: its record in the outbox, settled once it was delivered or given up.
        """
        with self._cond:
            if len(self._queue) >= self.queue_size:
                self._untold_drops += 1
                full = True
            else:
                self._queue.append((alert, record))
                self._cond.notify()
                full = False
            if self._thread is None and not self._stopping:
                thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
                if start_thread(thread):
                    self._thread = thread
        if full:
            self.drops.add(alert, "queue full", self.sender)
        return not full

    def count_drop(self, count: int = 1) -> None:
        """Alerts meant for everybody were lost upstream: tell it in the next message."""
        with self._cond:
            self._untold_drops += count

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
        self._consume(inline=True, deadline=deadline)

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
        still be sending (its outcome is unknown: the thread is a daemon left to it).

        Alerts recorded in the outbox are not returned but counted in :attr:`kept`: their
        records stay, for the next process of the store to deliver."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._nudge.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._cond:
            left = [alert for alert, record in self._queue if record is None]
            self.kept += len(self._queue) - len(left)
            self._queue.clear()
            inflight = self._inflight if self._busy else None
        return left, inflight

    def close(self, timeout: float | None) -> tuple[list[Alert], bool]:
        """:meth:`stop`, then close the notifier unless a send still runs (closing under
        it could break the notifier). Returns the alerts not delivered, and False when one
        was still being sent (logged: whether it arrives is unknown)."""
        left, inflight = self.stop(timeout)
        if inflight is not None:
            logger.warning(
                "flask-alerting: %s was still sending %r at shutdown; whether it arrives "
                "is unknown",
                self.notifier.name,
                inflight.title,
            )
        if not self.has_thread:
            with guard(f"closing {self.notifier.name}"):
                self.notifier.close()
        return left, inflight is None

    # -- consumer side (own thread) -----------------------------------------------------

    _inflight: Alert | None = None

    def _run(self) -> None:
        self._consume(inline=False)

    def _consume(self, *, inline: bool, deadline: float = math.inf) -> None:
        """The consumer loop, on the worker's thread or (``inline``) on the caller's.

        On the worker's thread it waits for alerts (and for the notifier's refresh), lets
        transient failures retry with backoff, and ends at :meth:`stop`, or once
        everything was delivered after :meth:`retire` (closing the notifier). Inline it
        never waits: it delivers what is queued, one attempt each (no retry), until the
        queue is empty, ``deadline`` (``time.monotonic()``) has passed or a thread runs.
        """
        while True:
            with self._cond:
                if inline:
                    if self.has_thread or not self._queue or time.monotonic() >= deadline:
                        return
                else:
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
                alert, record = self._queue.popleft() if self._queue else (None, None)
                self._busy = True
                self._inflight = alert  # None: a refresh
            # True: delivered or given up; False: handed back (stopping); None: unknown.
            settled: bool | None = None
            try:
                with guard(f"delivering through {self.notifier.name}"):
                    if alert is None:
                        self._refresh()
                    else:
                        settled = self._deliver(alert, retry=not inline)
                if settled is None:
                    settled = True  # an internal error, logged: the alert is given up
                if alert is not None and settled:
                    self._settle(record)
            except BaseException:
                if inline:  # the caller's own (a KeyboardInterrupt at exit)
                    raise
                # SystemExit or the like from a signal receiver: this thread is the
                # notifier's only one and must live on.
                logger.exception(
                    "flask-alerting: internal error while delivering through %s",
                    self.notifier.name,
                )
            finally:
                with self._cond:
                    if alert is not None and settled is False:
                        # shutdown() reports what is left; give the alert back to the queue.
                        self._queue.appendleft((alert, record))
                    self._busy = False
                    self._inflight = None
                    self._cond.notify_all()
        with guard(f"closing {self.notifier.name}"):
            self.notifier.close()

    def _settle(self, record: str | None) -> None:
        """Tell the outbox that the alert of ``record`` is delivered or given up (before
        this worker is idle: a flush that returns finds its records settled)."""
        if record is not None and self.on_settled is not None:
            with guard(f"settling an outbox record of {self.notifier.name}"):
                self.on_settled(record)

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

    def _deliver(self, alert: Alert, *, retry: bool) -> bool:
        """Send ``alert``; with ``retry``, a transient failure is tried again after the
        policy's delay until it succeeds, the policy gives up or :meth:`stop` is called.

        :returns: True when it was delivered or given up, False when :meth:`stop` came
            first (the caller gives it back to the queue).
        """
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
                asked = retry_after(exc)
                will_retry = (
                    transient
                    and retry
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
                    if transient and retry and self._stopping:
                        return False  # not given up: stopped (kept, or reported lost)
                    self.failed += 1
                    return True
                self._wait(delay)
                if self._stopping:
                    return False
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
                return True



def retry_after(exc: BaseException) -> float | None:
    """The delay ``exc`` asks for (``TransientError(retry_after=...)``), if any."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
