"""The flood guard: at most so many alerts a minute, the rest folded into one summary.

The throttle groups the repeats of one fingerprint; a flood of *distinct* alerts (a new
error on every request, a broken deploy raising from many places) passes it untouched.
The guard bounds what leaves per minute, whatever the fingerprints: up to ``limit``
alerts may leave at once, then one more every ``period / limit`` seconds (a token bucket,
computed as GCRA: one number, no timer). Beyond that, alerts are *folded*: counted by
fingerprint, and one summary alert per ``period`` says how many there were, of how many
kinds, and lists the commonest.

Pure code: no Flask, no threads; time comes from an injected clock.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from datetime import datetime

from .alert import SEVERITIES, Alert, Severity, make_fingerprint, one_line, utcnow

Clock = Callable[[], float]

#: Fingerprints told apart in one summary; past that, folded alerts are only counted.
MAX_KINDS = 10_000
#: Kinds listed in a summary, commonest first.
TOP_KINDS = 10
#: Length at which a kind's title is cut in the summary.
KIND_TITLE_LENGTH = 160


@dataclasses.dataclass
class _Kind:
    title: str
    alerts: int = 0
    occurrences: int = 0


class FloodGuard:
    """Admits up to ``limit`` alerts a ``period``; counts the rest into one summary.

    :param limit: alerts that may leave per period (the bucket's size), >= 1.
    :param clock: monotonic seconds.
    :param period: seconds; one summary at most per period.
    :param labels: labels of the summary alert (``app``, ``host``).
    :param wall_clock: aware UTC time, for the summary's text and timestamp.
    :param top: kinds listed in a summary.
    :param max_kinds: fingerprints told apart in one summary (memory bound).
    """

    def __init__(
        self,
        limit: int,
        clock: Clock,
        *,
        period: float = 60.0,
        labels: Mapping[str, str] | None = None,
        wall_clock: Callable[[], datetime] = utcnow,
        top: int = TOP_KINDS,
        max_kinds: int = MAX_KINDS,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        if not (period > 0 and math.isfinite(period)):
            raise ValueError("period must be > 0")
        self.limit = limit
        self.period = float(period)
        self.clock = clock
        self.labels = dict(labels or {})
        self.wall_clock = wall_clock
        self.top = top
        self.max_kinds = max_kinds
        self._interval = self.period / limit
        self._tolerance = self.period - self._interval
        self._tat = -math.inf
        #: Clock time from which the next alert is admitted. Read without a lock by
        #: sources on other threads (:meth:`folding`): one float attribute.
        self.open_at = -math.inf
        #: Alerts folded since creation (for stats).
        self.folded = 0
        self._reset_summary()

    def _reset_summary(self) -> None:
        self._kinds: dict[str, _Kind] = {}
        self._due: float | None = None
        self._since: datetime | None = None
        self._alerts = 0
        self._occurrences = 0
        self._untracked = False
        self._severity: Severity = "info"

    # -- admission ----------------------------------------------------------------------------

    def admit(self) -> bool:
        """Take one alert's place in the bucket: True when the alert may leave now."""
        now = self.clock()
        if now < self.open_at:
            return False
        # GCRA: the bucket's "theoretical arrival time" moves one interval per alert
        # admitted, and alerts are admitted while it is less than a period ahead.
        self._tat = max(self._tat, now) + self._interval
        self.open_at = self._tat - self._tolerance
        return True

    def folding(self) -> bool:
        """Whether an alert raised now would be folded (a cheap look for sources)."""
        return self.clock() < self.open_at

    # -- folding ------------------------------------------------------------------------------

    def fold(
        self,
        fingerprint: str,
        title: str,
        *,
        occurrences: int = 1,
        severity: Severity = "error",
    ) -> None:
        """Count an alert that will not leave on its own (``occurrences`` > 1: a digest)."""
        if self._due is None:
            self._due = self.clock() + self.period
            self._since = self.wall_clock()
        self.folded += 1
        self._alerts += 1
        self._occurrences += occurrences
        if SEVERITIES.index(severity) > SEVERITIES.index(self._severity):
            self._severity = severity
        kind = self._kinds.get(fingerprint)
        if kind is None:
            if len(self._kinds) >= self.max_kinds:
                self._untracked = True
                return
            kind = self._kinds[fingerprint] = _Kind(one_line(title, KIND_TITLE_LENGTH))
        kind.alerts += 1
        kind.occurrences += occurrences

    def next_due(self) -> float | None:
        """Clock time at which the pending summary is due, or None when nothing is folded."""
        return self._due

    def pop_due(self) -> Alert | None:
        """The summary, when its period has ended (then a new period starts afresh)."""
        if self._due is None or self.clock() < self._due:
            return None
        return self._summary()

    def drain(self) -> Alert | None:
        """The pending summary now, if anything was folded (shutdown)."""
        return self._summary() if self._alerts else None

    # -- the summary --------------------------------------------------------------------------

    def _summary(self) -> Alert:
        now = self.wall_clock()
        since = self._since or now
        alerts, occurrences = self._alerts, self._occurrences
        kinds = sorted(self._kinds.values(), key=lambda k: -k.occurrences)  # stable
        shown = kinds[: self.top]
        of_kinds = (
            f"more than {self.max_kinds} kinds" if self._untracked else _plural(len(kinds), "kind")
        )
        if occurrences != alerts:
            of_kinds += f" ({occurrences} occurrences)"
        rate = "a minute" if self.period == 60 else f"every {self.period:g} s"
        lines = [
            f"From {since:%H:%M:%S} to {now:%H:%M:%S} UTC, {_plural(alerts, 'alert')} of "
            f"{of_kinds} {'was' if alerts == 1 else 'were'} raised beyond the limit of "
            f"{_plural(self.limit, 'alert')} {rate} (ALERTING_RATE_LIMIT); they were counted "
            f"here instead of being sent one by one. The top {len(shown)}:",
            "",
        ]
        lines += [f"{kind.occurrences:>7}  {kind.title}" for kind in shown]
        rest = occurrences - sum(kind.occurrences for kind in shown)
        if rest and self._untracked:
            lines.append(f"  and {rest} occurrences of other kinds.")
        elif rest:
            lines.append(
                f"  and {_plural(len(kinds) - len(shown), 'more kind')} ({rest} occurrences)."
            )
        details: dict[str, object] = {
            "alerts": alerts,
            "occurrences": occurrences,
            "kinds": len(kinds),
            "since": f"{since:%Y-%m-%d %H:%M:%S} UTC",
            "rate_limit": f"{self.limit} {rate}",
        }
        if self._untracked:
            details["more_kinds_not_told_apart"] = True
        summary = Alert(
            title=f"{alerts} more {'alert' if alerts == 1 else 'alerts'} of {of_kinds}, "
            "over the rate limit",
            message="\n".join(lines),
            kind="custom",
            severity=self._severity,
            labels=self.labels,
            fingerprint=make_fingerprint("flood-summary", self.labels.get("app")),
            timestamp=now,
            details={"flood": details},
        )
        self._reset_summary()
        return summary


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
