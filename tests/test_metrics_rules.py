"""The metric rule state machine, driven exactly through an injected clock."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from flask_alerting.metrics.alerts import metric_alert
from flask_alerting.metrics.machine import Event, RuleMachine
from flask_alerting.metrics.processes import TopProcess
from flask_alerting.metrics.rules import Rule, RuleSpec, default_hysteresis
from flask_alerting.render import fmt_duration, fmt_number, log_line, text_body
from tests.conftest import FakeClock

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
LABELS = {"app": "shop", "host": "web-1"}


def rule(**kwargs: Any) -> Rule:
    defaults: dict[str, Any] = {
        "name": "cpu",
        "probe": lambda: 0.0,
        "threshold": 80.0,
        "for_": 30.0,
        "hysteresis": 5.0,
        "repeat_seconds": 3600.0,
        "display_name": "CPU Usage",
    }
    defaults.update(kwargs)
    return Rule(**defaults)


def run(
    machine: RuleMachine, clock: FakeClock, values: list[float], step: float = 5.0
) -> list[tuple[float, str, float]]:
    """Feed ``values`` one per ``step`` seconds; (elapsed, kind, value) of each event."""
    start = clock.now
    events: list[tuple[float, str, float]] = []
    for value in values:
        event = machine.observe(value)
        if event is not None:
            events.append((clock.now - start, event.kind, event.value))
        clock.advance(step)
    return events


def test_ok_stays_ok_at_and_below_threshold(clock: FakeClock) -> None:
    machine = RuleMachine(rule(), clock)
    # "value > threshold" breaches, as the seed's check: 80.0 itself does not.
    assert run(machine, clock, [10.0, 79.9, 80.0, 80.0]) == []
    assert machine.state == "ok"


def test_first_breach_goes_pending_then_fires_after_for(clock: FakeClock) -> None:
    machine = RuleMachine(rule(for_=30.0), clock)
    assert machine.observe(85.0) is None
    assert machine.state == "pending"
    clock.advance(29.9)
    assert machine.observe(90.0) is None
    assert machine.state == "pending"
    clock.advance(0.1)
    event = machine.observe(91.0)
    assert event is not None and event.kind == "firing"
    assert machine.state == "firing"  # type: ignore[comparison-overlap]
    assert event.value == 91.0
    assert event.breach_seconds == pytest.approx(30.0)


def test_pending_breach_interrupted_starts_over(clock: FakeClock) -> None:
    machine = RuleMachine(rule(for_=30.0), clock)
    # 25 s above, one sample at the threshold, then 25 s above again: never 30 s in a row.
    values = [90.0] * 6 + [80.0] + [90.0] * 6
    assert run(machine, clock, values) == []
    assert machine.state == "pending"
    # the breach that started after the interruption fires 30 s after its own start
    assert run(machine, clock, [90.0]) == [(0.0, "firing", 90.0)]


def test_for_zero_fires_on_first_sample_like_the_seed(clock: FakeClock) -> None:
    machine = RuleMachine(rule(for_=0.0), clock)
    event = machine.observe(93.1)
    assert event is not None and event.kind == "firing"
    assert event.breach_seconds == 0.0
    assert machine.state == "firing"


def test_reminder_every_repeat_seconds_while_firing(clock: FakeClock) -> None:
    machine = RuleMachine(rule(for_=0.0, repeat_seconds=60.0), clock)
    # 10 s steps for 200 s: firing at 0, reminders at 60, 120, 180.
    events = run(machine, clock, [95.0] * 21, step=10.0)
    assert [(t, kind) for t, kind, _ in events] == [
        (0.0, "firing"),
        (60.0, "reminder"),
        (120.0, "reminder"),
        (180.0, "reminder"),
    ]
    assert machine.reminders == 3


def test_reminder_counts_and_duration(clock: FakeClock) -> None:
    machine = RuleMachine(rule(for_=10.0, repeat_seconds=100.0), clock)
    machine.observe(90.0)
    clock.advance(10.0)
    assert machine.observe(90.0).kind == "firing"  # type: ignore[union-attr]
    clock.advance(100.0)
    event = machine.observe(90.0)
    assert event is not None and event.kind == "reminder"
    assert event.reminders == 1
    assert event.breach_seconds == pytest.approx(110.0)


def test_hysteresis_band_keeps_firing_and_resolves_below_it(clock: FakeClock) -> None:
    machine = RuleMachine(rule(for_=0.0, hysteresis=5.0), clock)
    assert machine.observe(90.0).kind == "firing"  # type: ignore[union-attr]
    clock.advance(5)
    # inside the band [75, 80]: below the threshold, but not resolved
    for value in (79.0, 75.0, 77.0):
        assert machine.observe(value) is None
        assert machine.state == "firing"
        clock.advance(5)
    event = machine.observe(74.9)
    assert event is not None and event.kind == "resolved"
    assert event.value == 74.9
    assert event.breach_seconds == pytest.approx(20.0)
    assert machine.state == "ok"


@pytest.mark.parametrize(("threshold", "hysteresis"), [(1.0, 5.0), (3.0, 3.0), (0.0, 0.5)])
def test_hysteresis_reaching_below_zero_is_refused(threshold: float, hysteresis: float) -> None:
    """threshold=1, hysteresis=5 would resolve below -4: a count never gets there."""
    with pytest.raises(ValueError, match="hysteresis of rule 'error-rate'"):
        rule(name="error-rate", threshold=threshold, hysteresis=hysteresis)
    with pytest.raises(ValueError, match="hysteresis"):  # add_rule builds a RuleSpec
        RuleSpec(name="error-rate", probe=lambda: 0.0, threshold=threshold, hysteresis=hysteresis)


def test_negative_threshold_takes_any_hysteresis(clock: FakeClock) -> None:
    machine = RuleMachine(rule(threshold=-10.0, hysteresis=5.0, for_=0.0), clock)
    assert machine.rule.resolve_below == -15.0
    events = run(machine, clock, [-12.0, -5.0, -14.0, -15.5])
    assert [(kind, value) for _, kind, value in events] == [
        ("firing", -5.0),
        ("resolved", -15.5),
    ]


@pytest.mark.parametrize(
    ("threshold", "amount", "relative", "expected"),
    [
        (80.0, 5.0, False, 5.0),  # points, as configured
        (3.0, 5.0, False, 1.5),  # ALERTING_CPU_THRESHOLD=3: at most half the threshold
        (0.0, 5.0, False, 0.0),
        (1024.0, 10.0, True, 102.4),  # percent of the threshold
        (1.0, 5.0, True, 0.05),
        (2.0, 100.0, True, 1.0),  # 100 % would resolve only below 0
        (-10.0, 5.0, True, 0.5),
        (0.0, 5.0, True, 0.0),
    ],
)
def test_default_hysteresis(
    threshold: float, amount: float, relative: bool, expected: float
) -> None:
    hysteresis = default_hysteresis(threshold, amount, relative=relative)
    assert hysteresis == pytest.approx(expected)
    rule(threshold=threshold, hysteresis=hysteresis)  # always a valid rule


def test_oscillating_value_gives_one_firing_and_one_resolved_per_breach(
    clock: FakeClock,
) -> None:
    machine = RuleMachine(rule(for_=0.0, hysteresis=5.0), clock)
    # 60 samples flapping across the threshold, inside the hysteresis band
    flapping = [81.0, 79.0] * 30
    # then a real recovery, a quiet spell, and a second breach that flaps too
    series = flapping + [60.0, 60.0] + [81.0, 78.0] * 10 + [50.0]
    events = run(machine, clock, series)
    assert [kind for _, kind, _ in events] == ["firing", "resolved", "firing", "resolved"]


def test_oscillation_with_for_never_fires(clock: FakeClock) -> None:
    """Flapping above/below every other sample never holds the breach for 30 s."""
    machine = RuleMachine(rule(for_=30.0), clock)
    assert run(machine, clock, [90.0, 70.0] * 50) == []


def test_resolved_only_from_firing(clock: FakeClock) -> None:
    machine = RuleMachine(rule(for_=30.0), clock)
    # pending, then a deep drop: back to ok without any alert
    assert run(machine, clock, [90.0, 90.0, 10.0]) == []
    assert machine.state == "ok"


def test_after_resolution_a_new_breach_restarts_for(clock: FakeClock) -> None:
    machine = RuleMachine(rule(for_=10.0), clock)
    events = run(machine, clock, [90.0, 90.0, 90.0, 50.0, 90.0, 90.0, 90.0])
    assert [(t, kind) for t, kind, _ in events] == [
        (10.0, "firing"),
        (15.0, "resolved"),
        (30.0, "firing"),
    ]


def test_reminder_clock_restarts_with_each_breach(clock: FakeClock) -> None:
    machine = RuleMachine(rule(for_=0.0, repeat_seconds=50.0), clock)
    events = run(machine, clock, [90.0] * 3 + [10.0] + [90.0] * 11, step=10.0)
    assert [(t, kind) for t, kind, _ in events] == [
        (0.0, "firing"),
        (30.0, "resolved"),
        (40.0, "firing"),
        (90.0, "reminder"),
        (140.0, "reminder"),
    ]


def test_nan_is_ignored(clock: FakeClock) -> None:
    machine = RuleMachine(rule(for_=0.0), clock)
    machine.observe(90.0)
    assert machine.observe(float("nan")) is None
    assert machine.state == "firing" and machine.value == 90.0


def test_failed_probe_keeps_state_and_records_error(clock: FakeClock) -> None:
    machine = RuleMachine(rule(for_=0.0), clock)
    machine.observe(90.0)
    machine.failed("OSError: boom")
    status = machine.status()
    assert status.state == "firing" and status.error == "OSError: boom"
    machine.observe(91.0)
    assert machine.status().error is None


def test_status_reports_state_value_and_ages(clock: FakeClock) -> None:
    machine = RuleMachine(rule(for_=30.0), clock)
    status = machine.status()
    # never sampled: nothing is known yet, so not "ok"
    assert (status.state, status.value, status.since, status.last_sample_age) == (
        "unknown",
        None,
        None,
        None,
    )
    assert (status.current, status.last_state, status.note) == (False, None, "never sampled")
    machine.observe(85.0)
    clock.advance(12.0)
    status = machine.status()
    assert status.name == "cpu" and status.display_name == "CPU Usage"
    assert status.state == "pending" and status.value == 85.0
    assert status.since == pytest.approx(12.0)
    assert status.last_sample_age == pytest.approx(12.0)
    assert status.threshold == 80.0 and status.resolve_below == 75.0
    assert (status.current, status.last_state, status.note) == (True, "pending", None)
    stale = machine.status(stale="not current: the sampling process is not running")
    assert (stale.state, stale.current, stale.last_state, stale.value) == (
        "unknown",
        False,
        "pending",
        85.0,
    )
    assert stale.since is None and stale.note == "not current: the sampling process is not running"


def test_snapshot_restore_continues_the_breach(clock: FakeClock) -> None:
    first = RuleMachine(rule(for_=0.0, repeat_seconds=100.0), clock)
    first.observe(90.0)
    assert first.confirm()  # its "firing" alert was delivered
    clock.advance(30.0)
    second = RuleMachine(rule(for_=0.0, repeat_seconds=100.0), clock)
    assert second.restore(first.snapshot())
    # still breaching: no second "firing" ...
    assert second.observe(92.0) is None
    # ... the reminder keeps the original schedule, and the breach its start
    clock.advance(70.0)
    event = second.observe(92.0)
    assert event is not None and event.kind == "reminder"
    assert event.breach_seconds == pytest.approx(100.0)
    clock.advance(5.0)
    assert second.observe(10.0).kind == "resolved"  # type: ignore[union-attr]


def test_a_breach_whose_firing_alert_was_lost_resolves_quietly(clock: FakeClock) -> None:
    machine = RuleMachine(rule(for_=0.0), clock)
    assert machine.observe(90.0).kind == "firing"  # type: ignore[union-attr]
    assert machine.notice == "queued"  # handed to delivery by the caller
    assert machine.lose() and machine.notice is None
    clock.advance(5.0)
    event = machine.observe(10.0)
    assert event is not None and event.kind == "resolved" and not event.notified
    # the next breach is notified again
    assert machine.observe(90.0).kind == "firing"  # type: ignore[union-attr]
    clock.advance(5.0)
    assert machine.observe(10.0).notified  # type: ignore[union-attr]


def test_confirm_and_lose_only_concern_a_firing_breach(clock: FakeClock) -> None:
    machine = RuleMachine(rule(for_=30.0), clock)
    assert not machine.confirm() and not machine.lose()  # ok: nothing to confirm
    machine.observe(90.0)  # pending
    assert not machine.confirm() and machine.notice is None
    clock.advance(30.0)
    machine.observe(90.0)  # firing
    assert machine.confirm() and machine.notice == "sent"
    assert not machine.confirm()  # no news
    assert not machine.lose()  # delivered by one notifier: it was not lost
    assert machine.notice == "sent"


def test_recorded_only_follows_a_queued_firing_alert(clock: FakeClock) -> None:
    machine = RuleMachine(rule(for_=0.0), clock)
    assert not machine.recorded() and machine.notice is None  # ok: nothing to record
    machine.observe(90.0)
    assert machine.recorded() and machine.notice == "recorded"  # in the outbox
    assert not machine.recorded()  # no news
    assert machine.confirm() and machine.notice == "sent"
    assert not machine.recorded() and machine.notice == "sent"  # never back from "sent"
    clock.advance(5.0)
    machine.observe(10.0)
    machine.observe(90.0)  # a new breach, "queued"
    assert machine.lose() and not machine.recorded()  # a lost alert stays lost


def test_a_recorded_firing_alert_that_was_dropped_resolves_quietly(clock: FakeClock) -> None:
    machine = RuleMachine(rule(for_=0.0), clock)
    machine.observe(90.0)
    assert machine.recorded()
    # its only notifier's queue was full: the record no longer owes anybody
    assert machine.lose() and machine.notice is None
    clock.advance(5.0)
    event = machine.observe(10.0)
    assert event is not None and event.kind == "resolved" and not event.notified


def _fired(
    clock: FakeClock, *, delivered: bool, recorded: bool = False, **kwargs: Any
) -> dict[str, Any]:
    first = RuleMachine(rule(for_=0.0, **kwargs), clock)
    first.observe(90.0)
    if recorded:
        first.recorded()
    if delivered:
        first.confirm()
    return first.snapshot()


@pytest.mark.parametrize("breach", ["goes on", "ended"])
def test_restore_continues_a_firing_whose_alert_is_in_the_outbox(
    clock: FakeClock, breach: str
) -> None:
    """Recorded in the outbox of a shared store, the alert is delivered by whoever takes
    the record over: the breach was told of, and is continued as "firing"."""
    saved = _fired(clock, delivered=False, recorded=True)
    assert saved["notice"] == "recorded"
    clock.advance(30.0)
    second = RuleMachine(rule(for_=0.0), clock)
    assert second.restore(saved)
    assert (second.state, second.notice, second.dropped) == ("firing", "recorded", None)
    if breach == "goes on":
        assert second.observe(91.0) is None  # no second "firing" alert
    event = second.observe(10.0)
    assert event is not None and event.kind == "resolved" and event.notified
    assert event.breach_seconds == pytest.approx(30.0)


def test_snapshot_names_the_definition_and_the_notice(clock: FakeClock) -> None:
    saved = _fired(clock, delivered=True)
    assert (saved["threshold"], saved["comparison"], saved["notice"]) == (80.0, ">", "sent")
    assert _fired(clock, delivered=False)["notice"] == "queued"


def test_restore_continues_an_undelivered_firing_as_pending(clock: FakeClock) -> None:
    saved = _fired(clock, delivered=False)
    clock.advance(30.0)
    second = RuleMachine(rule(for_=0.0), clock)
    assert second.restore(saved)
    assert (second.state, second.notice, second.last_notified) == ("pending", None, None)
    assert second.dropped is not None and "never confirmed delivered" in second.dropped
    # the breach goes on: it fires now, its duration counted from its real start
    event = second.observe(91.0)
    assert event is not None and event.kind == "firing"
    assert event.breach_seconds == pytest.approx(30.0)


def test_restore_of_an_undelivered_firing_that_ended_is_quiet(clock: FakeClock) -> None:
    second = RuleMachine(rule(for_=0.0), clock)
    assert second.restore(_fired(clock, delivered=False))
    assert second.observe(10.0) is None  # no "resolved" for a "firing" nobody received
    assert second.state == "ok"


@pytest.mark.parametrize(
    "change", [{"threshold": 85.0}, {"threshold": None}], ids=["new-threshold", "older-version"]
)
def test_restore_under_another_definition_starts_afresh(
    clock: FakeClock, change: dict[str, Any]
) -> None:
    saved = _fired(clock, delivered=True)
    if change["threshold"] is None:
        for key in ("threshold", "comparison", "notice"):  # written before 0.2
            del saved[key]
    second = RuleMachine(rule(for_=0.0, threshold=95.0), clock)
    assert second.restore(saved)
    assert (second.state, second.breach_started, second.value) == ("ok", None, None)
    assert second.dropped is not None and "it is > 95" in second.dropped
    # 90 under the new threshold: a continued "firing" would have resolved here
    assert second.observe(10.0) is None and second.observe(90.0) is None


def test_restore_for_display_keeps_the_state_as_recorded(clock: FakeClock) -> None:
    shown = RuleMachine(rule(for_=0.0), clock)
    assert shown.restore(_fired(clock, delivered=False), continuing=False)
    assert (shown.state, shown.notice, shown.dropped) == ("firing", "queued", None)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"state": "exploded"},
        {"state": "firing", "breach_started": None, "last_notified": 1.0},
        {"state": "firing", "breach_started": 1.0, "last_notified": None},
        {"state": "pending", "breach_started": 10_000.0},  # in the future
        {"state": "ok", "value": "not a number"},
    ],
)
def test_restore_rejects_unusable_snapshots(clock: FakeClock, data: dict[str, Any]) -> None:
    machine = RuleMachine(rule(), clock)
    assert not machine.restore(data)
    assert machine.state == "ok"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"name": "two\nlines"},
        {"threshold": float("nan")},
        {"threshold": "80"},
        {"threshold": True},
        {"for_": -1.0},
        {"hysteresis": -0.5},
        {"repeat_seconds": 0.0},
        {"severity": "fatal"},
        {"probe": 42},
    ],
)
def test_invalid_rules_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        rule(**kwargs)


def test_rule_spec_fills_defaults_and_validates_early() -> None:
    spec = RuleSpec(name="queue-depth", probe=lambda: 1.0, threshold=100.0, hysteresis=10.0)
    built = spec.build(for_=30.0, hysteresis=5.0, repeat_seconds=3600.0)
    assert (built.for_, built.hysteresis, built.repeat_seconds) == (30.0, 10.0, 3600.0)
    assert built.display_name == "queue-depth"
    with pytest.raises(ValueError):
        RuleSpec(name="bad", probe=lambda: 1.0, threshold=1.0, for_=-3.0)


# -- alert text -------------------------------------------------------------------------------


def test_firing_alert_keeps_the_seed_wording_and_adds_host_duration_top() -> None:
    r = rule(for_=30.0, severity="critical")
    top_cpu = [TopProcess(4242, "python", 97.5, 300 * 1048576, 1.9)]
    top_mem = [TopProcess(99, "postgres", 0.5, 2048 * 1048576, 12.5)]
    alert = metric_alert(
        Event("firing", r, 93.1, 95.0),
        labels=LABELS,
        now=NOW,
        top_cpu=top_cpu,
        top_memory=top_mem,
    )
    assert alert.kind == "metric" and alert.status == "firing"
    assert alert.severity == "critical"
    assert dict(alert.labels) == {"app": "shop", "host": "web-1", "metric": "cpu"}
    assert (alert.value, alert.threshold) == (93.1, 80.0)
    assert alert.title == (
        "CPU Usage has exceeded the threshold: Current Value: 93.1, Threshold: 80.0"
    )
    # the seed's email text, word for word, opens the message
    assert alert.message.startswith(
        "The CPU Usage has exceeded the threshold:\n\nCurrent Value: 93.1\nThreshold: 80.0"
    )
    assert "Host: web-1" in alert.message
    assert "Above the threshold for 1 min 35 s (since 2024-05-01 11:58:25 UTC)." in (alert.message)
    lines = alert.message.splitlines()
    cpu_at = lines.index("Top processes by CPU:")
    assert lines[cpu_at + 2].split() == ["4242", "97.5", "1.9", "python"]
    mem_at = lines.index("Top processes by memory:")
    assert lines[mem_at + 2].split() == ["99", "2048.0", "12.5", "postgres"]
    # the seed's log line, through the shared renderer
    assert log_line(alert) == (
        "CPU Usage has exceeded the threshold: Current Value: 93.1, Threshold: 80.0"
    )
    assert alert.details["display_name"] == "CPU Usage"
    assert "The CPU Usage has exceeded the threshold:" in text_body(alert)


def test_resolved_alert() -> None:
    r = rule(name="memory", display_name="Memory Usage")
    alert = metric_alert(Event("resolved", r, 70.25, 3725.0), labels=LABELS, now=NOW)
    assert alert.status == "resolved" and alert.kind == "metric"
    assert alert.title == (
        "Memory Usage is back under the threshold: Current Value: 70.25, Threshold: 80.0"
    )
    assert "resolves below 75.0" in alert.message
    assert "The breach lasted 1 h 2 min (since 2024-05-01 10:57:55 UTC)." in alert.message
    assert "Top processes" not in alert.message
    assert log_line(alert).startswith("Memory Usage is back under the threshold")


def test_reminder_alert_and_fingerprint_is_per_rule_not_per_value() -> None:
    r = rule(repeat_seconds=3600.0)
    firing = metric_alert(Event("firing", r, 90.0, 30.0), labels=LABELS, now=NOW)
    reminder = metric_alert(Event("reminder", r, 99.0, 3630.0, 1), labels=LABELS, now=NOW)
    assert reminder.status == "firing"
    assert reminder.title.startswith("CPU Usage is still above the threshold")
    assert "Reminder 1:" in reminder.message and "next reminder in 1 h 0 min" in reminder.message
    assert firing.fingerprint == reminder.fingerprint
    other = metric_alert(Event("firing", rule(name="memory"), 90.0, 30.0), labels=LABELS, now=NOW)
    assert other.fingerprint != firing.fingerprint


@pytest.mark.parametrize(
    ("value", "text"),
    [(93.1, "93.1"), (80, "80.0"), (0.1 + 0.2, "0.3"), (1234567.89, "1234567.89")],
)
def test_fmt_number(value: float, text: str) -> None:
    assert fmt_number(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (45.4, "45 s"),
        (125, "2 min 5 s"),
        (3 * 3600 + 120, "3 h 2 min"),
        (2 * 86400 + 4 * 3600, "2 d 4 h"),
    ],
)
def test_fmt_duration(seconds: float, text: str) -> None:
    assert fmt_duration(seconds) == text
