"""The pipeline of one app: a bounded inbound queue, one dispatch thread, the notifier workers.

The request path only calls :meth:`Pipeline.submit`, which never blocks: a ``qsize`` check
and a ``SimpleQueue.put``. Building alerts (formatting tracebacks), throttling, logging and
signals happen on the dispatch thread (:class:`~flask_alerting.dispatch.Dispatcher`); each
notifier sends on its own thread (:class:`~.worker.NotifierWorker`), so a slow or dead
notifier never delays another. Threads start lazily, start over in a forked child (which
never re-sends its parent's queue), and are flushed and stopped when the process ends:
at exit, on SIGTERM, at the end of a multiprocessing child (see
:mod:`flask_alerting._lifecycle`). :meth:`Pipeline.divert` hands alerts to a sink instead
(test helpers).

With a store that other processes share (``ALERTING_STORAGE_URI``), the dispatch thread
is also the only thread that talks to it, through a :class:`~.store_link.StoreLink`:
it registers this process when it starts, renews the registration and runs the store
tick between batches, and deregisters at the drain of :meth:`Pipeline.shutdown`; what
leaves goes through its durable outbox (:class:`~.outbox.Outbox`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from .. import _lifecycle
from .._lifecycle import guard, start_thread
from ..alert import Alert, AlertItem, PendingAlert
from ..dispatch import Clock, Dispatcher, Throttle, ThrottleLike
from ..flood import FloodGuard
from ..notifiers.base import Notifier
from ..signals import weak_sender
from ..store import Store
from .drops import Overflow, report_kept, report_undelivered
from .outbox import Direct, Outbox, gather, notifier_keys
from .shared_throttle import SharedThrottle
from .store_link import StoreLink, wall_clock
from .worker import NotifierWorker, RetryPolicy

logger = logging.getLogger("flask_alerting")

#: Seconds the dispatch thread lets alerts gather after waking up (see Pipeline._run).
#: Measured on a 2-core VM: every wake-up of a second Python thread costs the request
#: thread far more than the work it does (a GIL hand-over and two OS wake-ups), so
#: batching by 100 ms is what keeps an error storm from slowing the application
#: (benchmarks/bench_errors.py). flush() and shutdown() cut the wait short.
BATCH_DELAY = 0.1


class _Marker:
    """Control items on the inbound queue, handled in order with the alerts."""

    def __init__(self, action: str, then: Callable[[], object] | None = None) -> None:
        self.action = action
        self.then = then
        self.done = threading.Event()


_STOP = _Marker("stop")
_SETTLE = _Marker("settle")  # write the outbox's settlements (see Outbox.settle)


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
    :param store: the app's store; one that other processes share gets a
        :class:`~.store_link.StoreLink` (:attr:`link`), ``memory://`` or None none.
    """

    def __init__(
        self,
        *,
        sender: object,
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
        store: Store | None = None,
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
        self.store = store
        self.wall = wall_clock(clock)
        self.closed = False
        self.after_close = 0
        self._sink: Callable[[Alert], None] | None = None
        self._reset()
        _pipelines.add(self)

    def _reset(self) -> None:
        """Fresh queues, locks and threads: at creation and in a forked child."""
        self._lock = threading.Lock()
        self._inbound: queue.SimpleQueue[AlertItem | _Marker] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._inline_lock = threading.Lock()
        self._running = False
        self._submitted = False  # a flush before the first alert has nothing to wait for
        self._thread: threading.Thread | None = None
        self.overflow = Overflow(self.clock, self.sender)
        # A fresh link in a forked child: it registers as a process of its own.
        self.link: StoreLink | None = None
        self.outbox: Outbox | None = None
        if self.store is not None and self.store.shared:
            self.link = StoreLink(self.store, name=self.name, clock=self.clock, wall=self.wall)
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
        throttle: ThrottleLike = Throttle(self.throttle_seconds, self.clock)
        if self.link is not None and self.throttle_seconds > 0:
            throttle = SharedThrottle(
                self.link,
                self.throttle_seconds,
                self.clock,
                notifiers=notifier_keys(self.notifiers),  # the names records use
                labels=self.labels,
            )
        if self.link is not None:
            self.outbox = Outbox(
                self.link,
                self.workers,
                wake=self._settle_soon,
                clock=self.clock,
                sender=self.sender,
            )
        self.delivery: Outbox | Direct = self.outbox or Direct(self.workers)
        self.dispatcher = Dispatcher(
            sender=self.sender,
            throttle=throttle,
            deliver=self._deliver,
            log=self.log,
            log_logged=self.log_logged,
            wants_logged=self.wants_logged,
            guard=FloodGuard(self.rate_limit, self.clock, labels=self.labels)
            if self.rate_limit
            else None,
        )

    # -- hot path -----------------------------------------------------------------------

    def submit(self, item: AlertItem) -> None:
        """Hand an alert (or a builder of one) to the dispatch thread. Never blocks."""
        sink = self._sink
        if sink is not None:
            alert = item if isinstance(item, Alert) else item()
            if alert is not None:
                sink(alert)
            return
        if not self._running:
            if not self._start():
                self._after_close(item)
                return
        self._submitted = True
        if self._inbound.qsize() >= self.queue_size:
            self._overflow(item)
            return
        self._inbound.put(item)

    def counts_only(self, fingerprint: str) -> bool:
        """Whether an already-logged occurrence of ``fingerprint`` submitted now would only
        be counted (into a digest, or into a flood summary), so that its source may skip
        capturing details. Never while diverted: the sink gets every alert in full.

        Read on the source's thread without a lock (see
        :meth:`~flask_alerting.dispatch.Dispatcher.would_only_count`).
        """
        return self._sink is None and self.dispatcher.would_only_count(fingerprint)

    @contextmanager
    def divert(self, sink: Callable[[Alert], None]) -> Iterator[None]:
        """Inside the block, hand every submitted alert to ``sink`` instead of the
        dispatch thread.

        ::

            with pipeline.divert(alerts.append):
                ...

        The alerts are built at once, on the thread that submits them, so the sink has
        them as soon as the statement that raised them returns. They are not signalled,
        logged, throttled nor delivered: the sink gets each one, duplicates included.
        Blocks nest (the innermost sink wins); the previous destination is restored at
        the end. This is the seam of :func:`flask_alerting.testing.record_alerts`.
        """
        previous, self._sink = self._sink, sink
        try:
            yield
        finally:
            self._sink = previous

    # -- slow paths ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatch thread now (for a shared store's outbox, at ``init_app``)."""
        self._start()

    def _start(self) -> bool:
        with self._lock:
            if self.closed:
                return False
            if not self._running:
                thread = threading.Thread(
                    target=self._run, name=f"flask-alerting-{self.name}-dispatch", daemon=True
                )
                if start_thread(thread):
                    self._thread = thread
                    self._running = True
        # Without a thread (it could not start) items wait in the queue; flush() and
        # shutdown() then process them on their caller's thread.
        return True

    def _after_close(self, item: AlertItem) -> None:
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

    def _overflow(self, item: AlertItem) -> None:
        with guard("counting a dropped alert"):
            if not self.overflow.keep(item):
                for worker in self.workers:
                    worker.count_drop()  # the next message of each says so

    def _after_batch(self) -> None:
        """Merge counts that overflowed the queue; signal the alerts dropped by it."""
        counts, dropped = self.overflow.take()
        for fingerprint, (count, timestamp) in counts.items():
            with guard("counting overflowed occurrences"):
                occurrence = PendingAlert(None, fingerprint, timestamp, logged=True)
                for _ in range(count):
                    self.dispatcher.dispatch_pending(occurrence)
        self.overflow.signal(dropped)
        self.delivery.release()

    def _deliver(self, alert: Alert) -> None:
        # With an outbox: recorded (unless a claimed digest, which the store recorded),
        # then queued, at the release.
        self.delivery.add(alert, self.dispatcher.throttle.record_of(alert))

    def _settle_soon(self) -> bool:
        """Have the dispatch thread write the outbox's settlements now (see gather)."""
        if not self._running:
            return False
        self._inbound.put(_SETTLE)
        self._wake.set()
        return True

    def _run(self) -> None:
        self._loop()
        self.delivery.detach()  # workers settle on their own from now on

    def _loop(self) -> None:
        inbound = self._inbound
        dispatcher = self.dispatcher
        link = self.link
        started = False  # the store waits until the first alert was handled
        while True:
            due: float | None = None
            link_due: float | None = None
            # A thread started by the first alert handles it before it asks the store
            # anything; one started at init_app (shared stores) ticks at once, so that
            # the outbox of an ended process is recovered without waiting for an alert.
            if link is not None and (started or inbound.empty()):
                with guard("running the store tick"):
                    link_due = link.tick()
            started = True
            with guard("emitting digests"):
                due = dispatcher.tick()
            self.delivery.release()
            if link_due is not None and (due is None or link_due < due):
                due = link_due
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
                self.delivery.release()
                gather(self._wake, BATCH_DELAY, self.delivery)
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

    def _handle(self, item: AlertItem | _Marker) -> bool:
        """Process one inbound item; False for the stop marker."""
        dispatcher = self.dispatcher
        if isinstance(item, _Marker):
            if item is _STOP:
                return False
            if item is _SETTLE:
                self._wake.clear()  # its wake-up must not end the next batch's gathering
                self.delivery.settle_pending()
                return True
            if item.action == "retire":
                self._retired(item)
                return False
            # Occurrences the full queue kept as counts were raised before the marker:
            # they join their digests first (else a drain would leave them behind).
            self._after_batch()
            # Digests whose window ended are due now: hand them over before the marker is
            # done, so that flush() waits for them too; a shared store gets this process
            # registered and its counts now.
            if self.link is not None:
                with guard("running the store tick"):
                    self.link.tick()
            dispatcher.throttle.sync()
            self._emit_digests(drain=item.action == "drain")
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
            if self._running and not closed:  # the dispatch thread does the rest
                self._inbound.put(_Marker("retire", then))
                self._wake.set()
                return
        if not closed:  # else shut down already: notifiers closed, nothing left
            left = [item for item in _drain(self._inbound) if not isinstance(item, _Marker)]
            if left:  # only when the dispatch thread could not be started
                logger.warning(
                    "flask-alerting: app %r was freed with %d alert(s) not delivered",
                    self.name,
                    len(left),
                )
            for worker in self.workers:
                worker.retire()
        with guard("retiring a pipeline"):
            if then is not None:
                then()

    def _retired(self, marker: _Marker) -> None:
        """The dispatch thread's last step after :meth:`retire` (see there)."""
        self._after_batch()
        self._emit_digests(drain=True)
        with self._lock:
            self._running = False
        for worker in self.workers:
            worker.retire()
        with guard("retiring a pipeline"):
            if marker.then is not None:
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
        if not self._running:
            self._process_inline(drain)
        elif drain or self._submitted:  # else nothing went through the dispatch thread
            if not self._marker("drain" if drain else "flush", timeout):
                return False
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
            self.dispatcher.throttle.sync()
            self._emit_digests(drain)

    def _emit_digests(self, drain: bool) -> None:
        """Hand over the digests that are due (with ``drain``, all of them, and this
        process leaves its store)."""
        with guard("emitting digests"):
            if drain:
                self.dispatcher.drain()
            else:
                self.dispatcher.tick()
        self.delivery.release()  # recorded while this process is still registered
        if drain and self.link is not None:
            with guard("leaving the alert store"):
                self.link.leave()

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
        drained = _drain(self._inbound)
        late = [item for item in drained if not isinstance(item, _Marker)]
        if _STOP in drained:  # a dispatch thread still busy stops after its item
            self._inbound.put(_STOP)
        with guard("reporting alerts raised during shutdown"):
            for item in late:
                alert = item if isinstance(item, Alert) else item()
                if alert is not None:
                    self._log_late(item, alert)
                    lost += [(worker.notifier, alert) for worker in self.workers]
        for worker in self.workers:
            left, clean = worker.close(remaining())
            lost += [(worker.notifier, alert) for alert in left]
            delivered = delivered and clean
        if self.link is not None:
            report_kept(sum(w.kept for w in self.workers), self.link)
        if lost:
            delivered = False
            report_undelivered(lost, self.sender)
        return delivered

    def _log_late(self, item: AlertItem, alert: Alert) -> None:
        """Write an alert that came too late to be dispatched to the alert log all the
        same: the log holds every alert raised (see docs/delivery.rst)."""
        with guard("logging an alert raised during shutdown"):
            if not (isinstance(item, PendingAlert) and item.logged):
                self.log(alert)
            elif self.log_logged is not None:
                self.log_logged(alert)

    def stats(self) -> dict[str, Any]:
        """Counters and queue depths, for status displays."""
        return {
            "inbound": self._inbound.qsize(),
            "raised": self.dispatcher.raised,
            "suppressed": self.dispatcher.suppressed,
            "digests": self.dispatcher.digests,
            "folded": self.dispatcher.folded,
            "dropped": self.overflow.drops.total + sum(w.drops.total for w in self.workers),
            "after_shutdown": self.after_close,
            "throttle_windows": self.dispatcher.throttle.pending(),
            "store": self.link.stats() if self.link is not None else None,
            "outbox": self.delivery.stats(),
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



def _drain(inbound: queue.SimpleQueue[Any]) -> list[Any]:
    items = []
    while True:
        try:
            items.append(inbound.get_nowait())
        except queue.Empty:
            return items


_pipelines: weakref.WeakSet[Pipeline] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pipeline in list(_pipelines):
        pipeline._after_fork()


def _shutdown_all() -> None:
    for pipeline in list(_pipelines):
        with guard("shutting down at exit"):
            pipeline.shutdown()


def _shutdown_budget() -> float:
    """Seconds :func:`_shutdown_all` may take: each open pipeline's shutdown timeout,
    and the short floor of its joins (see :meth:`Pipeline.shutdown`)."""
    return sum(
        p.shutdown_timeout + 0.05 * (1 + len(p.workers)) for p in list(_pipelines) if not p.closed
    )


_lifecycle.after_fork("delivery", _after_fork_in_child)
_lifecycle.at_exit("delivery", _shutdown_all, budget=_shutdown_budget)
