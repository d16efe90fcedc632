"""The dispatch thread's link to the app's store (``ALERTING_STORAGE_URI``).

Every store operation of an app runs on the dispatch thread of its pipeline, never on a
request thread, through one :class:`StoreLink` (built only for a store that other
processes share: ``memory://`` needs none, and keeps the per-process path of 0.1):

* :meth:`StoreLink.call` runs one operation behind a
  :class:`~flask_alerting.store.CircuitBreaker`. The first failure (a
  :class:`~flask_alerting.store.StoreError`: Redis down, SQLite locked past the bound, a
  full disk, a corrupt or foreign file) opens it and is logged once, as a warning on the
  ``flask_alerting`` logger naming the store and the error. While it is open, calls fail
  at once with :class:`~flask_alerting.store.BreakerOpen` and callers fall back to what
  this process can do alone (the per-process throttle); every :data:`RETRY_AFTER`
  seconds one call is let through as a trial, and the first that succeeds closes it and
  logs the return, once. An unexpected exception of a store counts as a failure too, so
  that a bug in a backend costs no alert.
* **Registration**: the first :meth:`StoreLink.tick` once the store exists, or the
  first write to the store (:meth:`StoreLink.ensure_registered`), registers this process
  (host, pid, start time) with a lease of :data:`LEASE` seconds, renewed every
  :data:`HEARTBEAT` seconds (the lease tells other hosts that it is alive; on its own
  host the OS does). Until then the tick does nothing: a store that no process created
  (a default store's SQLite file that does not exist) holds nothing to take over or
  claim, and a process with nothing to store (an idle worker, a ``flask`` command, a
  test's app) leaves it uncreated.
  The heartbeat is also the breaker's trial while the store is down, and registers again
  once the store is back (a restarted Redis forgot everything).
  :meth:`StoreLink.leave` deregisters it when the app shuts down and says whether it
  was the last live process of the store (the one that sends the pending digests).
* **The store tick**: every :data:`TICK` seconds while the store answers, the hooks
  added with :meth:`StoreLink.on_tick` run on the dispatch thread, each under
  :func:`~flask_alerting._lifecycle.guard` (the shared throttle claims due digests there;
  the outbox can do its rounds there too).

After a fork, the pipeline builds a new link in the child: the child registers as a
process of its own, and the stores open their own connections in a child by themselves.

Times: the link schedules on the pipeline's monotonic ``clock`` and passes the store
wall-clock epoch seconds (``wall``), see :func:`wall_clock`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from .._lifecycle import guard
from .._text import describe_exception
from ..dispatch import Clock
from ..store import BreakerOpen, CircuitBreaker, ProcessId, Store, StoreError, current_process

logger = logging.getLogger("flask_alerting")
R = TypeVar("R")

#: Seconds one store operation may take at most (a SQLite lock wait; a Redis connect, and
#: a Redis reply), as the extension opens its store. Only the dispatch thread ever waits
#: for the store, never a request, and the breaker makes a store that fails cost this
#: once per :data:`RETRY_AFTER`. But while the dispatch thread waits, alerts wait in the
#: inbound queue, and the request path cannot know their throttle windows: a storm meeting
#: a store held 1 s at a process's start lost a third of its occurrences to the full queue
#: with a 2 s bound, none with this one. Measured on a busy two-core machine (two CPU
#: hogs, storms over gunicorn workers and processes): lock waits of 44 ms at most in 2,666
#: transactions. (A 2 s bound was tried against workers that fell back at once, whatever
#: the bound: SQLite's switch to WAL mode of a new file, see SQLiteStore._use_wal.)
TIMEOUT = 0.25
#: Seconds a registration promises this process is alive (other hosts trust it).
LEASE = 30.0
#: Seconds between two renewals of the lease.
HEARTBEAT = 10.0
#: Seconds between two trials of a store that failed.
RETRY_AFTER = 30.0
#: Seconds between two runs of the store-tick hooks.
TICK = 1.0


def wall_clock(clock: Clock) -> Callable[[], float]:
    """Epoch seconds that move with ``clock``: :func:`time.time` itself for the real
    :func:`time.monotonic`; for an injected clock (tests), the epoch time when this is
    called plus how far ``clock`` moved since, so that a test moving its clock moves
    the store's time too."""
    if clock is time.monotonic:
        return time.time
    offset = time.time() - clock()
    return lambda: offset + clock()


class StoreLink:
    """See the module docstring.

    :param store: the app's store (a shared one).
    :param name: the app's name, for log lines.
    :param clock: monotonic seconds (the pipeline's clock).
    :param wall: epoch seconds given to the store (default: :func:`wall_clock` of
        ``clock``).
    :param lease: seconds; default :data:`LEASE` (read when the link is made, as are the
        other defaults).
    :param heartbeat: seconds; default :data:`HEARTBEAT`.
    :param retry_after: seconds; default :data:`RETRY_AFTER`.
    :param tick: seconds; default :data:`TICK`.
    :param process: who this process is in the store; default
        :func:`~flask_alerting.store.current_process` (tests stand for other hosts).
    """

    def __init__(
        self,
        store: Store,
        *,
        name: str,
        clock: Clock = time.monotonic,
        wall: Callable[[], float] | None = None,
        lease: float | None = None,
        heartbeat: float | None = None,
        retry_after: float | None = None,
        tick: float | None = None,
        process: ProcessId | None = None,
    ) -> None:
        self.store = store
        self._process = process
        self.name = name
        self.clock = clock
        self.wall = wall or wall_clock(clock)
        self.lease = LEASE if lease is None else lease
        self.heartbeat = HEARTBEAT if heartbeat is None else heartbeat
        self.retry_after = RETRY_AFTER if retry_after is None else retry_after
        self.tick_interval = TICK if tick is None else tick
        self.breaker = CircuitBreaker(retry_after=self.retry_after, clock=clock)
        #: Failed operations so far (for status displays).
        self.failures = 0
        #: Whether the store holds this process's registration (as far as it knows).
        self.registered = False
        #: Whether this process ever asked the store anything.
        self.used = False
        self._next_heartbeat = clock()  # the first tick registers (see tick)
        self._next_tick = clock()
        self._hooks: list[Callable[[float], None]] = []
        self._left = False
        self._last: bool | None = None

    def __repr__(self) -> str:
        return f"<StoreLink {self.store.uri} {self.state}>"

    @property
    def process(self) -> ProcessId:
        """This process, as the store knows it."""
        return self._process or current_process()

    @property
    def state(self) -> str:
        """The breaker's state: ``"closed"`` (the store is used), ``"open"`` or
        ``"half-open"``."""
        return self.breaker.state

    @property
    def available(self) -> bool:
        """Whether the store answered the last call (the breaker is closed)."""
        return self.breaker.state == "closed"

    def now(self) -> float:
        """The store's time: wall-clock epoch seconds."""
        return self.wall()

    # -- calls ---------------------------------------------------------------------------

    def call(self, what: str, operation: Callable[[], R], *, force: bool = False) -> R:
        """Run one store ``operation`` through the breaker; its result.

        :param what: says what it does, in the log line of a failure ("opening windows").
        :param force: try even while the breaker is open (the last calls of a shutdown).
        :raises StoreError: it failed (logged when that opened the breaker), or
            :class:`~flask_alerting.store.BreakerOpen`: it was not tried.
        """
        self.used = True
        if not self.breaker.allow() and not force:
            raise BreakerOpen(f"{self.store.uri} is not used for now (it failed recently)")
        try:
            result = operation()
        except StoreError as exc:
            self._failed(what, exc)
            raise
        except Exception as exc:  # a bug of a backend: fall back all the same
            error = StoreError(f"{self.store.uri}: unexpected {describe_exception(exc)}")
            self._failed(what, error, exc)
            raise error from exc
        if self.breaker.succeeded():
            self._back()
        return result

    def _failed(self, what: str, error: StoreError, bug: Exception | None = None) -> None:
        self.failures += 1
        if self.breaker.failed(error):
            logger.warning(
                "flask-alerting: the alert store %s of app %r failed while %s: %s. Until "
                "it answers again this process throttles on its own: alerts still leave, "
                "other processes may send the same ones (retrying every %s s)",
                self.store.uri,
                self.name,
                what,
                error,
                _seconds(self.retry_after),
                exc_info=bug,
            )
        self._next_heartbeat = self.clock() + self.retry_after

    def _back(self) -> None:
        logger.warning(
            "flask-alerting: the alert store %s of app %r answers again; this process "
            "shares its throttle windows with the other processes of the store again",
            self.store.uri,
            self.name,
        )
        self._next_heartbeat = self.clock()  # register again: it may have forgotten us

    # -- the store tick ------------------------------------------------------------------

    def on_tick(self, hook: Callable[[float], None]) -> None:
        """Run ``hook(now)`` (``now``: the store's time) on every store tick, on the
        dispatch thread, while the store answers."""
        self._hooks.append(hook)

    def tick(self) -> float | None:
        """Do what is due: register or renew the lease (the trial of a failed store),
        run the store-tick hooks. Cheap when nothing is due (on every turn of the
        dispatch loop). Returns the ``clock`` time of the next thing due; None once the
        process left the store."""
        if self._left:
            return None
        now = self.clock()
        if not self.used and not self.store.may_hold_records():
            return now + self.tick_interval  # a store nobody created yet: left uncreated
        if now >= self._next_heartbeat:
            self._renew(now)
        if now >= self._next_tick and self.available:
            self._next_tick = now + self.tick_interval
            for hook in self._hooks:
                with guard("running a store tick"):
                    hook(self.wall())
        if not self.available or not self._hooks:
            return self._next_heartbeat  # the next renewal, or trial
        return min(self._next_heartbeat, self._next_tick)

    def ensure_registered(self) -> None:
        """Register now if this process is not yet: before it first writes to the
        store, so that no other process takes itself for the last one (and drains the
        store) while this one holds counts. Nothing to do once registered, after
        :meth:`leave`, or while the breaker is open (the store holds nothing of ours)."""
        if not self.registered and not self._left and self.breaker.state != "open":
            self._renew(self.clock())

    def _renew(self, now: float) -> None:
        self._next_heartbeat = now + self.heartbeat
        try:
            self.call(
                "registering this process",
                lambda: self.store.register(self.process, now=self.wall(), lease=self.lease),
            )
        except StoreError:
            self.registered = False  # _failed scheduled the next trial
        else:
            self.registered = True

    def leave(self) -> bool | None:
        """Deregister this process (at shutdown; once, later calls give the same answer).

        Tried even while the breaker is open: the store may be back.

        :returns: True when no live process of the store is left (this one sends the
            pending digests), False when others are, None when the store could not say,
            or when this process never used it (it holds nothing there: a command such
            as ``flask alerting status`` neither opens the store nor drains it).
        """
        if self._left:
            return self._last
        self._left = True
        if not self.used:
            return None
        try:
            self._last = self.call(
                "deregistering this process",
                lambda: self.store.deregister(self.process, now=self.wall()),
                force=True,
            )
        except StoreError:
            self._last = None
        self.registered = False
        return self._last

    @property
    def left(self) -> bool:
        """Whether :meth:`leave` was called."""
        return self._left

    def close(self) -> None:
        """Close the store's connections (it reconnects if used again)."""
        with guard("closing the alert store"):
            self.store.close()

    def stats(self) -> dict[str, object]:
        """For status displays: the store, its state, the failures so far."""
        return {
            "uri": self.store.uri,
            "state": self.state,
            "registered": self.registered,
            "failures": self.failures,
        }


def _seconds(value: float) -> str:
    return f"{value:g}"
