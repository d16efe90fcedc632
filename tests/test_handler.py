"""AlertingHandler: error log records become alerts, never twice, never in a loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from flask_alerting import (
    Alert,
    AlertingHandler,
    FlaskAlerting,
    MemoryNotifier,
    Notifier,
    alert_raised,
)
from flask_alerting.capture import is_captured
from flask_alerting.handler import LOG_RECORD_EXCEPTION
from flask_alerting.scrub import FILTERED
from tests.smtp_server import SMTPServer

Make = Callable[..., FlaskAlerting]


@pytest.fixture
def raised(app: Flask) -> Iterator[list[Alert]]:
    alerts: list[Alert] = []

    def receiver(sender: Flask, alert: Alert, **_: Any) -> None:
        alerts.append(alert)

    with alert_raised.connected_to(receiver, app):
        yield alerts


@pytest.fixture
def quiet(app: Flask, make_alerting: Make, memory: MemoryNotifier) -> FlaskAlerting:
    """An extension with the throttle and the flood guard off: every alert is delivered."""
    return make_alerting(app, notifiers=[memory], throttle_seconds=0, rate_limit=0)


@pytest.fixture
def attach() -> Iterator[Callable[[logging.Logger, logging.Handler], None]]:
    """Add handlers to loggers; removed in teardown."""
    added: list[tuple[logging.Logger, logging.Handler]] = []

    def add(logger: logging.Logger, handler: logging.Handler) -> None:
        logger.addHandler(handler)
        added.append((logger, handler))

    yield add
    for logger, handler in added:
        logger.removeHandler(handler)


def _log_error(logger: logging.Logger, message: str, *args: Any) -> None:
    logger.error(message, *args)  # one call site for every message


def test_record_with_exc_info_becomes_an_error_alert_with_its_traceback(
    quiet: FlaskAlerting,
    memory: MemoryNotifier,
    attach: Callable[..., None],
) -> None:
    log = logging.getLogger("shop.payments")
    attach(log, AlertingHandler(quiet))
    try:
        raise ConnectionError("gateway timeout")
    except ConnectionError:
        log.exception("charging order %s failed", 42)
    assert quiet.flush(5.0)
    alert = memory.alerts[0]
    assert alert.kind == "error" and alert.severity == "error"
    assert alert.labels["exception"] == "ConnectionError"
    assert alert.title.startswith("ConnectionError: gateway timeout")
    assert 'raise ConnectionError("gateway timeout")' in (alert.traceback or "")
    assert alert.details["log"]["logger"] == "shop.payments"
    assert alert.details["log"]["message"] == "charging order 42 failed"
    assert alert.details["log"]["level"] == "ERROR"
    assert "test_handler.py" in alert.details["log"]["location"]


def _charge(order: int) -> None:
    raise ConnectionError(f"gateway timeout for order {order}")


def test_a_logged_exception_is_the_alert_capture_exception_makes_plus_the_record(
    app: Flask, quiet: FlaskAlerting, memory: MemoryNotifier, attach: Callable[..., None]
) -> None:
    # One capture path: the handler and capture_exception build the same alert.
    log = logging.getLogger("shop.payments")
    attach(log, AlertingHandler(quiet))
    with app.test_request_context("/charge/7?card=4242", method="POST"):
        for report in ("capture_exception", "log.exception"):
            try:
                _charge(7)
            except ConnectionError as exc:
                if report == "log.exception":
                    log.exception("charging failed")
                else:
                    quiet.capture_exception(exc)
    assert quiet.flush(5.0)
    captured, logged = memory.alerts
    for field in ("kind", "severity", "title", "fingerprint", "labels"):
        assert getattr(logged, field) == getattr(captured, field), field
    assert logged.details["request"] == captured.details["request"]
    assert "card" in captured.details["request"]["query_args"]
    last_lines = (captured.traceback or "").splitlines()[-3:]
    assert (logged.traceback or "").splitlines()[-3:] == last_lines
    assert last_lines[-1] == "ConnectionError: gateway timeout for order 7"
    assert "log" in logged.details and "log" not in captured.details


def test_record_without_exception_and_critical_severity(
    quiet: FlaskAlerting, memory: MemoryNotifier, attach: Callable[..., None]
) -> None:
    log = logging.getLogger("shop.stock")
    attach(log, AlertingHandler(quiet))
    log.critical("stock database unreachable for %d s", 30, stack_info=True)
    assert quiet.flush(5.0)
    alert = memory.alerts[0]
    assert alert.kind == "error" and alert.severity == "critical"
    assert alert.title == "shop.stock: stock database unreachable for 30 s"
    assert alert.labels["logger"] == "shop.stock"
    # Error alerts all carry ``exception``: here, that the record had none.
    assert alert.labels["exception"] == LOG_RECORD_EXCEPTION == "(log record)"
    assert "stock database unreachable for 30 s" in alert.message
    assert "Stack (most recent call last)" in (alert.traceback or "")


def test_records_group_by_call_site_never_by_message(
    quiet: FlaskAlerting, memory: MemoryNotifier, attach: Callable[..., None]
) -> None:
    log = logging.getLogger("shop.jobs")
    attach(log, AlertingHandler(quiet))
    for n in range(3):
        _log_error(log, f"job {n} failed after {n * 3} retries")
    log.error("job 0 failed after 0 retries")  # same text, another call site
    assert quiet.flush(5.0)
    prints = [a.fingerprint for a in memory.alerts]
    assert len(set(prints[:3])) == 1
    assert prints[3] != prints[0]


def test_level_and_own_loggers_and_threads_are_ignored(
    quiet: FlaskAlerting, memory: MemoryNotifier, attach: Callable[..., None]
) -> None:
    handler = AlertingHandler(quiet)
    root = logging.getLogger()
    attach(root, handler)
    logging.getLogger("shop").warning("below the level")
    logging.getLogger("flask_alerting").error("the extension's own error")
    logging.getLogger("flask_alerting.notify").error("a delivered alert, logged")

    def from_an_own_thread() -> None:
        logging.getLogger("smtplib.like").error("logged by a notifier on its thread")

    thread = threading.Thread(target=from_an_own_thread, name="flask-alerting-x-smtp-0")
    thread.start()
    thread.join(5.0)
    logging.getLogger("shop").error("this one counts")
    assert quiet.flush(5.0)
    assert [a.title for a in memory.alerts] == ["shop: this one counts"]


class _LoudFailingNotifier(Notifier):
    """Fails permanently and logs an error of its own on the way (like a library would)."""

    name = "loud"

    def __init__(self) -> None:
        self.calls = 0

    def send(self, alert: Alert) -> None:
        self.calls += 1
        logging.getLogger("some.library").error("upstream refused %r", alert.title)
        raise ValueError("refused")


def test_a_failing_delivery_never_loops_through_the_handler(
    app: Flask,
    make_alerting: Make,
    memory: MemoryNotifier,
    raised: list[Alert],
    attach: Callable[..., None],
) -> None:
    loud = _LoudFailingNotifier()
    alerting = make_alerting(app, notifiers=[loud, memory], throttle_seconds=0)
    attach(logging.getLogger(), AlertingHandler(alerting))
    logging.getLogger("shop").error("first and only")
    assert alerting.flush(5.0)
    # The failure was logged (flask_alerting) and the notifier logged an error (on the
    # delivery thread): neither became an alert.
    assert loud.calls == 1
    assert [a.title for a in raised] == ["shop: first and only"]
    assert len(memory.alerts) == 1


def test_an_exception_already_captured_is_skipped(
    app: Flask,
    quiet: FlaskAlerting,
    memory: MemoryNotifier,
    raised: list[Alert],
    attach: Callable[..., None],
) -> None:
    attach(app.logger, AlertingHandler(quiet))

    @app.route("/fail")
    def fail() -> str:
        raise KeyError("sku")

    app.test_client().get("/fail")  # Flask logs "Exception on /fail [GET]" with exc_info
    assert quiet.flush(5.0)
    assert len(raised) == 1
    assert "log" not in raised[0].details  # it came from the request capture


def test_logged_first_then_unhandled_is_one_alert_with_both_contexts(
    app: Flask,
    quiet: FlaskAlerting,
    memory: MemoryNotifier,
    raised: list[Alert],
    attach: Callable[..., None],
) -> None:
    log = logging.getLogger("shop.views")
    attach(log, AlertingHandler(quiet))

    @app.route("/fail")
    def fail() -> str:
        try:
            raise KeyError("sku")
        except KeyError as exc:
            log.exception("lookup failed")
            assert is_captured(exc)  # marked for this request
            raise

    app.test_client().get("/fail?password=hunter2")
    assert quiet.flush(5.0)
    assert len(raised) == 1
    alert = raised[0]
    assert alert.details["log"]["message"] == "lookup failed"
    assert alert.labels["endpoint"] == "fail"
    assert alert.details["request"]["query_args"] == {"password": FILTERED}


def test_outside_any_context_records_go_to_the_single_app_or_the_pinned_one(
    make_alerting: Make, memory: MemoryNotifier, attach: Callable[..., None]
) -> None:
    single = Flask("single")
    ext = make_alerting(single, notifiers=[memory], throttle_seconds=0)
    log = logging.getLogger("shop.worker")
    attach(log, AlertingHandler(ext))
    done = threading.Event()

    def job() -> None:
        log.error("background failure")
        done.set()

    threading.Thread(target=job).start()
    assert done.wait(5.0)
    assert ext.flush(5.0)
    assert [a.labels["app"] for a in memory.alerts] == ["single"]

    other = MemoryNotifier()
    two = make_alerting(notifiers=[other], throttle_seconds=0)
    first, second = Flask("first"), Flask("second")
    two.init_app(first)
    two.init_app(second)
    pinned = logging.getLogger("shop.pinned")
    attach(pinned, AlertingHandler(two, app=second))
    pinned.error("goes to the second app")
    assert two.flush(5.0)
    assert [a.labels["app"] for a in other.alerts] == ["second"]


def test_emit_takes_no_lock_and_is_safe_from_many_threads(
    quiet: FlaskAlerting, memory: MemoryNotifier, attach: Callable[..., None]
) -> None:
    handler = AlertingHandler(quiet)
    assert handler.lock is None
    log = logging.getLogger("shop.threads")
    attach(log, handler)
    barrier = threading.Barrier(8)

    def burst(n: int) -> None:
        barrier.wait(5.0)
        for i in range(25):
            log.error("thread %d record %d", n, i)

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10.0)
    assert quiet.flush(10.0)
    assert len(memory.alerts) == 8 * 25


def test_the_handler_never_raises_into_the_caller(
    make_alerting: Make, caplog: pytest.LogCaptureFixture, attach: Callable[..., None]
) -> None:
    nowhere = make_alerting()  # never initialised on any app
    log = logging.getLogger("shop.orphan")
    attach(log, AlertingHandler(nowhere))
    with caplog.at_level(logging.WARNING, logger="flask_alerting"):
        log.error("nobody listens")
    assert "no app initialised" in caplog.text


def test_bad_record_arguments_are_reported_not_raised(
    quiet: FlaskAlerting,
    memory: MemoryNotifier,
    caplog: pytest.LogCaptureFixture,
    attach: Callable[..., None],
) -> None:
    log = logging.getLogger("shop.bad")
    attach(log, AlertingHandler(quiet))
    # Only our handler sees the record (pytest's own handlers would raise on it).
    log.propagate = False
    try:
        with caplog.at_level(logging.ERROR, logger="flask_alerting"):
            log.error("bad format %d", "not a number")
    finally:
        log.propagate = True
    assert quiet.flush(5.0)
    assert memory.alerts == []
    assert "internal error while turning a log record into an alert" in caplog.text


def test_disabled_extension_ignores_records(
    app: Flask, make_alerting: Make, memory: MemoryNotifier, attach: Callable[..., None]
) -> None:
    ext = make_alerting(app, notifiers=[memory], enabled=False)
    log = logging.getLogger("shop.off")
    attach(log, AlertingHandler(ext))
    log.error("ignored")
    assert ext.flush(5.0)
    assert memory.alerts == []


def test_handler_alert_reaches_the_real_smtp_server(
    app: Flask,
    make_alerting: Make,
    smtp_config: dict[str, Any],
    smtp_server: SMTPServer,
    attach: Callable[..., None],
) -> None:
    app.config.update(smtp_config)
    alerting = make_alerting(app)
    log = logging.getLogger("shop.mail")
    attach(log, AlertingHandler(alerting, level="ERROR"))
    try:
        int("forty-two")
    except ValueError:
        log.error("parsing the quantity failed", exc_info=True)
    assert alerting.flush(10.0)
    message = smtp_server.wait_for(1)[0]
    assert "ValueError: invalid literal for int()" in str(message["Subject"])
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "parsing the quantity failed" in text and "Traceback" in text
