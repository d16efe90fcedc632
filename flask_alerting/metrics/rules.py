"""Metric rules: a pure state machine per rule, and the alerts its transitions produce.

No Flask, no threads, no I/O: time comes from an injected clock (monotonic seconds) and
values are handed in, so every transition is tested exactly.

Lifecycle of a rule (it breaches when ``value > threshold``)::

    ok --breach--> pending --breach lasting `for_` seconds--> firing --value < threshold
     ^                |                                      |  - hysteresis--> ok
     +--no breach-----+                  reminder every `repeat_seconds`   (+ "resolved")

``for_ = 0`` fires on the first breaching sample (a plain "value > threshold" check). A value that
oscillates around the threshold gives one firing alert and at most one resolved alert per
breach: while firing, only a drop below ``threshold - hysteresis`` resolves it.

For a threshold > 0 the hysteresis must be smaller than the threshold, so that a value of
0 always resolves a firing rule (for a threshold of 0 it must be 0);
:func:`default_hysteresis` turns the app's ``ALERTING_METRICS_HYSTERESIS`` into a
hysteresis that satisfies this.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from ..alert import SEVERITIES, Alert, Severity, make_fingerprint, one_line
from ..dispatch import Clock
from ..render import fmt_duration, fmt_value

if TYPE_CHECKING:
    from .processes import TopProcess

State = Literal["ok", "pending", "firing"]
EventKind = Literal["firing", "reminder", "resolved"]

#: A probe: any callable returning a number.
Probe = Callable[[], float]


@dataclasses.dataclass(frozen=True)
class Rule:
    """A threshold on a probe.

    :param name: short identifier, the alert's ``metric`` label (``"cpu"``, ``"queue-depth"``).
    :param probe: returns the current value.
    :param threshold: the rule breaches when the value is strictly above it.
    :param for_: seconds a breach must last before the rule fires (0: first sample).
    :param hysteresis: a firing rule resolves when the value drops below
        ``threshold - hysteresis``. For a threshold >= 0 it must be 0 or smaller than
        the threshold.
    :param repeat_seconds: reminder interval while the rule keeps firing.
    :param severity: of its alerts.
    :param display_name: used in the text ("CPU Usage"); default: ``name``.
    :param unit: of the values, shown after them (``"%"``, ``"MiB"``); default none.
    """

    name: str
    probe: Probe
    threshold: float
    for_: float = 0.0
    hysteresis: float = 0.0
    repeat_seconds: float = 3600.0
    severity: Severity = "warning"
    display_name: str = ""
    unit: str = ""

    def __post_init__(self) -> None:
        if (
            not isinstance(self.name, str)
            or not self.name.strip()
            or one_line(self.name) != self.name
        ):
            raise ValueError(f"rule name must be a non-empty single line, got {self.name!r}")
        if not callable(self.probe):
            raise TypeError(f"probe of rule {self.name!r} must be callable, got {self.probe!r}")
        for field, minimum in (
            ("threshold", None),
            ("for_", 0.0),
            ("hysteresis", 0.0),
            ("repeat_seconds", None),
        ):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{field} of rule {self.name!r} must be a number, got {value!r}")
            if not math.isfinite(value) or (minimum is not None and value < minimum):
                raise ValueError(f"{field} of rule {self.name!r} is out of range: {value!r}")
            object.__setattr__(self, field, float(value))
        if self.repeat_seconds <= 0:
            raise ValueError(f"repeat_seconds of rule {self.name!r} must be > 0")
        if 0.0 <= self.threshold <= self.hysteresis and self.hysteresis > 0.0:
            raise ValueError(
                f"hysteresis of rule {self.name!r} ({self.hysteresis:g}) would resolve it "
                f"only below {self.resolve_below:g}; with a threshold >= 0 it must be smaller "
                f"than the threshold ({self.threshold:g}), or 0"
            )
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)
        if not isinstance(self.unit, str) or one_line(self.unit) != self.unit:
            raise ValueError(f"unit of rule {self.name!r} must be one line, got {self.unit!r}")

    @property
    def resolve_below(self) -> float:
        """A firing rule resolves when the value drops below this."""
        return self.threshold - self.hysteresis


def check_new_name(name: str, rules: Iterable[Rule | RuleSpec]) -> None:
    """Refuse a second metric rule named ``name``: the name tells a rule's alerts apart
    (label ``metric``, fingerprint) and keys the state other processes continue.

    :raises ValueError: when one of ``rules`` has that name.
    """
    if any(rule.name == name for rule in rules):
        raise ValueError(f"a metric rule named {name!r} already exists")


def default_hysteresis(threshold: float, amount: float, *, relative: bool) -> float:
    """The hysteresis a rule gets from ``ALERTING_METRICS_HYSTERESIS`` (``amount``).

    :param relative: ``amount`` is a percent of the threshold (rules whose unit is not a
        percentage: process RSS, load, ``add_rule`` ones), else points (percent rules).

    For a positive threshold it is at most half the threshold, so the rule resolves at a
    value above 0: ``ALERTING_CPU_THRESHOLD = 3`` with the default 5 points resolves
    below 1.5, where 5 points would need a value below -2, which never comes. For a
    threshold of 0 it is 0 (the rule resolves below 0).
    """
    hysteresis = abs(threshold) * amount / 100.0 if relative else amount
    if threshold > 0.0:
        hysteresis = min(hysteresis, threshold / 2.0)
    elif threshold == 0.0:
        hysteresis = 0.0
    return hysteresis


@dataclasses.dataclass(frozen=True)
class RuleSpec:
    """A rule as given to ``add_rule``: None means "the app's configured default"."""

    name: str
    probe: Probe
    threshold: float
    for_: float | None = None
    hysteresis: float | None = None
    repeat_seconds: float | None = None
    severity: Severity = "warning"
    display_name: str = ""
    unit: str = ""

    def __post_init__(self) -> None:
        self.build(for_=0.0, hysteresis=0.0, repeat_seconds=1.0)  # validate now

    def build(self, *, for_: float, hysteresis: float, repeat_seconds: float) -> Rule:
        """The :class:`Rule`, with the defaults filled in where this spec has None."""
        return Rule(
            name=self.name,
            probe=self.probe,
            threshold=self.threshold,
            for_=for_ if self.for_ is None else self.for_,
            hysteresis=hysteresis if self.hysteresis is None else self.hysteresis,
            repeat_seconds=repeat_seconds if self.repeat_seconds is None else self.repeat_seconds,
            severity=self.severity,
            display_name=self.display_name,
            unit=self.unit,
        )


@dataclasses.dataclass(frozen=True)
class Event:
    """A transition worth an alert.

    :param kind: ``"firing"``, ``"reminder"`` or ``"resolved"``.
    :param value: the sample that caused it.
    :param breach_seconds: how long the breach has lasted (for "resolved": lasted).
    :param reminders: reminders sent so far for this breach (including this one).
    """

    kind: EventKind
    rule: Rule
    value: float
    breach_seconds: float
    reminders: int = 0


class RuleStatus(NamedTuple):
    """What ``flask alerting status`` shows for one rule."""

    name: str
    display_name: str
    state: State
    value: float | None
    threshold: float
    resolve_below: float
    for_: float
    severity: str
    since: float | None
    """Seconds in the current state (None: never sampled)."""
    last_sample_age: float | None
    """Seconds since the last sample (None: never sampled)."""
    error: str | None
    """The last probe error, if the last sample failed."""


class RuleMachine:
    """The state of one rule, advanced one sample at a time.

    :param rule: the rule.
    :param clock: monotonic seconds.
    """

    def __init__(self, rule: Rule, clock: Clock) -> None:
        self.rule = rule
        self.clock = clock
        self.state: State = "ok"
        self.value: float | None = None
        self.error: str | None = None
        self.breach_started: float | None = None
        self.last_notified: float | None = None
        self.reminders = 0
        self.changed_at: float | None = None
        self.sampled_at: float | None = None

    def observe(self, value: float) -> Event | None:
        """Take one sample; return the event it causes, if any.

        NaN is ignored (the state does not move).
        """
        now = self.clock()
        value = float(value)
        if math.isnan(value):
            return None
        rule = self.rule
        self.value = value
        self.error = None
        self.sampled_at = now
        breaching = value > rule.threshold
        if self.state == "ok":
            if not breaching:
                return None
            self.breach_started = now
            self._enter("pending", now)
        if self.state == "pending":
            if not breaching:
                self.breach_started = None
                self._enter("ok", now)
                return None
            assert self.breach_started is not None
            if now - self.breach_started < rule.for_:
                return None
            self._enter("firing", now)
            self.last_notified = now
            self.reminders = 0
            return Event("firing", rule, value, now - self.breach_started)
        # firing
        assert self.breach_started is not None and self.last_notified is not None
        duration = now - self.breach_started
        if value < rule.resolve_below:
            self._enter("ok", now)
            self.breach_started = None
            self.last_notified = None
            return Event("resolved", rule, value, duration, self.reminders)
        if now - self.last_notified >= rule.repeat_seconds:
            self.last_notified = now
            self.reminders += 1
            return Event("reminder", rule, value, duration, self.reminders)
        return None

    def failed(self, error: str) -> None:
        """The probe raised: remember why; the state does not move."""
        self.error = error
        self.sampled_at = self.clock()

    def _enter(self, state: State, now: float) -> None:
        self.state = state
        self.changed_at = now

    def status(self) -> RuleStatus:
        """A read-only view for status displays."""
        now = self.clock()
        rule = self.rule
        return RuleStatus(
            name=rule.name,
            display_name=rule.display_name,
            state=self.state,
            value=self.value,
            threshold=rule.threshold,
            resolve_below=rule.resolve_below,
            for_=rule.for_,
            severity=rule.severity,
            since=None if self.changed_at is None else max(0.0, now - self.changed_at),
            last_sample_age=None if self.sampled_at is None else max(0.0, now - self.sampled_at),
            error=self.error,
        )

    # -- hand-over between processes ----------------------------------------------------------

    _SAVED = (
        "state",
        "value",
        "breach_started",
        "last_notified",
        "reminders",
        "changed_at",
        "sampled_at",
        "error",
    )

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data (JSON-able), for the process that takes over sampling."""
        return {name: getattr(self, name) for name in self._SAVED}

    def restore(self, data: Mapping[str, Any]) -> bool:
        """Adopt a :meth:`snapshot` taken with the same clock; False when it is unusable.

        Times later than now are taken as now.
        """
        try:
            state = data["state"]
            if state not in ("ok", "pending", "firing"):
                return False
            times = {
                name: None if data.get(name) is None else float(data[name])
                for name in ("value", "breach_started", "last_notified", "changed_at", "sampled_at")
            }
            reminders = int(data.get("reminders") or 0)
            error = data.get("error")
        except (KeyError, TypeError, ValueError):
            return False
        now = self.clock()
        if state != "ok" and (
            times["breach_started"] is None or not times["breach_started"] <= now
        ):
            return False
        if state == "firing" and times["last_notified"] is None:
            return False
        # A time in the future (another clock, a forged file) would postpone reminders
        # and "since" indefinitely: nothing happened later than now.
        for name in ("last_notified", "changed_at", "sampled_at"):
            value = times[name]
            if value is not None and not value <= now:
                times[name] = now
        self.state = state
        self.value = times["value"]
        self.breach_started = times["breach_started"]
        self.last_notified = times["last_notified"]
        self.changed_at = times["changed_at"]
        self.sampled_at = times["sampled_at"]
        self.reminders = reminders
        self.error = error if isinstance(error, str) else None
        return True


# -- alerts -----------------------------------------------------------------------------------


def _process_lines(title: str, rows: Sequence[TopProcess], memory: bool) -> list[str]:
    if not rows:
        return []
    lines = [f"{title}:"]
    if memory:
        lines.append(f"  {'PID':>7}  {'RSS MiB':>9}  {'MEM%':>5}  NAME")
        lines += [
            f"  {r.pid:>7}  {r.rss / 1048576:>9.1f}  {r.memory_percent:>5.1f}  {r.name}"
            for r in rows
        ]
    else:
        lines.append(f"  {'PID':>7}  {'CPU%':>6}  {'MEM%':>5}  NAME")
        lines += [
            f"  {r.pid:>7}  {r.cpu_percent:>6.1f}  {r.memory_percent:>5.1f}  {r.name}" for r in rows
        ]
    return lines


def metric_alert(
    event: Event,
    *,
    labels: Mapping[str, str],
    now: datetime,
    top_cpu: Sequence[TopProcess] = (),
    top_memory: Sequence[TopProcess] = (),
) -> Alert:
    """The alert for a rule transition: value and threshold with their unit, host,
    duration of the breach, top processes.

    :param labels: ``app`` and ``host`` (the ``metric`` label is added).
    :param now: wall-clock time of the sample (aware UTC).
    :param top_cpu: :class:`~flask_alerting.metrics.processes.TopProcess` rows by CPU.
    :param top_memory: rows by resident memory.
    """
    rule = event.rule
    name = rule.display_name
    value = fmt_value(event.value, rule.unit)
    threshold = fmt_value(rule.threshold, rule.unit)
    host = labels.get("host", "")
    since = now - timedelta(seconds=event.breach_seconds)
    duration = fmt_duration(event.breach_seconds)
    if event.kind == "resolved":
        title = (
            f"{name} is back under the threshold: Current Value: {value}, Threshold: {threshold}"
        )
        lines = [
            f"The {name} is back under the threshold:",
            "",
            f"Current Value: {value}",
            f"Threshold: {threshold} (resolves below {fmt_value(rule.resolve_below, rule.unit)})",
            "",
            f"Host: {host}",
            f"The breach lasted {duration} (since {since:%Y-%m-%d %H:%M:%S} UTC).",
        ]
    else:
        verb = "has exceeded" if event.kind == "firing" else "is still above"
        title = f"{name} {verb} the threshold: Current Value: {value}, Threshold: {threshold}"
        lines = [
            f"The {name} {verb} the threshold:",
            "",
            f"Current Value: {value}",
            f"Threshold: {threshold}",
            "",
            f"Host: {host}",
            f"Above the threshold for {duration} (since {since:%Y-%m-%d %H:%M:%S} UTC).",
        ]
        if event.kind == "reminder":
            lines.append(
                f"Reminder {event.reminders}: this rule has been firing without a break; "
                f"next reminder in {fmt_duration(rule.repeat_seconds)} if it keeps firing."
            )
        cpu_lines = _process_lines("Top processes by CPU", top_cpu, memory=False)
        memory_lines = _process_lines("Top processes by memory", top_memory, memory=True)
        if cpu_lines or memory_lines:
            lines += ["", *cpu_lines]
            if cpu_lines and memory_lines:
                lines.append("")
            lines += memory_lines
    all_labels = {**labels, "metric": rule.name}
    return Alert(
        kind="metric",
        severity=rule.severity,
        status="resolved" if event.kind == "resolved" else "firing",
        title=title,
        message="\n".join(lines),
        labels=all_labels,
        fingerprint=make_fingerprint(
            "metric", all_labels.get("app"), all_labels.get("host"), rule.name
        ),
        value=event.value,
        threshold=rule.threshold,
        timestamp=now,
        details={
            "display_name": name,
            "unit": rule.unit,
            "breach_seconds": round(event.breach_seconds, 1),
        },
    )
