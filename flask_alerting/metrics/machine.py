"""A metric rule's state, as a pure state machine advanced one sample at a time.

No Flask, no threads, no I/O: time comes from an injected clock (monotonic seconds) and
values are handed in, so every transition is tested exactly.

Lifecycle of a rule (it breaches when ``value > threshold``)::

    ok --breach--> pending --breach lasting `for_` seconds--> firing --value < threshold
     ^                |                                      |  - hysteresis--> ok
     +--no breach-----+                  reminder every `repeat_seconds`   (+ "resolved")

``for_ = 0`` fires on the first breaching sample (a plain "value > threshold" check). A value that
oscillates around the threshold gives one firing alert and at most one resolved alert per
breach: while firing, only a drop below ``threshold - hysteresis`` resolves it (the
rule's definition, :class:`~.rules.Rule`, says how far below).

A "resolved" alert only follows a "firing" one that someone was told of: the machine
keeps the :attr:`~RuleMachine.notice` of the current breach (its "firing" alert handed to
delivery, recorded in the durable outbox of a shared store, or confirmed delivered), and
a breach that ends without one resolves quietly (:attr:`Event.notified` is False). A
state continued from another process (:meth:`RuleMachine.restore`) keeps "firing" only
when that process's alert is sure to reach someone, for the same rule definition
(:func:`~.rules.same_definition`): confirmed delivered, or recorded in the outbox (whoever
takes the record over delivers it, even after a SIGKILL).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from ..dispatch import Clock
from .rules import Rule, describe_definition, same_definition

State = Literal["ok", "pending", "firing"]
#: A rule's state as statuses show it: "unknown" when no current sample backs it.
ShownState = Literal["ok", "pending", "firing", "unknown"]
EventKind = Literal["firing", "reminder", "resolved"]
#: What became of the "firing" alert of a breach: handed to this process's delivery
#: pipeline ("queued"), recorded in the durable outbox of a shared store ("recorded":
#: delivered by this process or, if it dies, by the one that takes the record over), or
#: delivered by at least one notifier ("sent"). Only "queued" is lost with the process.
Notice = Literal["queued", "recorded", "sent"]
#: The notices that a process taking over continues as "firing" (see
#: :meth:`RuleMachine.restore`).
KEPT_NOTICES: frozenset[str] = frozenset({"recorded", "sent"})


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
    notified: bool = True
    """For "resolved": whether the breach's "firing" alert was handed to delivery or
    delivered. When it was not (it was lost), nobody should hear of its resolution."""


class RuleStatus(NamedTuple):
    """What ``flask alerting status`` shows for one rule.

    ``state`` is current (``ok``, ``pending``, ``firing``) only when a sampling process
    that is still running sampled the rule within the last few intervals; otherwise it
    is ``"unknown"``, :attr:`current` is False, :attr:`last_state` and :attr:`value` tell
    what was last recorded and :attr:`note` why it is not current.
    """

    name: str
    display_name: str
    state: ShownState
    """``ok``, ``pending``, ``firing``; ``unknown`` when not :attr:`current`."""
    value: float | None
    """The last value sampled (None: never sampled)."""
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
    current: bool = True
    """True when :attr:`state` is current: sampled within the last few intervals by a
    sampling process that is still running (see
    :class:`~flask_alerting.metrics.SamplingStatus`). False: :attr:`state` is
    ``"unknown"``."""
    last_state: State | None = None
    """The state at the last sample, current or not (None: never sampled, or not under
    this rule's definition)."""
    note: str | None = None
    """Why :attr:`state` is not current, one line (None when it is)."""


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
        #: What became of the current breach's "firing" alert (None: none was sent, or
        #: it was lost): see :meth:`recorded`, :meth:`confirm` and :meth:`lose`.
        self.notice: Notice | None = None
        #: Set by :meth:`restore`: what of a recorded state was not continued, and why.
        self.dropped: str | None = None

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
            # The caller hands the event's alert to delivery.
            self.notice = "queued"
            return Event("firing", rule, value, now - self.breach_started)
        # firing
        assert self.breach_started is not None and self.last_notified is not None
        duration = now - self.breach_started
        if value < rule.resolve_below:
            notified = self.notice is not None
            self._enter("ok", now)
            self.breach_started = None
            self.last_notified = None
            self.notice = None
            return Event("resolved", rule, value, duration, self.reminders, notified)
        if now - self.last_notified >= rule.repeat_seconds:
            self.last_notified = now
            self.reminders += 1
            return Event("reminder", rule, value, duration, self.reminders)
        return None

    def failed(self, error: str) -> None:
        """The probe raised: remember why; the state does not move."""
        self.error = error
        self.sampled_at = self.clock()

    def recorded(self) -> bool:
        """The current breach's "firing" alert was recorded in the durable outbox of a
        shared store: it will be delivered, by this process or, should this one be
        killed, by the next process of the store (marked as recovered).

        :return: True when that is news (the state to record changed): only a "queued"
            notice becomes "recorded" (a "sent" one stays, a lost one stays lost).
        """
        if self.state != "firing" or self.notice != "queued":
            return False
        self.notice = "recorded"
        return True

    def confirm(self) -> bool:
        """A notifier delivered an alert of the current breach ("firing" or a reminder).

        :return: True when that is news (the state to record changed).
        """
        if self.state != "firing" or self.notice == "sent":
            return False
        self.notice = "sent"
        return True

    def lose(self) -> bool:
        """The current breach's "firing" alert was lost before any delivery (dropped: a
        full queue, which also settles its outbox record for that notifier): its
        resolution will be quiet. True when that changed the notice."""
        if self.state != "firing" or self.notice not in ("queued", "recorded"):
            return False
        self.notice = None
        return True

    def _enter(self, state: State, now: float) -> None:
        self.state = state
        self.changed_at = now

    def status(self, *, stale: str | None = None) -> RuleStatus:
        """A read-only view for status displays.

        :param stale: why the state is not current (the sampling process stopped...);
            None: it is, when the rule was sampled at all. A state that is not current
            shows as ``"unknown"``.
        """
        now = self.clock()
        rule = self.rule
        sampled = self.sampled_at is not None
        note = stale if sampled else (stale or "never sampled")
        current = note is None
        return RuleStatus(
            name=rule.name,
            display_name=rule.display_name,
            state=self.state if current else "unknown",
            value=self.value,
            threshold=rule.threshold,
            resolve_below=rule.resolve_below,
            for_=rule.for_,
            severity=rule.severity,
            since=(
                max(0.0, now - self.changed_at)
                if current and self.changed_at is not None
                else None
            ),
            last_sample_age=None if self.sampled_at is None else max(0.0, now - self.sampled_at),
            error=self.error,
            current=current,
            last_state=self.state if sampled else None,
            note=note,
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
        """The state as plain data (JSON-able), for the process that takes over sampling:
        with the rule's definition (threshold, comparison) and the breach's notice."""
        data = {name: getattr(self, name) for name in self._SAVED}
        data["threshold"] = self.rule.threshold
        data["comparison"] = self.rule.comparison
        data["notice"] = self.notice
        return data

    def restore(self, data: Mapping[str, Any], *, continuing: bool = True) -> bool:
        """Adopt a :meth:`snapshot` taken with the same clock; False when it is unusable.

        :param continuing: this process continues the breach (it takes over sampling);
            False: only to show the recorded state as it is.

        Times later than now are taken as now. A breach is continued only as far as
        nobody is misled, and :attr:`dropped` then says what was not continued:

        - a snapshot of another definition of the rule (:func:`~.rules.same_definition`: its
          threshold changed between two runs) continues nothing: the rule starts afresh,
          so the new threshold never resolves a breach of the old one;
        - "firing" is continued only when its alert is sure to reach someone: it was
          confirmed delivered (``notice == "sent"``), or recorded in the durable outbox
          of a shared store (``"recorded"``: the process that takes the record over
          delivers it, marked as recovered, so firing again would say it twice). Else
          (``"queued"``: it was in the dead process's memory only) the breach goes on
          as "pending" since it began, so it fires at the next sample that still
          breaches (the alert that may never have left leaves now) and ends quietly
          otherwise: no "resolved" alert for a "firing" one nobody received.
        """
        self.dropped = None
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
        if continuing and state != "ok" and not same_definition(self.rule, data):
            self.dropped = (
                f"the rule changed since (it was {describe_definition(data)}, it is "
                f"{self.rule.comparison} {self.rule.threshold:g}): it starts afresh"
            )
            return True
        notice = data.get("notice")
        if continuing and state == "firing" and notice not in KEPT_NOTICES:
            # Nobody is known to have received the "firing" alert, nor will anyone
            # deliver it: continue the breach, not the notification.
            state = "pending"
            times["last_notified"] = None
            times["changed_at"] = times["breach_started"]
            reminders = 0
            self.dropped = (
                "its 'firing' alert was never confirmed delivered (nor recorded in the "
                "outbox of a shared store): it fires again if the breach goes on, and "
                "ends without a 'resolved' alert if not"
            )
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
        self.notice = (
            notice if state == "firing" and notice in ("queued", "recorded", "sent") else None
        )
        return True
