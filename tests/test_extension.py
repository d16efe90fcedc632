"""The extension: per-app state, init rules, several apps, context rules, error responses,
signals, and the alert log (ALERTING_LOG_FILE)."""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, abort
from werkzeug.exceptions import HTTPException, InternalServerError

from flask_alerting import (
    Alert,
    FlaskAlerting,
    LogNotifier,
    MemoryNotifier,
    SMTPNotifier,
    alert_failed,
    alert_raised,
    alert_sent,
    alert_suppressed,
)
from tests.conftest import FakeClock

Make = Callable[..., FlaskAlerting]


def make_app(name: str = "testapp") -> Flask:
    app = Flask(name)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    # The metrics sampler would sample the real host and alert into these tests.
    app.config["ALERTING_METRICS_ENABLED"] = False
    # One process, its throttle driven by a FakeClock (as the app fixture of conftest).
    app.config["ALERTING_STORAGE_URI"] = "memory://"

    @app.route("/boom", methods=["GET", "POST"])
    def boom() -> str:
        raise ValueError(f"bad input for {name}")

    @app.route("/ok")
    def ok() -> str:
        return "fine"

    return app


@pytest.fixture
def app() -> Flask:
    return make_app()


class Recorder:
    """Records (sender, kwargs) of a blinker signal."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append((sender, kwargs))


# -- per-app state and init rules -----------------------------------------------------------------


def test_state_lives_in_app_extensions(alerting: FlaskAlerting, app: Flask) -> None:
    state = app.extensions["alerting"]
    assert state.app is app
    assert state.extension is alerting
    assert state.config.throttle_seconds == 300.0
    assert state.labels["app"] == "testapp" and state.labels["host"]
    assert not hasattr(alerting, "app")  # no app kept on the extension


def test_second_init_app_on_the_same_app_is_refused(alerting: FlaskAlerting, app: Flask) -> None:
    state = app.extensions["alerting"]
    with pytest.raises(RuntimeError, match="already initialised"):
        alerting.init_app(app)
    with pytest.raises(RuntimeError, match="already initialised"):
        FlaskAlerting(app, notifiers=[MemoryNotifier()])
    assert app.extensions["alerting"] is state


def test_factory_pattern_and_two_apps_side_by_side(make_alerting: Make) -> None:
    memory = MemoryNotifier()
    alerting = make_alerting(notifiers=[memory])  # module level in a real project

    def create_app(name: str) -> Flask:
        app = make_app(name)
        alerting.init_app(app)
        return app

    one, two = create_app("app-one"), create_app("app-two")
    assert one.extensions["alerting"] is not two.extensions["alerting"]
    sent_by = {one: Recorder(), two: Recorder()}
    with alert_sent.connected_to(sent_by[one], one), alert_sent.connected_to(sent_by[two], two):
        assert one.test_client().get("/boom").status_code == 500
        assert two.test_client().get("/boom").status_code == 500
        assert two.test_client().get("/boom").status_code == 500  # throttled
        with one.app_context():
            alerting.alert("only for one")
        with two.test_request_context():
            alerting.alert("only for two")
        assert alerting.flush(timeout=10.0)
    titles = {app: [kw["alert"].title for _, kw in rec.calls] for app, rec in sent_by.items()}
    assert titles[one] == ["ValueError: bad input for app-one in boom", "only for one"]
    assert titles[two] == ["ValueError: bad input for app-two in boom", "only for two"]
    for app, rec in sent_by.items():
        assert all(kw["alert"].labels["app"] == app.name for _, kw in rec.calls)
    assert two.extensions["alerting"].pipeline.stats()["suppressed"] == 1
    assert one.extensions["alerting"].pipeline.stats()["suppressed"] == 0


def test_two_extensions_on_two_apps_each_get_only_their_alerts(make_alerting: Make) -> None:
    one, two = make_app("app-one"), make_app("app-two")
    memory_one, memory_two = MemoryNotifier(), MemoryNotifier()
    alerting_one = make_alerting(one, notifiers=[memory_one])
    alerting_two = make_alerting(two, notifiers=[memory_two])
    one.test_client().get("/boom")
    two.test_client().get("/boom")
    with one.app_context():
        alerting_one.alert("one's custom alert")
        alerting_two.alert("not initialised on app-one")  # warned, never raised
    alerting_two.alert("two's custom alert")  # no context: the single app of alerting_two
    assert alerting_one.flush(timeout=10.0) and alerting_two.flush(timeout=10.0)
    assert [a.title for a in memory_one.alerts] == [
        "ValueError: bad input for app-one in boom",
        "one's custom alert",
    ]
    assert [a.title for a in memory_two.alerts] == [
        "ValueError: bad input for app-two in boom",
        "two's custom alert",
    ]


# -- notifiers ---------------------------------------------------------------------------------


def test_notifiers_are_added_to_the_smtp_notifier_from_config(
    app: Flask, memory: MemoryNotifier, make_alerting: Make, ca_file: str
) -> None:
    app.config.update(
        ALERTING_SMTP_HOST="smtp.example.com",
        ALERTING_SMTP_SECURITY="starttls",
        ALERTING_SMTP_USERNAME="bob",
        ALERTING_SMTP_PASSWORD="pw-123",
        ALERTING_SMTP_CA_FILE=ca_file,
        ALERTING_MAIL_SENDER="alerts@example.com",
        ALERTING_MAIL_RECIPIENTS="a@example.com, b@example.com",
    )
    log = LogNotifier()
    make_alerting(app, notifiers=[memory, log])
    notifiers = app.extensions["alerting"].notifiers
    assert [type(n) for n in notifiers] == [SMTPNotifier, MemoryNotifier, LogNotifier]
    smtp = notifiers[0]
    assert (smtp.host, smtp.port, smtp.security) == ("smtp.example.com", 587, "starttls")
    assert smtp.sender == "alerts@example.com"
    assert smtp.recipients == ("a@example.com", "b@example.com")
    assert smtp.subject_prefix == "[testapp]"
    assert smtp.ssl_context is not None and smtp.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert notifiers[1] is memory and notifiers[2] is log


def test_log_notifier_fallback_with_one_warning(
    app: Flask, make_alerting: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    alerting = make_alerting(app)
    warnings = [
        r for r in caplog.records if r.name == "flask_alerting" and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1
    assert "no ALERTING_SMTP_HOST and no notifiers" in warnings[0].getMessage()
    assert "testapp" in warnings[0].getMessage()
    assert [type(n) for n in app.extensions["alerting"].notifiers] == [LogNotifier]
    caplog.clear()
    alerting.alert("logged instead of mailed", severity="error")
    assert alerting.flush(timeout=10.0)
    notified = [r for r in caplog.records if r.name == "flask_alerting.notify"]
    assert len(notified) == 1 and notified[0].levelno == logging.ERROR
    assert "logged instead of mailed" in notified[0].getMessage()
    # The warning is about configuration: once, at init_app, not again per alert.
    assert not [
        r for r in caplog.records if r.name == "flask_alerting" and r.levelno >= logging.WARNING
    ]


def test_no_fallback_warning_when_a_notifier_is_given(
    app: Flask, memory: MemoryNotifier, make_alerting: Make, caplog: pytest.LogCaptureFixture
) -> None:
    make_alerting(app, notifiers=[memory])
    assert [type(n) for n in app.extensions["alerting"].notifiers] == [MemoryNotifier]
    assert not [
        r for r in caplog.records if r.name == "flask_alerting" and r.levelno >= logging.WARNING
    ]


# -- outside an app context --------------------------------------------------------------------


def test_outside_a_context_alert_capture_and_flush_use_the_single_app(
    alerting: FlaskAlerting, memory: MemoryNotifier
) -> None:
    alerting.alert("from a background job", severity="critical")
    try:
        raise KeyError("missing")
    except KeyError:
        alerting.capture_exception()
    assert alerting.flush(timeout=10.0)
    assert [(a.kind, a.severity) for a in memory.alerts] == [
        ("custom", "critical"),
        ("error", "error"),
    ]
    assert memory.alerts[1].labels["exception"] == "KeyError"
    assert "endpoint" not in memory.alerts[1].labels
    assert "raise KeyError" in (memory.alerts[1].traceback or "")


def test_with_two_apps_and_no_context_alerts_warn_and_do_nothing(
    make_alerting: Make, caplog: pytest.LogCaptureFixture
) -> None:
    memory = MemoryNotifier()
    alerting = make_alerting(notifiers=[memory])
    one, two = make_app("app-one"), make_app("app-two")
    alerting.init_app(one)
    alerting.init_app(two)
    raised = Recorder()
    with alert_raised.connected_to(raised):
        alerting.alert("which app?")  # must not raise
        try:
            raise KeyError("which app?")
        except KeyError:
            alerting.capture_exception()  # must not raise
        assert alerting.flush(timeout=10.0)
    assert raised.calls == [] and memory.alerts == []
    warnings = [r.getMessage() for r in caplog.records if r.name == "flask_alerting"]
    assert warnings and all("2 apps initialised" in m for m in warnings)
    assert "app_context" in warnings[0]


def test_flush_outside_a_context_flushes_every_app(make_alerting: Make, clock: FakeClock) -> None:
    memory = MemoryNotifier()
    alerting = make_alerting(notifiers=[memory], clock=clock, throttle_seconds=60)
    one, two = make_app("app-one"), make_app("app-two")
    alerting.init_app(one)
    alerting.init_app(two)
    for app in (one, two):
        with app.app_context():
            alerting.alert("storm")
            alerting.alert("storm")
    assert alerting.flush(timeout=10.0)
    assert sorted(a.labels["app"] for a in memory.alerts) == ["app-one", "app-two"]
    clock.advance(60)
    # The digests leave when each pipeline is flushed (their timers would take 60 s).
    with one.app_context():
        assert alerting.flush(timeout=10.0)  # inside a context: that app only
    digests = [a.labels["app"] for a in memory.alerts if a.is_digest]
    assert digests == ["app-one"]
    assert alerting.flush(timeout=10.0)  # outside: all apps
    digests = [a.labels["app"] for a in memory.alerts if a.is_digest]
    assert digests == ["app-one", "app-two"]


# -- enabled switch and error responses --------------------------------------------------------


def test_disabled_sends_nothing(app: Flask, memory: MemoryNotifier, make_alerting: Make) -> None:
    app.config["ALERTING_ENABLED"] = False
    alerting = make_alerting(app, notifiers=[memory])
    raised = Recorder()
    with alert_raised.connected_to(raised, app):
        response = app.test_client().get("/boom")
        alerting.alert("ignored")
        try:
            raise KeyError("ignored")
        except KeyError:
            alerting.capture_exception()
        assert alerting.flush(timeout=10.0)
    assert response.status_code == 500
    assert b"Internal Server Error" in response.data  # Flask's own page: nothing installed
    assert raised.calls == [] and memory.alerts == []


#: An ALERTING_ERROR_RESPONSE (None by default: Flask's own 500 response).
NOTICE = "An error occurred. The administrators have been notified."


def test_browser_gets_the_configured_text(
    app: Flask, memory: MemoryNotifier, make_alerting: Make
) -> None:
    make_alerting(app, notifiers=[memory], error_response=NOTICE)
    response = app.test_client().get("/boom", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status_code == 500
    assert response.get_data(as_text=True) == NOTICE
    assert response.mimetype == "text/plain"


def test_json_clients_get_a_json_error(
    app: Flask, memory: MemoryNotifier, make_alerting: Make
) -> None:
    app.config["ALERTING_ERROR_RESPONSE"] = NOTICE
    alerting = make_alerting(app, notifiers=[memory])
    client = app.test_client()
    by_accept = client.get("/boom", headers={"Accept": "application/json"})
    by_body = client.post("/boom", json={"x": 1})
    for response in (by_accept, by_body):
        assert response.status_code == 500
        assert response.is_json
        assert response.get_json() == {"error": NOTICE}
    assert alerting.flush(timeout=10.0)
    assert memory.alerts and memory.alerts[0].kind == "error"


def test_custom_error_response_text(
    app: Flask, memory: MemoryNotifier, make_alerting: Make
) -> None:
    make_alerting(app, notifiers=[memory], error_response="Sorry, we are on it.")
    client = app.test_client()
    assert client.get("/boom").get_data(as_text=True) == "Sorry, we are on it."
    json_response = client.get("/boom", headers={"Accept": "application/json"})
    assert json_response.get_json() == {"error": "Sorry, we are on it."}


def test_error_response_false_keeps_flasks_page(
    app: Flask, memory: MemoryNotifier, make_alerting: Make
) -> None:
    app.config["ALERTING_ERROR_RESPONSE"] = False
    alerting = make_alerting(app, notifiers=[memory])
    response = app.test_client().get("/boom", headers={"Accept": "application/json"})
    assert response.status_code == 500
    assert b"Internal Server Error" in response.data and not response.is_json
    assert alerting.flush(timeout=10.0)
    assert [a.kind for a in memory.alerts] == ["error"]  # still alerted


@pytest.mark.parametrize("registered", ["before", "after"])
@pytest.mark.parametrize("handled", [500, InternalServerError, HTTPException])
def test_the_apps_own_500_handler_is_kept(
    app: Flask, memory: MemoryNotifier, make_alerting: Make, registered: str, handled: Any
) -> None:
    def own_page(e: Exception) -> tuple[str, int]:
        return f"own page for {type(e).__name__}", 500

    if registered == "before":
        app.register_error_handler(handled, own_page)
    alerting = make_alerting(app, notifiers=[memory], error_response=NOTICE)
    if registered == "after":
        app.register_error_handler(handled, own_page)
    client = app.test_client()
    for headers in ({}, {"Accept": "application/json"}):
        response = client.get("/boom", headers=headers)
        assert response.status_code == 500
        assert response.get_data(as_text=True) == "own page for InternalServerError"
    assert alerting.flush(timeout=10.0)
    assert [a.title for a in memory.alerts] == ["ValueError: bad input for testapp in boom"]


def test_blueprint_500_handler_is_kept(
    app: Flask, memory: MemoryNotifier, make_alerting: Make
) -> None:
    from flask import Blueprint

    bp = Blueprint("shop", __name__)

    @bp.route("/buy")
    def buy() -> str:
        raise RuntimeError("out of stock")

    @bp.errorhandler(HTTPException)
    def shop_page(e: HTTPException) -> tuple[str, int]:
        return "shop error page", e.code or 500

    app.register_blueprint(bp, url_prefix="/shop")
    alerting = make_alerting(app, notifiers=[memory], error_response=NOTICE)
    client = app.test_client()
    assert client.get("/shop/buy").get_data(as_text=True) == "shop error page"
    assert client.get("/boom").get_data(as_text=True) == NOTICE
    assert alerting.flush(timeout=10.0)
    assert len(memory.alerts) == 2


def test_responses_below_500_are_not_alerted(
    app: Flask, memory: MemoryNotifier, make_alerting: Make
) -> None:
    @app.route("/missing")
    def missing() -> str:
        abort(404)

    @app.route("/invalid")
    def invalid() -> str:
        raise KeyError("field")

    @app.route("/overloaded")
    def overloaded() -> str:
        raise LookupError("overloaded")

    @app.errorhandler(KeyError)
    def bad_request(e: KeyError) -> tuple[str, int]:
        return "bad request", 400

    @app.errorhandler(LookupError)
    def unavailable(e: LookupError) -> tuple[str, int]:
        return "try later", 503

    alerting = make_alerting(app, notifiers=[memory])
    client = app.test_client()
    assert client.get("/missing").status_code == 404
    assert client.get("/invalid").status_code == 400
    assert client.get("/overloaded").status_code == 503
    assert client.get("/ok").status_code == 200
    assert alerting.flush(timeout=10.0)
    assert [a.labels["exception"] for a in memory.alerts] == ["LookupError"]


# -- signals -----------------------------------------------------------------------------------


def test_every_signal_is_sent_with_the_app_as_sender(
    app: Flask, memory: MemoryNotifier, make_alerting: Make
) -> None:
    class Refuses(MemoryNotifier):
        name = "refuses"

        def send(self, alert: Alert) -> None:
            raise ValueError("permanently refused")

    refuses = Refuses()
    alerting = make_alerting(app, notifiers=[memory, refuses])
    recorders = {s: Recorder() for s in (alert_raised, alert_suppressed, alert_sent, alert_failed)}
    for signal, recorder in recorders.items():
        signal.connect(recorder)
    try:
        app.test_client().get("/boom")
        app.test_client().get("/boom")
        assert alerting.flush(timeout=10.0)
    finally:
        for signal, recorder in recorders.items():
            signal.disconnect(recorder)
    counts = {s.name: len(r.calls) for s, r in recorders.items()}
    assert counts == {"alert-raised": 2, "alert-suppressed": 1, "alert-sent": 1, "alert-failed": 1}
    for recorder in recorders.values():
        assert all(sender is app for sender, _ in recorder.calls)
    ((_, sent),) = recorders[alert_sent].calls
    assert sent["notifier"] is memory and sent["alert"].kind == "error"
    ((_, failed),) = recorders[alert_failed].calls
    assert failed["notifier"] is refuses and failed["will_retry"] is False


# -- the alert log -----------------------------------------------------------------------------

RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}:(DEBUG|INFO|WARNING|ERROR|CRITICAL):(.*)$"
)


def parse_log(text: str) -> list[tuple[str, list[str]]]:
    """Records of a seed-format log: (level, message lines)."""
    records: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        match = RECORD.match(line)
        if match:
            records.append((match.group(1), [match.group(2)]))
        else:
            assert records, f"log does not start with a record: {line!r}"
            records[-1][1].append(line)
    return records


def raise_every_kind(alerting: FlaskAlerting, app: Flask) -> None:
    app.test_client().get("/boom")
    alerting.alert("Disk nearly full", "90% used", severity="info")
    alerting.alert("Disk nearly full", "91% used", severity="info")  # throttled, still logged
    state = app.extensions["alerting"]
    labels = dict(state.labels)
    state.submit(
        Alert(
            kind="timing",
            severity="warning",
            title="Slow call: prediction_from_model",
            labels={**labels, "function": "prediction_from_model"},
            value=3.5,
            threshold=2.0,
        )
    )
    state.submit(
        Alert(
            kind="metric",
            severity="critical",
            title="CPU usage high",
            labels={**labels, "metric": "cpu"},
            value=93.5,
            threshold=80.0,
            details={"display_name": "CPU usage"},
        )
    )
    assert alerting.flush(timeout=10.0)


def test_log_file_gets_every_alert_in_its_format(
    app: Flask, memory: MemoryNotifier, make_alerting: Make, tmp_path: Path
) -> None:
    path = tmp_path / "error.log"
    app.config["ALERTING_LOG_FILE"] = str(path)
    alerting = make_alerting(app, notifiers=[memory])
    raise_every_kind(alerting, app)
    records = parse_log(path.read_text(encoding="utf-8"))
    assert [(level, lines[0]) for level, lines in records] == [
        ("ERROR", "ValueError: bad input for testapp in boom"),
        ("INFO", "Disk nearly full: 90% used"),
        ("INFO", "Disk nearly full: 91% used"),
        (
            "WARNING",
            "prediction_from_model took 3.50 s (threshold 2.00 s)",
        ),
        ("CRITICAL", "CPU usage has exceeded the threshold: Current Value: 93.5, Threshold: 80.0"),
    ]
    traceback = records[0][1]
    assert traceback[1] == "Traceback (most recent call last):"
    assert traceback[-1] == "ValueError: bad input for testapp"
    assert len(memory.alerts) == 4  # the throttled one was logged, not delivered
    # The handler is released at shutdown (no file handle left open).
    state = app.extensions["alerting"]
    assert alerting.shutdown(timeout=5.0)
    assert state.log_handler not in state.alert_log.handlers


def test_without_log_file_alerts_reach_the_alerts_logger(
    app: Flask, memory: MemoryNotifier, make_alerting: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flask_alerting.alerts")
    alerting = make_alerting(app, notifiers=[memory])
    raise_every_kind(alerting, app)
    # The unhandled error is logged once, by Flask's own log_exception; the alert log
    # does not repeat it on propagating loggers (only ALERTING_LOG_FILE gets it too).
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [(r.name, r.getMessage()) for r in errors] == [
        (app.logger.name, "Exception on /boom [GET]")
    ]
    records = [r for r in caplog.records if r.name.startswith("flask_alerting.alerts")]
    assert [(r.levelname, r.getMessage().splitlines()[0]) for r in records] == [
        ("INFO", "Disk nearly full: 90% used"),
        ("INFO", "Disk nearly full: 91% used"),
        (
            "WARNING",
            "prediction_from_model took 3.50 s (threshold 2.00 s)",
        ),
        ("CRITICAL", "CPU usage has exceeded the threshold: Current Value: 93.5, Threshold: 80.0"),
    ]
