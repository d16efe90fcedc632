"""E-mails that read well: durations rounded, values with their unit, counts in words."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from flask import Flask

from flask_alerting import Alert, FlaskAlerting, MemoryNotifier
from flask_alerting.config import load_config
from flask_alerting.dispatch import Throttle
from flask_alerting.metrics.alerts import metric_alert
from flask_alerting.metrics.builtin import default_rules
from flask_alerting.metrics.machine import Event
from flask_alerting.metrics.rules import Rule
from flask_alerting.render import fmt_seconds, log_line, subject, text_body
from flask_alerting.slow_requests import slow_request_alert_builder
from flask_alerting.timing import timing_alert_builder
from tests.conftest import FakeClock

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
LABELS = {"app": "shop", "host": "web-1"}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (2.2034567, "2.20 s"),
        (2.0, "2.00 s"),
        (61.456, "61.46 s"),
        (0.349, "0.35 s"),
        (0.1, "0.10 s"),
        (0.045, "45 ms"),
        (0.0012, "1.2 ms"),
        (0.0, "0.00 s"),
    ],
)
def test_durations_are_rounded(seconds: float, text: str) -> None:
    assert fmt_seconds(seconds) == text


def test_a_slow_call_reads_in_rounded_seconds() -> None:
    alert = timing_alert_builder(
        "prediction_from_model", 2.2034567, 2.0,
        labels={**LABELS, "function": "prediction_from_model"}, timestamp=NOW,
    )()  # fmt: skip
    assert alert.title == "prediction_from_model took 2.20 s (threshold 2.00 s)"
    assert alert.message == "prediction_from_model took 2.20 s (threshold 2.00 s)."
    assert log_line(alert) == "prediction_from_model took 2.20 s (threshold 2.00 s)"
    body = text_body(alert)
    assert "Value: 2.20 s\nThreshold: 2.00 s\n" in body
    assert "2.2034567" not in body and "seconds to execute" not in body


def test_a_slow_request_reads_in_rounded_seconds() -> None:
    info = {"method": "GET", "path": "/report", "endpoint": "report", "status": 200}
    alert = slow_request_alert_builder(
        info, 6.0049, 5.0, labels={**LABELS, "function": "GET report"}, timestamp=NOW
    )()
    assert alert.title == "Slow request: GET /report took 6.00 s (threshold 5.00 s)"
    assert log_line(alert) == "GET /report took 6.00 s (threshold 5.00 s)"
    assert "  duration: 6.00 s" in text_body(alert)


def _cpu_rule(**kwargs: Any) -> Rule:
    return Rule(name="cpu", probe=lambda: 0.0, threshold=80.0, display_name="CPU Usage",
                unit="%", hysteresis=5.0, **kwargs)  # fmt: skip


def test_metric_values_carry_their_unit() -> None:
    alert = metric_alert(Event("firing", _cpu_rule(), 91.34, 45.0), labels=LABELS, now=NOW)
    assert alert.title == (
        "CPU Usage has exceeded the threshold: Current Value: 91.3 %, Threshold: 80.0 %"
    )
    assert alert.message.startswith(
        "The CPU Usage has exceeded the threshold:\n\nCurrent Value: 91.3 %\n"
        "Threshold: 80.0 %\n"
    )
    assert log_line(alert) == alert.title
    body = text_body(alert)
    assert "\nValue: 91.3 %\nThreshold: 80.0 %\n" in body
    # What the text already says is not repeated as raw details.
    for noise in ("Display name:", "Unit:", "Breach seconds:", "91.34"):
        assert noise not in body
    resolved = metric_alert(Event("resolved", _cpu_rule(), 70.0, 600.0), labels=LABELS, now=NOW)
    assert "Threshold: 80.0 % (resolves below 75.0 %)" in resolved.message


def test_built_in_rules_have_units() -> None:
    config = load_config(
        {"ALERTING_DISK_THRESHOLD": 90, "ALERTING_SWAP_THRESHOLD": 50,
         "ALERTING_RSS_THRESHOLD": 512, "ALERTING_LOAD_THRESHOLD": 2},
        {}, app_name="shop", testing=False,
    )  # fmt: skip
    units = {rule.name: rule.unit for rule in default_rules(config)}
    assert units == {"cpu": "%", "memory": "%", "disk": "%", "swap": "%", "rss": "MiB",
                     "load": ""}  # fmt: skip


def test_a_custom_rule_can_name_its_unit(
    app: Flask, make_alerting: Any, memory: MemoryNotifier
) -> None:
    alerting: FlaskAlerting = make_alerting(app, notifiers=[memory])
    alerting.add_rule("queue-depth", lambda: 150.0, threshold=100.0, unit="jobs")
    (rule,) = [r for r in app.extensions["alerting"].sampler.rules if r.name == "queue-depth"]
    alert = metric_alert(Event("firing", rule, 150.0, 30.0), labels=LABELS, now=NOW)
    assert alert.title.endswith("Current Value: 150.0 jobs, Threshold: 100.0 jobs")
    with pytest.raises(ValueError, match="unit"):
        alerting.add_rule("bad", lambda: 1.0, unit="jobs\nBcc: x")


def _digest(count: int, values: list[float] | None = None) -> Alert:
    clock = FakeClock()
    throttle = Throttle(60.0, clock, wall_clock=lambda: NOW)
    first = timing_alert_builder(
        "load", 2.5, 2.0, labels={**LABELS, "function": "load"}, timestamp=NOW
    )()
    assert throttle.offer(first)
    for value in values or [2.5] * count:
        assert not throttle.offer(first.replace(value=value))
    clock.advance(61)
    (digest,) = throttle.pop_due()
    return digest


def test_one_more_occurrence_is_singular() -> None:
    body = text_body(_digest(1))
    assert "This alert occurred 1 more time between " in body
    assert "1 more times" not in body


def test_more_occurrences_are_plural_and_values_have_their_unit() -> None:
    digest = _digest(3, [2.25, 3.5, 2.75])
    assert subject(digest, None).startswith("[shop] (3x) load took")
    body = text_body(digest)
    assert "This alert occurred 3 more times between " in body
    assert "Values: mean 2.83 s, max 3.50 s, min 2.25 s" in body
