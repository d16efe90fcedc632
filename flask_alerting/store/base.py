"""The one interface of every store (:class:`Store`) and what its backends share."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from .._urls import mask_uri
from ..alert import Alert
from .model import (
    Added,
    Claim,
    Count,
    Digest,
    NewWindow,
    Opened,
    Outgoing,
    ProcessInfo,
    Put,
    Record,
    WindowInfo,
)
from .process import ProcessId, is_alive

#: Seconds a due window waits before it is claimed, so that other processes' last
#: batches (sent every ~100 ms) and small clock differences between hosts land first.
GRACE = 1.0
#: Seconds an abandoned window, lease or counter stays in a store nobody uses any more.
RETENTION = 86_400.0
#: Windows a store tracks at once; past it, new fingerprints are sent untracked.
MAX_WINDOWS = 10_000
#: Records the outbox holds at most; the oldest beyond are dropped (and counted).
MAX_RECORDS = 10_000
#: Seconds a record may wait in the outbox; older ones are dropped (and counted).
MAX_AGE = 86_400.0


@dataclasses.dataclass(frozen=True)
class Limits:
    """The bounds of a store (see the module constants for their meaning)."""

    grace: float = GRACE
    retention: float = RETENTION
    max_windows: int = MAX_WINDOWS
    max_records: int = MAX_RECORDS
    max_age: float = MAX_AGE

    def __post_init__(self) -> None:
        for name in ("grace", "retention", "max_age"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_windows < 1 or self.max_records < 1:
            raise ValueError("max_windows and max_records must be >= 1")


class Store(abc.ABC):
    """Throttle windows, digest counts, a process registry and an outbox, shared by every
    process that names the same store. One interface, three backends (memory, SQLite,
    Redis); see the :mod:`~flask_alerting.store` docstring for the semantics.

    Every operation takes the caller's wall clock ``now`` (epoch seconds), is bounded by
    the store's timeout and raises :class:`~flask_alerting.store.StoreError` on any failure
    (ValueError only for invalid arguments: a bug of the caller). Operations are safe
    from several threads; after a fork, the child reconnects by itself.
    """

    #: URI scheme(s) of the backend.
    scheme: ClassVar[str] = ""
    #: Whether other processes see the same store (False for ``memory://``).
    shared: ClassVar[bool] = True

    def __init__(self, uri: str, limits: Limits | None = None) -> None:
        self.uri = mask_uri(uri)
        self.limits = limits or Limits()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uri}>"

    # -- windows -----------------------------------------------------------------------

    @abc.abstractmethod
    def open_windows(
        self, items: Sequence[NewWindow], *, now: float, owner: ProcessId
    ) -> list[Opened]:
        """Open the window of each item, atomically, in one round trip.

        Per fingerprint, exactly one caller gets ``first=True`` (it sends the alert now);
        every other caller learns that the window is open and until when. A window that
        ended having counted nothing is replaced (its next occurrence is a first alert
        again, even before a claimer removed it); one that ended with counts stays until
        it is claimed. Answers are in the order of ``items``.
        """

    def open_window(
        self, fingerprint: str, template: Alert, window: float, *, now: float, owner: ProcessId
    ) -> Opened:
        """:meth:`open_windows` for one fingerprint."""
        items = [NewWindow(fingerprint, template, window)]
        return self.open_windows(items, now=now, owner=owner)[0]

    @abc.abstractmethod
    def add_counts(self, counts: Sequence[Count], *, now: float) -> list[Added]:
        """Add suppressed occurrences to their windows, atomically, in one round trip.

        A count whose window no longer exists is returned, never dropped (see
        :class:`Added`). Answers are in the order of ``counts``.
        """

    @abc.abstractmethod
    def claim_due(
        self, *, now: float, owner: ProcessId, limit: int = 100, notifiers: Sequence[str] = ()
    ) -> Claim:
        """Claim the windows whose end + grace has passed, atomically; any process may.

        Each window that counted something yields one :class:`Digest` (its sums, first
        and last seen, template) and is reopened for another period from ``now``; one
        that counted nothing is removed. Each digest is recorded in ``owner``'s outbox
        (owed by ``notifiers``) in the same atomic step: delete it
        (:meth:`outbox_delete`) once delivered. Concurrent claimers never get the same
        window's period twice.
        """

    @abc.abstractmethod
    def drain(
        self, *, now: float, owner: ProcessId, notifiers: Sequence[str] = ()
    ) -> list[Digest]:
        """Claim every window now, due or not, and remove them all (the last process's
        shutdown). Windows that counted something yield a digest, as in :meth:`claim_due`.
        """

    @abc.abstractmethod
    def windows(self, *, now: float) -> list[WindowInfo]:
        """The open windows of the whole store, soonest end first (status displays; not
        atomic). Those whose ``end`` plus ``limits.grace`` has passed are due: whichever
        process calls :meth:`claim_due` next sweeps them, whoever opened them."""

    # -- processes ---------------------------------------------------------------------

    @abc.abstractmethod
    def register(self, process: ProcessId, *, now: float, lease: float) -> None:
        """Register ``process`` or renew its lease (a heartbeat) until ``now + lease``."""

    @abc.abstractmethod
    def deregister(self, process: ProcessId, *, now: float) -> bool:
        """Remove ``process``; True when no live process of the store is left.

        Atomic: when every process stops at once, exactly one of them is told it is the
        last (it drains the store). Dead processes found on the way are removed too.
        """

    @abc.abstractmethod
    def processes(self, *, now: float) -> list[ProcessInfo]:
        """The registered processes and whether each is alive."""

    # -- outbox ------------------------------------------------------------------------

    @abc.abstractmethod
    def outbox_put(self, items: Sequence[Outgoing], *, owner: ProcessId, now: float) -> Put:
        """Record alerts about to be delivered by ``owner``, in one atomic step.

        Bounded: records older than ``max_age`` and the oldest beyond ``max_records`` are
        dropped first; the answer counts them (and any dropped since the last caller was
        told), so the caller can say so in its next message.
        """

    @abc.abstractmethod
    def outbox_owe(self, record: str, notifiers: Sequence[str]) -> bool:
        """Set which notifiers still owe ``record``; none left deletes it. False when the
        record no longer exists."""

    @abc.abstractmethod
    def outbox_delete(self, records: Sequence[str]) -> int:
        """Delete delivered (or given up) records; how many existed."""

    @abc.abstractmethod
    def outbox_claim(self, *, owner: ProcessId, now: float, limit: int = 100) -> list[Record]:
        """Take over, atomically, up to ``limit`` records of dead processes.

        Two live claimers never get the same record. Each comes back with
        ``recovered_from`` naming the dead owner; deliver it, then delete it. If this
        process dies before deleting, the record is claimed again (at most that one alert
        is repeated).
        """

    @abc.abstractmethod
    def outbox_prune(self, *, now: float) -> int:
        """Apply the outbox's bounds now; the records dropped since a caller was last told."""

    @abc.abstractmethod
    def outbox_records(self) -> list[Record]:
        """Every record, oldest first (status displays and tests; not a claim)."""

    # -- connection --------------------------------------------------------------------

    @abc.abstractmethod
    def ping(self) -> None:
        """Check that the store answers (and can be written); StoreError when not."""

    def close(self) -> None:  # noqa: B027 - optional: a no-op for stores without one
        """Release connections; the store reconnects if used again."""

    def may_hold_records(self) -> bool:
        """False only when the store certainly holds nothing and asking it would create
        it (a SQLite file that does not exist): a process with nothing of its own to
        store then leaves it uncreated. Cheap; never raises."""
        return True


# -- helpers shared by the backends written in Python --------------------------------------


def owner_alive(owner: str, deadlines: Mapping[str, float], now: float) -> bool:
    """Whether the process named ``owner`` (text form) is alive, given the leases."""
    try:
        process = ProcessId.parse(owner)
    except ValueError:
        return False
    return is_alive(process, deadlines.get(owner), now)


def dead_owners(
    owners: Iterable[str], deadlines: Mapping[str, float], now: float, me: str
) -> list[str]:
    """The ``owners`` (other than ``me``) that are dead."""
    return sorted(o for o in set(owners) if o != me and not owner_alive(o, deadlines, now))


def check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit!r}")


def make_digest(
    fields: Mapping[str, Any], template: Alert | None, record: str, next_end: float | None
) -> Digest:
    """A :class:`Digest` from a backend's window fields (``fp``, ``count``, ``first``,
    ``last``, ``nv``, ``total``, ``high``, ``low``, ``start``, ``end``; numbers or their
    text, "" or None for none)."""

    def num(name: str) -> float | None:
        value = fields.get(name)
        return None if value is None or value == "" else float(value)

    return Digest(
        fingerprint=str(fields["fp"]),
        count=int(fields["count"]),
        first_seen=num("first"),
        last_seen=num("last"),
        values=int(fields.get("nv") or 0),
        total=float(fields.get("total") or 0.0),
        high=num("high"),
        low=num("low"),
        start=float(fields["start"]),
        end=float(fields["end"]),
        template=template,
        record=record,
        next_end=next_end,
    )


def added(count: Count, end: float | None) -> Added:
    """The answer to ``count``: added to a window ending at ``end``, or returned."""
    if end is None:
        return Added(count.fingerprint, None, count)
    return Added(count.fingerprint, end)


def record_number(record: str) -> int:
    """A record id as the number it stands for (-1, matching nothing, if it is not one)."""
    try:
        return int(record)
    except ValueError:
        return -1
