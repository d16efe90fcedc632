"""The example app's own tests: each alert source, through pytest-flask's ``client`` and
flask-alerting's ``captured_alerts`` fixture (alerts are recorded, never delivered).
"""

from __future__ import annotations

import threading

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_alerting import Alert, alert_raised
from flask_alerting import timing as alerting_timing
from flask_alerting.testing import record_alerts
from prediction_app import alerting, create_app
from prediction_app.model import SLOW_PREDICTION_SECONDS, Model

ERROR_PAGE = "An error occurred. The administrators have been notified."


class FakeClock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_the_form_offers_every_hour(client: FlaskClient, captured_alerts: list[Alert]) -> None:
    page = client.get("/").get_data(as_text=True)
    assert page.count("<option ") == 24
    assert captured_alerts == []


def test_a_prediction_raises_no_alert(client: FlaskClient, captured_alerts: list[Alert]) -> None:
    response = client.post("/", data={"hour": "8"})
    assert response.status_code == 200
    assert "At 08:00: coffee (55 %)" in response.get_data(as_text=True)
    assert captured_alerts == []


def test_the_json_api(client: FlaskClient, captured_alerts: list[Alert]) -> None:
    response = client.post("/api/predict", json={"hour": 12})
    assert response.status_code == 200
    assert response.json is not None
    assert response.json["category"] == "sandwiches"
    assert response.json["confidence"] == 0.38
    assert captured_alerts == []


@pytest.mark.parametrize("hour", ["24", "-1", "noon", ""])
def test_a_bad_hour_is_a_client_error_and_no_alert(
    client: FlaskClient, captured_alerts: list[Alert], hour: str
) -> None:
    assert client.post("/", data={"hour": hour}).status_code == 400
    assert client.post("/api/predict", json={"hour": hour}).status_code == 400
    assert captured_alerts == []


def test_a_failing_request_alerts_with_the_traceback(
    client: FlaskClient, captured_alerts: list[Alert]
) -> None:
    response = client.post("/", data={"hour": "3"})  # no model data at night: KeyError
    assert response.status_code == 500
    assert response.get_data(as_text=True) == ERROR_PAGE
    [alert] = captured_alerts
    assert alert.kind == "error" and alert.severity == "error"
    assert alert.labels["exception"] == "KeyError"
    assert alert.labels["endpoint"] == "prediction.index"
    assert alert.traceback is not None
    assert "in prediction_from_model" in alert.traceback
    assert alert.traceback.rstrip().endswith("KeyError: 3")
    assert alert.details["request"]["form"] == {"hour": "3"}


def test_a_json_client_gets_a_json_error(
    client: FlaskClient, captured_alerts: list[Alert]
) -> None:
    response = client.post("/api/predict", json={"hour": 2})
    assert response.status_code == 500
    assert response.json == {"error": ERROR_PAGE}
    [alert] = captured_alerts
    assert alert.labels["endpoint"] == "prediction.api_predict"


def test_the_same_bug_has_one_fingerprint(
    client: FlaskClient, captured_alerts: list[Alert]
) -> None:
    for hour in ("0", "3", "22"):
        client.post("/", data={"hour": hour})
    # Different messages (KeyError: 0, 3, 22), one bug: the throttle groups them.
    assert len({alert.fingerprint for alert in captured_alerts}) == 1
    assert len(captured_alerts) == 3


def test_only_the_night_hours_fail(app: Flask, client: FlaskClient) -> None:
    with record_alerts(app) as alerts:
        for hour in range(24):
            client.post("/", data={"hour": str(hour)})
    failed = [int(alert.details["request"]["form"]["hour"]) for alert in alerts]
    assert failed == [0, 1, 2, 3, 4, 5, 6, 21, 22, 23]


def test_alerts_go_to_a_sink_of_your_own(app: Flask, client: FlaskClient) -> None:
    titles: list[str] = []
    pipeline = app.extensions["alerting"].pipeline
    with pipeline.divert(lambda alert: titles.append(alert.title)):
        client.post("/", data={"hour": "3"})
    assert titles == ["KeyError: 3 in prediction.index"]


def test_a_slow_prediction_alerts(
    app: Flask,
    client: FlaskClient,
    captured_alerts: list[Alert],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # flask-alerting times calls with flask_alerting.timing.perf_counter: a fake clock
    # there, advanced by the model, makes the duration exact without waiting.
    clock = FakeClock()
    monkeypatch.setattr(alerting_timing, "perf_counter", clock)
    model: Model = app.extensions["prediction_model"]
    model.sleep = clock.advance

    model.latency = SLOW_PREDICTION_SECONDS / 2  # under the threshold: no alert
    assert client.post("/", data={"hour": "9"}).status_code == 200
    assert captured_alerts == []

    model.latency = SLOW_PREDICTION_SECONDS + 0.5
    assert client.post("/", data={"hour": "9"}).status_code == 200
    [alert] = captured_alerts
    assert alert.kind == "timing" and alert.severity == "warning"
    assert alert.labels["function"] == "prediction_from_model"
    assert alert.labels["endpoint"] == "prediction.index"
    assert alert.value == pytest.approx(SLOW_PREDICTION_SECONDS + 0.5)
    assert alert.threshold == SLOW_PREDICTION_SECONDS
    stats = alerting.timing_stats()["prediction_from_model"]
    assert stats.slow >= 1 and stats.max >= SLOW_PREDICTION_SECONDS


@pytest.mark.app_config(
    ALERTING_METRICS_ENABLED=True,
    ALERTING_METRICS_INTERVAL=0.05,
    ALERTING_METRICS_FOR=0,
    ALERTING_MEMORY_THRESHOLD=0,  # any memory use breaches: the host "is overloaded"
    ALERTING_CPU_THRESHOLD=None,
)
def test_host_metrics_alert(app: Flask, captured_alerts: list[Alert]) -> None:
    raised = threading.Event()
    with alert_raised.connected_to(lambda sender, alert: raised.set(), app):
        assert raised.wait(timeout=10), "the metrics sampler raised no alert within 10 s"
    alert = captured_alerts[0]
    assert alert.kind == "metric" and alert.labels["metric"] == "memory"
    assert alert.threshold == 0.0 and alert.value is not None and alert.value > 0
    assert alert.title.startswith("Memory Usage has exceeded the threshold")


def test_configured_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    password = "env-Pa55word-not-in-output"
    for name, value in {
        "FLASK_ALERTING_SMTP_HOST": "smtp.example.com",
        "FLASK_ALERTING_SMTP_PORT": "2525",
        "FLASK_ALERTING_SMTP_SECURITY": "starttls",
        "FLASK_ALERTING_SMTP_USERNAME": "alerts@example.com",
        "FLASK_ALERTING_MAIL_SENDER": "alerts@example.com",
        "FLASK_ALERTING_MAIL_RECIPIENTS": "admin@example.com, oncall@example.com",
        "EMAIL_PASSWORD": password,
    }.items():
        monkeypatch.setenv(name, value)
    app = create_app({"TESTING": True})
    try:
        result = app.test_cli_runner().invoke(args=["alerting", "status"])
    finally:
        alerting.shutdown(timeout=5)
    assert result.exit_code == 0, result.output
    assert (
        "smtp  starttls://alerts@example.com@smtp.example.com:2525 from alerts@example.com "
        "to admin@example.com, oncall@example.com" in result.output
    )
    assert "ALERTING_SMTP_PASSWORD" in result.output and password not in result.output
