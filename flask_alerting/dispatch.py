"""Throttle and dispatcher: which alerts leave now, which are grouped into digests.

Pure code: no Flask, no threads. Time comes from an injected clock (monotonic seconds), so
tests drive windows exactly.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from .alert import Alert, PendingAlert, utcnow
from .flood import FloodGuard
from .signals import alert_raised, alert_suppressed, send_safely

Clock = Callable[[], float]
logger = logging.getLogger("flask_alerting")

#: Fingerprints tracked at once by default; past that, the oldest windows are closed
#: early (their digests leave at once) to make room for new ones.
MAX_FINGERPRINTS = 10_000
#: Closed windows whose last alert is kept as a template (see Throttle.template).
RECENT_TEMPLATES = 256


@dataclasses.dataclass
class Window:
    """One fingerprint's window: when it ends (in the throttle's time) and what it
    counted (a digest's facts), with the last occurrence kept to show."""

    end: float
    last: Alert | PendingAlert | None = None
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    values: int = 0
    total: float = 0.0
    high: float = float("-inf")
    low: float = float("inf")

    def add(self, alert: Alert | PendingAlert) -> None:
        self.count += 1
        if not isinstance(alert, PendingAlert) or alert.build is not None:
            # Count-only occurrences carry nothing to show: the digest shows the last
            # occurrence captured in full (at worst the alert that opened the window).
            self.last = alert
        if self.first_seen is None:
            self.first_seen = alert.timestamp
        self.last_seen = alert.timestamp
        if alert.value is not None:
            self.values += 1
            self.total += alert.value
            self.high = max(self.high, alert.value)
            self.low = min(self.low, alert.value)

    def digest(self, now: datetime) -> Alert:
        assert self.last is not None
        # Only the last occurrence kept in full is ever built (see Dispatcher.dispatch_pending).
        last = self.last if isinstance(self.last, Alert) else self.last()
        assert last is not None
        info: dict[str, Any] = {"count": self.count}
        if self.values:
            info.update(mean=self.total / self.values, max=self.high, min=self.low)
        return last.replace(
            occurrences=self.count,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            timestamp=now,
            value=self.high if self.values else last.value,
            details={**last.details, "digest": info},
        )


class Throttle:
    """Per-fingerprint windows: first alert now, the rest of the window as one digest.

    The first alert of a fingerprint opens a window of ``window`` seconds and is sent.
    Alerts of that fingerprint inside the window are counted. When the window ends,
    :meth:`pop_due` returns one digest with ``occurrences`` = the count and opens the next
    window, so a continuous storm yields exactly one message per window. A window that
    ends with nothing counted is forgotten, and the next alert goes out at once.

    :param window: seconds; 0 disables throttling.
    :param clock: monotonic seconds.
    :param max_fingerprints: bound on open windows. A new fingerprint past the bound
        closes the oldest window early: its digest, if it counted anything, is returned
        by :meth:`take_evicted`, so first + digests = all still holds.
    :param wall_clock: aware UTC time for digest timestamps.
    """

    def __init__(
        self,
        window: float,
        clock: Clock,
        *,
        max_fingerprints: int = MAX_FINGERPRINTS,
        wall_clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if window < 0:
            raise ValueError("window must be >= 0")
        self.window = window
        self.clock = clock
        self.wall_clock = wall_clock
        self.max_fingerprints = max_fingerprints
        self._recent: collections.OrderedDict[str, Alert | PendingAlert] = (
            collections.OrderedDict()
        )
        # Insertion order == end order: windows are (re)opened at the current time and
        # all have the same length, so the first entry is always the next one due.
        self._windows: dict[str, Window] = {}
        self._evicted: list[Alert] = []
        #: Windows closed early because the table was full.
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._windows)

    def offer(self, alert: Alert | PendingAlert) -> bool:
        """Record ``alert``; True when it should be sent now, False when counted.

        Call :meth:`pop_due` first so that ended windows are closed, and
        :meth:`take_evicted` after, for the digests of windows closed to make room.
        """
        if self.window == 0:
            return True
        window = self._windows.get(alert.fingerprint)
        if window is not None:
            window.add(alert)
            return False
        while len(self._windows) >= self.max_fingerprints:
            self._evict()
        # The alert that opens a window is what a digest shows when every later
        # occurrence was only counted.
        self._windows[alert.fingerprint] = Window(end=self.clock() + self.window, last=alert)
        return True

    def _evict(self) -> None:
        """Close the oldest window now (it is the next one due)."""
        fingerprint, window = next(iter(self._windows.items()))
        del self._windows[fingerprint]
        if window.count:
            self._evicted.append(window.digest(self.wall_clock()))
        self._remember(fingerprint, window.last)
        self.evictions += 1
        if self.evictions == 1:
            logger.warning(
                "flask-alerting: %d fingerprints are throttled at once, the most kept; "
                "from now on the oldest window is closed early (its digest sent now) for "
                "each new fingerprint. A flood of distinct alerts? (logged once; see "
                "ALERTING_RATE_LIMIT)",
                self.max_fingerprints,
            )

    def take_evicted(self) -> list[Alert]:
        """Digests of the windows closed early by :meth:`offer` since the last call."""
        evicted, self._evicted = self._evicted, []
        return evicted

    def suppresses(self, fingerprint: str) -> bool:
        """Whether an alert of ``fingerprint`` would be counted, not sent (after
        :meth:`pop_due`)."""
        return fingerprint in self._windows

    def count(self, item: PendingAlert) -> None:
        """Count an occurrence that :meth:`suppresses`, without building it."""
        self._windows[item.fingerprint].add(item)

    def next_due(self) -> float | None:
        """Clock time at which the next window ends, or None when none is open."""
        for window in self._windows.values():
            return window.end
        return None

    def pop_due(self) -> list[Alert]:
        """Digests of the windows that have ended; reopens their windows."""
        now = self.clock()
        due: list[Alert] = []
        while self._windows:
            fingerprint, window = next(iter(self._windows.items()))
            if window.end > now:
                break
            del self._windows[fingerprint]
            if window.count:
                due.append(window.digest(self.wall_clock()))
                self._windows[fingerprint] = Window(end=now + self.window, last=window.last)
            else:
                self._remember(fingerprint, window.last)
        return due

    def _remember(self, fingerprint: str, last: Alert | PendingAlert | None) -> None:
        if last is None:
            return
        self._recent[fingerprint] = last
        self._recent.move_to_end(fingerprint)
        while len(self._recent) > RECENT_TEMPLATES:
            self._recent.popitem(last=False)

    def template(self, fingerprint: str) -> Alert | None:
        """The last alert built for ``fingerprint`` in a window that has closed, if known.

        For a count-only occurrence that arrives just after its window closed (its
        source saw the window open): it is then sent as a new alert shaped like this one,
        never lost.
        """
        last = self._recent.get(fingerprint)
        if last is None:
            window = self._windows.get(fingerprint)
            last = window.last if window is not None else None
        if last is None or isinstance(last, Alert):
            return last
        return last()

    def drain(self) -> list[Alert]:
        """Digests of every open window, now (for shutdown); forgets all windows."""
        now = self.wall_clock()
        due = [w.digest(now) for w in self._windows.values() if w.count]
        for fingerprint, window in self._windows.items():
            self._remember(fingerprint, window.last)
        self._windows.clear()
        return due

    def pending(self) -> dict[str, int]:
        """Fingerprint -> alerts counted in its open window (for status displays)."""
        return {fp: w.count for fp, w in self._windows.items() if w.count}

    def sync(self) -> None:
        """Nothing to do: the counts live here (see ``SharedThrottle.sync``)."""

    def record_of(self, digest: Alert) -> str | None:
        """None: this throttle's digests have no record yet (see
        ``SharedThrottle.record_of``)."""
        return None

    def discard(self, digest: Alert) -> None:
        """Nothing to do (see ``SharedThrottle.discard``)."""


class ThrottleLike(Protocol):
    """What the :class:`Dispatcher` needs of a throttle: :class:`Throttle` (per process)
    or :class:`~flask_alerting.delivery.shared_throttle.SharedThrottle` (a store's)."""

    window: float

    def __len__(self) -> int: ...
    def offer(self, alert: Alert | PendingAlert) -> bool: ...
    def take_evicted(self) -> list[Alert]: ...
    def suppresses(self, fingerprint: str) -> bool: ...
    def count(self, item: PendingAlert) -> None: ...
    def next_due(self) -> float | None: ...
    def pop_due(self) -> list[Alert]: ...
    def template(self, fingerprint: str) -> Alert | None: ...
    def record_of(self, digest: Alert) -> str | None: ...
    def discard(self, digest: Alert) -> None: ...
    def drain(self) -> list[Alert]: ...
    def pending(self) -> dict[str, int]: ...
    def sync(self) -> None: ...


class Dispatcher:
    """The single path of every alert: signal, log, throttle, hand over for delivery.

    :param sender: the Flask app, sender of the signals.
    :param throttle: per-fingerprint throttle (this process's, or a store's).
    :param deliver: called with each alert that should leave now (enqueues it).
    :param log: called with every raised alert (writes the alert log).
    :param log_logged: called instead of ``log`` for alerts their source already logged
        (not on to the root logger); None: nothing to write.
    :param wants_logged: whether ``log_logged`` would write anything now (default: whether
        there is one).
    :param guard: the flood guard (``ALERTING_RATE_LIMIT``); None: no limit.

    Metric alerts bypass the throttle: their rules have their own lifecycle (firing,
    reminders, resolved). A "resolved" alert of any kind never waits behind a window.
    Neither is ever folded by the flood guard, nor counted against its limit; first alerts
    and digests are (so first alerts + digests + flood summaries' counts = all).
    """

    def __init__(
        self,
        *,
        sender: Any,
        throttle: ThrottleLike,
        deliver: Callable[[Alert], None],
        log: Callable[[Alert], None],
        log_logged: Callable[[Alert], None] | None = None,
        wants_logged: Callable[[], bool] | None = None,
        guard: FloodGuard | None = None,
    ) -> None:
        self.sender = sender
        self.throttle = throttle
        self.guard = guard
        self.deliver = deliver
        self.log = log
        self.log_logged = log_logged
        self.wants_logged = wants_logged or (lambda: log_logged is not None)
        self.raised = 0
        self.suppressed = 0
        self.digests = 0

    @property
    def folded(self) -> int:
        """Alerts (first alerts and digests) folded into flood summaries so far."""
        return self.guard.folded if self.guard is not None else 0

    def dispatch(self, alert: Alert, *, logged: bool = False) -> None:
        """Take one raised alert through signal, log, throttle and flood guard.

        :param logged: its source already logged it (see :class:`PendingAlert`).
        """
        self.tick()
        self._raised(alert, logged)
        self._route(alert)

    def _raised(self, alert: Alert, logged: bool) -> None:
        self.raised += 1
        send_safely(alert_raised, self.sender, alert=alert)
        if not logged:
            self.log(alert)
        elif self.log_logged is not None:
            self.log_logged(alert)

    def _route(self, alert: Alert, *, admitted: bool = False) -> None:
        """Deliver, count into a digest, or fold into a flood summary.

        :param admitted: the flood guard already let it through.
        """
        if alert.kind == "metric" or alert.status == "resolved":
            self.deliver(alert)
            return
        opens = self.throttle.offer(alert)
        self._deliver_evicted()
        if not opens:
            self.suppressed += 1
            send_safely(alert_suppressed, self.sender, alert=alert)
        elif admitted or self.guard is None or self.guard.admit():
            self.deliver(alert)
        else:
            self.guard.fold(alert.fingerprint, alert.title, severity=alert.severity)
            send_safely(alert_suppressed, self.sender, alert=alert)

    def dispatch_pending(self, item: PendingAlert) -> None:
        """Like :meth:`dispatch` for an alert not built yet.

        In a storm, an occurrence that the throttle only counts, that nobody listens to
        and that needs no log line is counted without being built: suppressed duplicates
        cost a dictionary lookup, not a formatted traceback. In a flood of distinct
        alerts, likewise, one that the flood guard folds is counted by fingerprint and
        title, never built.
        """
        self.tick()
        throttle = self.throttle
        suppressed = throttle.suppresses(item.fingerprint)
        if suppressed and (item.build is None or (item.logged and self.counts_only())):
            self.raised += 1
            self.suppressed += 1
            throttle.count(item)
            return
        guard = self.guard
        if item.build is not None:
            if guard is None or suppressed or not (item.logged and self.counts_only()):
                self.dispatch(item.build(), logged=item.logged)
            elif guard.admit():
                alert = item.build()
                self._raised(alert, item.logged)
                self._route(alert, admitted=True)
            else:
                # Its window opens with it unbuilt: the digest (if any) builds it then.
                self.raised += 1
                throttle.offer(item)
                self._deliver_evicted()
                guard.fold(item.fingerprint, item.title or f"alert {item.fingerprint}")
            return
        # A count-only occurrence: its window closed after its source looked, or its
        # source saw the flood guard folding. Sent as a new alert shaped like the last one
        # of that fingerprint when there is one and the guard lets it through; else folded.
        template = throttle.template(item.fingerprint)
        if template is not None and (guard is None or guard.admit()):
            alert = template.replace(timestamp=item.timestamp)
            self._raised(alert, item.logged)
            self._route(alert, admitted=True)
        elif guard is not None:
            self.raised += 1
            title = item.title or (template.title if template is not None else None)
            guard.fold(item.fingerprint, title or f"alert {item.fingerprint}")
        else:  # pragma: no cover - needs 256 windows closing in between
            logger.warning("flask-alerting: an occurrence of %s could not be shown", item)

    def _deliver_digest(self, digest: Alert) -> None:
        self.digests += 1
        if self.guard is None or self.guard.admit():
            self.deliver(digest)
        else:
            self.throttle.discard(digest)
            self.guard.fold(
                digest.fingerprint,
                digest.title,
                occurrences=digest.occurrences,
                severity=digest.severity,
            )

    def _deliver_evicted(self) -> None:
        for digest in self.throttle.take_evicted():
            self._deliver_digest(digest)

    def counts_only(self) -> bool:
        """Whether a suppressed, already-logged occurrence needs nothing but counting:
        no log file to write and nobody listening to the signals."""
        return (
            not self.wants_logged()
            and not alert_raised.receivers
            and not alert_suppressed.receivers
        )

    def would_only_count(self, fingerprint: str) -> bool:
        """Whether an already-logged occurrence of ``fingerprint`` raised now would only
        be counted (into a digest, or into a flood summary), so that its source may skip
        capturing details.

        Read on the source's thread without a lock: a membership test on the throttle's
        dict and a look at one float of the flood guard are atomic, and a window that
        closes meanwhile is handled here (see :meth:`dispatch_pending`).
        """
        guard = self.guard
        return (
            self.throttle.suppresses(fingerprint) or (guard is not None and guard.folding())
        ) and self.counts_only()

    def tick(self) -> float | None:
        """Deliver digests (and the flood summary) that are due; return when the next one
        is due."""
        for digest in self.throttle.pop_due():
            self._deliver_digest(digest)
        due = self.throttle.next_due()
        guard = self.guard
        if guard is not None:
            summary = guard.pop_due()
            if summary is not None:
                self.deliver(summary)
            summary_due = guard.next_due()
            if summary_due is not None and (due is None or summary_due < due):
                due = summary_due
        return due

    def drain(self) -> None:
        """Deliver every pending digest, and the flood summary, now (shutdown)."""
        for digest in self.throttle.drain():
            self._deliver_digest(digest)
        if self.guard is not None:
            summary = self.guard.drain()
            if summary is not None:
                self.deliver(summary)
