"""Metric rules as defined: a probe, a threshold, timings; validated when made.

A rule breaches when its probe's value is strictly above its threshold. How its state
moves from there (pending, firing, resolved) is the state machine of :mod:`.machine`;
the alerts it sends are written by :mod:`.alerts`.

For a threshold > 0 the hysteresis must be smaller than the threshold, so that a value of
0 always resolves a firing rule (for a threshold of 0 it must be 0);
:func:`default_hysteresis` turns the app's ``ALERTING_METRICS_HYSTERESIS`` into a
hysteresis that satisfies this.

A state recorded by another process is continued only under the same definition of the
rule (:func:`same_definition`): a new threshold never resolves a breach of the old one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..alert import SEVERITIES, Severity, one_line

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

    @property
    def comparison(self) -> str:
        """How a value breaches: ``">"`` (strictly above the threshold), the only way so
        far. Part of the rule's definition that a recorded state must match."""
        return ">"


def describe_definition(saved: Mapping[str, Any]) -> str:
    """``"> 80"``: the definition a snapshot was taken under (``"?"`` where unknown)."""
    threshold = saved.get("threshold")
    shown = f"{threshold:g}" if isinstance(threshold, (int, float)) else "?"
    return f"{saved.get('comparison') or '?'} {shown}"


def same_definition(rule: Rule, saved: Mapping[str, Any]) -> bool:
    """Whether a :meth:`RuleMachine.snapshot` was taken for this definition of ``rule``:
    same threshold and comparison (the name is the key it was found under). A snapshot
    without them (written by an older version) matches nothing."""
    threshold = saved.get("threshold")
    return (
        isinstance(threshold, (int, float))
        and not isinstance(threshold, bool)
        and float(threshold) == rule.threshold
        and saved.get("comparison") == rule.comparison
    )


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
