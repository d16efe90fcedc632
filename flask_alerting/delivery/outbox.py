"""The durable outbox of one pipeline: an alert outlives the process that was to deliver it.

Only with a store that other processes share (``ALERTING_STORAGE_URI`` other than
``memory://``); ``memory://`` keeps the path of 0.1, without any of this. Like every
store operation of the pipeline, the outbox's run on the dispatch thread.

* **Recorded before delivery.** The dispatcher hands every alert that is to leave to
  :meth:`Outbox.add`; at the end of each dispatch batch :meth:`Outbox.release` records the
  batch in the store (one :meth:`~flask_alerting.store.Store.outbox_put`, never on the
  request path) and only then queues each alert, with its record id, for the notifiers'
  workers. A record names the notifiers that owe it (:func:`notifier_keys`). Between
  the two, each recorded alert is announced (the internal ``alert_recorded`` signal,
  :data:`flask_alerting.signals.alert_recorded`): from then on it is delivered even if
  this process is killed, which the metrics sampler records for the process that takes
  over sampling (:mod:`flask_alerting.metrics.notices`).
* **Settled per notifier.** A worker that delivered an alert, or gave it up (a permanent
  failure, retries exhausted, its queue full), settles the record (:meth:`Outbox.settle`):
  the record no longer owes that notifier
  (:meth:`~flask_alerting.store.Store.outbox_owe`) and is deleted once none is left. The
  worker hands that to the dispatch thread, which writes the settlements that arrived
  together in one go, and waits for it before it sends its next alert: a process killed
  between a send and the write repeats at most the one alert each notifier had just sent
  (see :data:`SETTLE_WAIT` for why the worker waits, and docs/benchmarks.rst for what
  it costs).
* **Recovered.** On the store tick (the first when the dispatch thread starts, which
  ``init_app`` does for a shared store; then every :data:`RECOVER_EVERY` seconds; never
  while the store does not exist yet: a default store's file that no process created holds
  nothing) the outbox registers this process and takes over the records of processes that
  are gone (:meth:`~flask_alerting.store.Store.outbox_claim`: pid not alive on this host,
  lease expired for another host; atomically, so two live processes never take the same
  record) and delivers them through the notifiers that still owe them, marked as recovered
  (``details["recovered"]``: the subject says ``(recovered)``, the body which process
  ended before delivering it). Digests that a process claimed and never delivered come
  back the same way.
* **Bounded.** The store drops the oldest records beyond ``ALERTING_OUTBOX_MAX_RECORDS``
  and those older than ``ALERTING_OUTBOX_MAX_AGE``; the count comes back with the next
  :meth:`~flask_alerting.store.Store.outbox_put` (or the prune of every
  :data:`PRUNE_EVERY` seconds), is logged, and the next message of every notifier says
  how many were dropped (``Alert.dropped``).
* **Never at an alert's cost.** While the store fails (the link's breaker is open) or
  this process is not registered in it, alerts are delivered without a record;
  settlements that could not be written are tried again on the store tick.

Once the dispatch thread has ended (after :meth:`Pipeline.shutdown
<flask_alerting.delivery.Pipeline.shutdown>` stopped it, or when a freed app's
pipeline retired), a worker still delivering settles its records on its own thread.
"""

from __future__ import annotations

import collections
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from .._lifecycle import guard
from ..alert import Alert
from ..dispatch import Clock
from ..notifiers.base import Notifier
from ..signals import alert_recorded, send_safely
from ..store import Outgoing, ProcessId, Record, StoreError
from .store_link import StoreLink
from .worker import NotifierWorker

logger = logging.getLogger("flask_alerting")

#: Seconds between two rounds that take over the records of ended processes (the first
#: round runs when the dispatch thread starts).
RECOVER_EVERY = 2.0
#: Records taken over in one round at most (fewer when the notifiers' queues are fuller).
CLAIM_LIMIT = 100
#: Seconds between two prunes that fetch the count of records the bounds dropped, when
#: no alert was recorded meanwhile (recording one does it too).
PRUNE_EVERY = 60.0
#: Settlements that could not be written, kept to be tried again; past it, the oldest
#: are forgotten (their alerts may then be delivered again by whoever takes them over).
MAX_UNSETTLED = 10_000
#: Seconds a worker waits, after a delivery, for the dispatch thread to write its
#: settlement before it sends its next alert. Waiting is what bounds what a killed process
#: repeats to the one alert each notifier had just sent. The dispatch thread is woken for
#: it, also while it lets a burst gather (the burst goes on gathering), so the wait is a
#: thread switch and one store write, next to the milliseconds of a send. Past this bound
#: the worker goes on; the settlement is written all the same, later.
SETTLE_WAIT = 5.0

#: A settlement: the notifier (None: every one) that is done with a record, and the
#: event its worker waits on (None: nobody waits).
_Ack = tuple[str | None, str, threading.Event | None]


def notifier_keys(notifiers: Sequence[Notifier]) -> tuple[str, ...]:
    """The names that records give the notifiers: each notifier's ``name``; a second one
    of the same name is ``name#2``, and so on (the same in every process of one
    configuration)."""
    seen: collections.Counter[str] = collections.Counter()
    keys = []
    for notifier in notifiers:
        seen[notifier.name] += 1
        n = seen[notifier.name]
        keys.append(notifier.name if n == 1 else f"{notifier.name}#{n}")
    return tuple(keys)


def describe_process(text: str | None) -> str:
    """``"pid 1234 on web-1"`` for a process of the store (its text form)."""
    if not text:
        return "an unknown process"
    try:
        process = ProcessId.parse(text)
    except ValueError:
        return text
    return f"pid {process.pid} on {process.host}"


class Outbox:
    """See the module docstring.

    :param link: the pipeline's link to its store (a shared one).
    :param workers: the notifiers' workers, one per notifier; records name them by
        :func:`notifier_keys`.
    :param wake: asks the dispatch thread to call :meth:`settle_pending` soon (from a
        worker's thread); returns False when no dispatch thread runs.
    :param clock: monotonic seconds (the pipeline's), for the rounds.
    :param sender: the sender of ``alert_recorded`` (see
        :func:`~flask_alerting.signals.weak_sender`); None: not sent.
    """

    def __init__(
        self,
        link: StoreLink,
        workers: Sequence[NotifierWorker],
        *,
        wake: Callable[[], bool],
        clock: Clock,
        sender: object | None = None,
    ) -> None:
        self.link = link
        self.sender = sender
        self.workers = tuple(workers)
        #: The names of the notifiers in records, in the order of :attr:`workers`.
        self.keys = notifier_keys([w.notifier for w in self.workers])
        self.wake = wake
        self.clock = clock
        # Guards what the workers' threads share with the dispatch thread (the records in
        # flight) and keeps the writes of one record in order.
        self._lock = threading.Lock()
        self._pending: list[tuple[Alert, str | None]] = []  # the dispatch thread's
        self._owed: dict[str, set[str]] = {}
        self._acks: queue.SimpleQueue[_Ack] = queue.SimpleQueue()
        self._woken = False  # a wake-up of the dispatch thread is under way
        self._woken_lock = threading.Lock()
        self._detached = False
        self._unsettled: collections.OrderedDict[str, tuple[str, ...]] = (
            collections.OrderedDict()
        )
        self._next_recovery = clock()
        self._next_prune = clock() + PRUNE_EVERY
        self._untold_log = 0
        self._last_log: float | None = None
        #: Alerts recorded, delivered without a record (the store failing), taken over
        #: from ended processes, and dropped by the outbox's bounds, so far.
        self.recorded = 0
        self.unrecorded = 0
        self.recovered = 0
        self.dropped = 0
        #: Rounds that asked the store for the records of ended processes.
        self.rounds = 0
        for key, worker in zip(self.keys, self.workers, strict=True):
            worker.on_settled = functools.partial(self.settle, key)
        link.on_tick(self.tick)

    # -- recording (the dispatch thread) --------------------------------------------------

    def add(self, alert: Alert, record: str | None = None) -> None:
        """Deliver ``alert`` once the batch ends (:meth:`release`).

        :param record: its record when it has one already (a digest that
            :meth:`~flask_alerting.store.Store.claim_due` recorded, owed by every
            notifier of :attr:`keys`); None: it is recorded at the release.
        """
        self._pending.append((alert, record))

    def release(self) -> None:
        """Record the alerts added since the last call (one write for all of them),
        announce those that have a record (``alert_recorded``), then queue them for the
        notifiers. Never raises: without the store, the alerts leave unrecorded."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        with guard("recording alerts in the outbox"):
            records = iter(self._record([alert for alert, record in pending if record is None]))
            held = [
                (alert, record if record is not None else next(records))
                for alert, record in pending
            ]
            # Announced once the store has the records (a kill before that loses the
            # alert, and nobody may count on it) and before any notifier has them (so
            # that "recorded" is heard before "sent").
            if self.sender is not None:
                for alert, record in held:
                    if record is not None:
                        send_safely(alert_recorded, self.sender, alert=alert)
            for alert, record in held:
                self._hand_over(alert, record, self.keys)
        self.settle_pending()  # the queues that were full

    def _record(self, alerts: list[Alert]) -> list[str | None]:
        if not alerts:
            return []
        link = self.link
        link.ensure_registered()  # a thread started by this first alert registers now
        # Unregistered (the store was down, or this process left it at shutdown), other
        # hosts would count this process as dead and take its records at once.
        if link.registered and link.available:
            items = [Outgoing(alert, self.keys) for alert in alerts]
            try:
                put = link.call(
                    "recording alerts in the outbox",
                    lambda: link.store.outbox_put(items, owner=link.process, now=link.now()),
                )
            except StoreError:
                pass  # logged by the link when it opened its breaker
            else:
                self.recorded += len(alerts)
                if put.dropped:
                    self._dropped(put.dropped)
                return list(put.ids)
        self.unrecorded += len(alerts)
        return [None] * len(alerts)

    def _hand_over(self, alert: Alert, record: str | None, owed: Sequence[str]) -> None:
        """Queue ``alert`` for the workers of the notifiers ``owed`` (dispatch thread;
        settle with :meth:`settle_pending` after)."""
        targets = [i for i, key in enumerate(self.keys) if key in owed]
        if record is not None:
            with self._lock:  # before any worker can settle it
                self._owed[record] = {self.keys[i] for i in targets}
            if not targets:
                self._acks.put((None, record, None))
        for i in targets:
            if not self.workers[i].put(alert, record) and record is not None:
                self._acks.put((self.keys[i], record, None))  # its queue is full: given up

    # -- settling -------------------------------------------------------------------------

    def settle(self, key: str, record: str) -> None:
        """The notifier ``key`` delivered (or gave up) the alert of ``record`` (a worker's
        :attr:`~.worker.NotifierWorker.on_settled`, on its thread): the record no longer
        owes it and is deleted once no notifier owes it. Returns once that is written (or
        after :data:`SETTLE_WAIT`)."""
        done = threading.Event()
        self._acks.put((key, record, done))
        if not self._detached:
            with self._woken_lock:
                woken, self._woken = self._woken, True
            if woken or self.wake():  # a dispatch thread will write it: wait for that
                if done.wait(SETTLE_WAIT) or not self._detached:
                    return
        self.settle_pending()  # no dispatch thread (any more): on this thread

    @property
    def asked(self) -> bool:
        """Whether a worker waits for the dispatch thread to write its settlement."""
        return self._woken

    def detach(self) -> None:
        """The dispatch thread ends: what it was asked to settle is written now, and
        workers write their settlements themselves from now on."""
        self._detached = True
        self.settle_pending()

    def settle_pending(self) -> None:
        """Write the settlements handed over so far (dispatch thread; a worker's once
        it has ended). Never raises."""
        acks: list[_Ack] = []
        with guard("settling outbox records"), self._lock:
            with self._woken_lock:
                self._woken = False
            while True:
                try:
                    acks.append(self._acks.get_nowait())
                except queue.Empty:
                    break
            deletes: list[str] = []
            owes: dict[str, tuple[str, ...]] = {}
            for key, record, _ in acks:
                owed = self._owed.get(record)
                if owed is None:
                    continue
                if key is not None:
                    owed.discard(key)
                if owed and key is not None:
                    owes[record] = tuple(sorted(owed))
                else:
                    del self._owed[record]
                    owes.pop(record, None)
                    deletes.append(record)
            if deletes or owes:
                self._write(deletes, owes)
        for _, _, done in acks:
            if done is not None:
                done.set()

    def _write(self, deletes: list[str], owes: dict[str, tuple[str, ...]]) -> None:
        """Write settlements, and those that failed before (with the lock held, so that
        the writes of one record keep their order); keep what fails for the next tick."""
        for record, owed in self._unsettled.items():
            if record in owes or record in deletes:
                continue  # what was settled since wins
            if owed:
                owes[record] = owed
            else:
                deletes.append(record)
        link, store = self.link, self.link.store
        written: list[str] = []
        try:
            if deletes:
                link.call(
                    "deleting delivered alerts from the outbox",
                    lambda: store.outbox_delete(deletes),
                )
                written += deletes
            for record, owed in owes.items():
                link.call(
                    "settling an outbox record", functools.partial(store.outbox_owe, record, owed)
                )
                written.append(record)
        except StoreError:  # logged by the link when it opened its breaker
            failed = {r: () for r in deletes} | owes
            for record in set(failed) - set(written):
                self._unsettled[record] = failed[record]
            while len(self._unsettled) > MAX_UNSETTLED:
                self._unsettled.popitem(last=False)
        for record in written:
            self._unsettled.pop(record, None)

    # -- the store tick (the dispatch thread) ---------------------------------------------

    def tick(self, now: float) -> None:
        """The store tick (every second while the store answers): write the settlements
        that failed, take over the records of ended processes, apply the bounds."""
        if self._unsettled:
            with self._lock:
                self._write([], {})
        moment = self.clock()
        link = self.link
        try:
            if moment >= self._next_recovery:
                self._next_recovery = moment + RECOVER_EVERY
                if self._recover(now):
                    self._next_recovery = moment  # more are waiting: at the next tick
            if moment >= self._next_prune:
                self._next_prune = moment + PRUNE_EVERY
                dropped = link.call(
                    "applying the outbox's bounds", lambda: link.store.outbox_prune(now=now)
                )
                if dropped:
                    self._dropped(dropped)
        except StoreError:
            pass  # logged by the link when it opened its breaker; tried again later

    def _recover(self, now: float) -> bool:
        """One round of taking over; True when it took as many as it asked for."""
        room = min((w.queue_size - w.depth for w in self.workers), default=0)
        limit = min(CLAIM_LIMIT, room // 2)
        if limit < 1:
            return False  # the notifiers' queues are full enough: later
        link = self.link
        # Registered before it holds records of its own (else other hosts would take
        # this process for ended, and take them over too).
        link.ensure_registered()
        if not link.registered:
            return False  # the store failed (the breaker is open): later
        records = link.call(
            "taking over the undelivered alerts of ended processes",
            lambda: link.store.outbox_claim(owner=link.process, now=now, limit=limit),
        )
        self.rounds += 1
        if not records:
            return False
        when = datetime.fromtimestamp(now, timezone.utc)
        me = link.process
        by = f"pid {me.pid} on {me.host}"
        origins: collections.Counter[str] = collections.Counter()
        unreadable = 0
        for record in records:
            alert = _alert_of(record, when)
            if alert is None:
                unreadable += 1
                with self._lock:
                    self._owed[record.id] = set()
                self._acks.put((None, record.id, None))
                continue
            origin = describe_process(record.recovered_from)
            origins[origin] += 1
            alert = alert.replace(
                details={**alert.details, "recovered": {"from": origin, "by": by}}
            )
            owed = [key for key in self.keys if key in record.notifiers] or self.keys
            self._hand_over(alert, record.id, owed)
        self.settle_pending()
        self.recovered += sum(origins.values())
        if origins:
            logger.warning(
                "flask-alerting: app %r takes over %d undelivered alert(s) of %s, which "
                "ended before delivering them: they are delivered now, marked as recovered",
                link.name,
                sum(origins.values()),
                ", ".join(f"{origin} ({n})" for origin, n in origins.items()),
            )
        if unreadable:
            logger.warning(
                "flask-alerting: %d record(s) of the outbox of %s could not be read "
                "(written by another version?) and were deleted",
                unreadable,
                link.store.uri,
            )
        return len(records) >= limit

    def _dropped(self, count: int) -> None:
        """The store dropped ``count`` records: every notifier's next message says so."""
        self.dropped += count
        for worker in self.workers:
            worker.count_drop(count)
        self._untold_log += count
        moment = self.clock()
        if self._last_log is not None and moment - self._last_log < 60.0:
            return
        limits = self.link.store.limits
        logger.warning(
            "flask-alerting: the outbox of %s dropped %d undelivered alert(s), the oldest "
            "beyond ALERTING_OUTBOX_MAX_RECORDS (%d) or older than ALERTING_OUTBOX_MAX_AGE "
            "(%g s); the next delivered alert says how many",
            self.link.store.uri,
            self._untold_log,
            limits.max_records,
            limits.max_age,
        )
        self._untold_log = 0
        self._last_log = moment

    # -- status ---------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Records this process holds that are not settled yet."""
        return len(self._owed)

    def stats(self) -> dict[str, Any]:
        """For status displays."""
        return {
            "recorded": self.recorded,
            "unrecorded": self.unrecorded,
            "recovered": self.recovered,
            "dropped": self.dropped,
            "rounds": self.rounds,
            "in_flight": self.in_flight,
            "unsettled": len(self._unsettled),
        }


def gather(wake: threading.Event, seconds: float, delivery: Outbox | Direct) -> None:
    """Let a burst of alerts gather on the dispatch thread for ``seconds``, until ``wake``
    is set (a flush or a shutdown cuts it short). The outbox's settlements that come
    meanwhile (they set ``wake`` too) are written at once, and the burst gathers on: a
    storm's batches stay what they are without an outbox."""
    end = time.monotonic() + seconds
    while wake.wait(max(0.0, end - time.monotonic())):
        wake.clear()
        if not delivery.asked:
            return
        delivery.settle_pending()


class Direct:
    """No outbox (``memory://``): each alert goes to the notifiers' workers as it comes,
    as in 0.1. The pipeline calls it as it calls an :class:`Outbox`."""

    #: Never: there is nothing to settle.
    asked = False

    def __init__(self, workers: Sequence[NotifierWorker]) -> None:
        self.workers = tuple(workers)

    def add(self, alert: Alert, record: str | None = None) -> None:
        for worker in self.workers:
            worker.put(alert)

    def release(self) -> None:
        pass

    def settle_pending(self) -> None:
        pass

    def detach(self) -> None:
        pass

    def stats(self) -> None:
        return None


def _alert_of(record: Record, when: datetime) -> Alert | None:
    """The alert a record stands for (a claimed digest as its alert), None if unreadable."""
    if record.alert is not None:
        return record.alert
    if record.digest is not None:
        return record.digest.to_alert(when)
    return None
