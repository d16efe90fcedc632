"""The values that store operations take and return (immutable, typed).

Times are wall-clock epoch seconds (``time.time()``) taken from the caller, never read by
the store itself, so tests drive them exactly and every process of a store compares the
same kind of number. Windows of one fingerprint are shared by every process of a store:
hosts' clocks should agree to well within the store's grace (NTP does); see the
:mod:`~flask_alerting.store` docstring for what a skew costs.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

from ..alert import Alert
from .process import ProcessId


def _datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)


def _check_time(name: str, value: float) -> None:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")


@dataclasses.dataclass(frozen=True)
class NewWindow:
    """A request to open the window of ``fingerprint`` (see :meth:`Store.open_windows`).

    :param template: the alert that opens it (sent at once by the process that wins); a
        digest shows it when no later occurrence brought a newer one.
    :param window: the window's length in seconds (> 0); kept by the store, so the
        process that reopens it uses the same length.
    """

    fingerprint: str
    template: Alert
    window: float

    def __post_init__(self) -> None:
        _check_time("window", self.window)
        if self.window <= 0:
            raise ValueError(f"window must be > 0 seconds, got {self.window!r}")


@dataclasses.dataclass(frozen=True)
class Opened:
    """The answer to one :class:`NewWindow`.

    :param first: True for exactly one caller per window: it opened the window and sends
        the alert now. False: the window was open; count the occurrence (see
        :meth:`Store.add_counts`).
    :param end: when the window ends; None when the store holds its maximum of windows
        and did not track this one: send the alert, count nothing, ask again next time.
    """

    fingerprint: str
    first: bool
    end: float | None


@dataclasses.dataclass(frozen=True)
class Count:
    """Occurrences of ``fingerprint`` that one process suppressed, added in one batch.

    :param count: how many (>= 1).
    :param first_seen: when the first of them was raised (epoch seconds).
    :param last_seen: when the last of them was raised.
    :param values: how many of them carried a value (durations of slow calls), with
        their ``total``, ``high`` (max) and ``low`` (min), for the digest's statistics.
    :param template: a newer occurrence, built in full, for the digest to show instead of
        the stored one; None keeps the stored one.
    """

    fingerprint: str
    count: int
    first_seen: float
    last_seen: float
    values: int = 0
    total: float = 0.0
    high: float | None = None
    low: float | None = None
    template: Alert | None = None

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count!r}")
        _check_time("first_seen", self.first_seen)
        _check_time("last_seen", self.last_seen)
        if self.values and (self.high is None or self.low is None):
            raise ValueError("a count with values needs their high and low")

    def merged(self, other: Count) -> Count:
        """This count and ``other`` (same fingerprint) as one; ``other``'s template wins."""
        if other.fingerprint != self.fingerprint:
            raise ValueError("only counts of one fingerprint merge")
        highs = [v for v in (self.high, other.high) if v is not None]
        lows = [v for v in (self.low, other.low) if v is not None]
        return Count(
            self.fingerprint,
            self.count + other.count,
            min(self.first_seen, other.first_seen),
            max(self.last_seen, other.last_seen),
            self.values + other.values,
            self.total + other.total,
            max(highs) if highs else None,
            min(lows) if lows else None,
            other.template or self.template,
        )


@dataclasses.dataclass(frozen=True)
class Added:
    """The answer to one :class:`Count` of :meth:`Store.add_counts`.

    :param end: the end of the window the count went into (it may have been reopened
        since the caller last looked: the count then belongs to the next digest).
    :param returned: the count, not added, when the window no longer exists (its last
        period counted nothing and it was removed): the caller opens a new window and
        sends it as a new alert. Never dropped.
    """

    fingerprint: str
    end: float | None
    returned: Count | None = None

    @property
    def gone(self) -> bool:
        """Whether the window was gone and the count is returned."""
        return self.returned is not None


@dataclasses.dataclass(frozen=True)
class Digest:
    """What one window counted in one period, claimed by exactly one process.

    The digest waits in the claimer's outbox as record ``record`` until the claimer
    deletes it (after delivery): if the claimer dies first, another process claims it
    there (see :meth:`Store.outbox_claim`). Times are epoch seconds.

    :param template: the alert to show (the last one built in full); None only when the
        stored one could not be read.
    :param start: when the counted period began; ``end``: when it was due to end.
    :param next_end: the end of the reopened window; None when the window was removed
        (by :meth:`Store.drain`).
    """

    fingerprint: str
    count: int
    first_seen: float | None
    last_seen: float | None
    values: int
    total: float
    high: float | None
    low: float | None
    start: float
    end: float
    template: Alert | None
    record: str
    next_end: float | None

    @property
    def mean(self) -> float | None:
        """The mean of the counted values, if any carried one."""
        return self.total / self.values if self.values else None

    def to_alert(self, now: datetime) -> Alert | None:
        """The digest as the alert to send: the template with ``occurrences``, first and
        last seen, and ``details["digest"]`` (count; mean, max, min of the values), shaped
        as the per-process throttle shapes its digests. None without a template.

        :param now: the digest's timestamp (an aware datetime).
        """
        if self.template is None:
            return None
        info: dict[str, Any] = {"count": self.count}
        if self.values:
            info.update(mean=self.mean, max=self.high, min=self.low)
        return self.template.replace(
            occurrences=self.count,
            first_seen=_datetime(self.first_seen),
            last_seen=_datetime(self.last_seen),
            timestamp=now,
            value=self.high if self.values else self.template.value,
            details={**self.template.details, "digest": info},
        )


@dataclasses.dataclass(frozen=True)
class Claim:
    """The answer of :meth:`Store.claim_due`.

    :param digests: the digests this call claimed (windows that counted nothing were
        removed or reopened without one).
    :param next_due: the earliest end of the windows left in the store (epoch seconds),
        None when none is open: when to call again.
    :param more: True when ``limit`` was reached: call again now.
    """

    digests: tuple[Digest, ...]
    next_due: float | None
    more: bool = False


@dataclasses.dataclass(frozen=True)
class WindowInfo:
    """An open window, for status displays (:meth:`Store.windows`)."""

    fingerprint: str
    start: float
    end: float
    count: int
    owner: str


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
    """A registered process (:meth:`Store.processes`).

    :param deadline: the end of its lease (epoch seconds).
    :param alive: whether it is alive now (see :func:`~flask_alerting.store.is_alive`).
    """

    process: ProcessId
    deadline: float
    alive: bool


@dataclasses.dataclass(frozen=True)
class Outgoing:
    """An alert about to be delivered, for :meth:`Store.outbox_put`.

    :param notifiers: names of the notifiers that still owe it (the caller's names).
    """

    alert: Alert
    notifiers: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Put:
    """The answer of :meth:`Store.outbox_put`.

    :param ids: the record ids, in the order of the items.
    :param dropped: records dropped by the outbox's bounds (age, cap) since the last
        caller was told: tell it in the next message (``Alert.dropped``).
    """

    ids: tuple[str, ...]
    dropped: int


@dataclasses.dataclass(frozen=True)
class Record:
    """A record of the outbox: an alert still to deliver, or a claimed digest.

    Exactly one of ``alert`` and ``digest`` is set, unless the stored record could not be
    read (then neither is: delete it).

    :param owner: the process that delivers it (text form of a :class:`ProcessId`).
    :param created: when it was recorded (epoch seconds).
    :param notifiers: the notifiers that still owe it.
    :param recovered_from: set by :meth:`Store.outbox_claim`: the dead process it was
        taken from (mark the message as recovered).
    """

    id: str
    owner: str
    created: float
    notifiers: tuple[str, ...]
    alert: Alert | None
    digest: Digest | None
    recovered_from: str | None = None
