"""Error capture: every unhandled exception alerted once, with useful and safe context.

Deliveries go to a real SMTP server on 127.0.0.1 (aiosmtpd) where the issue asks for it;
the rest uses the MemoryNotifier. Exactly-once claims are checked on ``alert_raised``
(sent for every raised alert, before the throttle) or with the throttle off, so that a
duplicate cannot hide in a digest.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email
import email.policy
import gc
import io
import json
import logging
import re
import threading
import traceback
import weakref
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask, abort, request
from werkzeug.exceptions import HTTPException
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from flask_alerting import Alert, AlertingHandler, FlaskAlerting, MemoryNotifier, alert_raised
from flask_alerting.capture import (
    CAPTURED_ATTR,
    MAX_BODY_READ,
    MAX_EXCEPTION_TEXT,
    error_alert_builder,
    error_fingerprint,
    format_traceback,
    is_captured,
)
from flask_alerting.scrub import FILTERED, JSON_BUDGET
from tests.conftest import FakeClock
from tests.smtp_server import SMTPServer

Make = Callable[..., FlaskAlerting]


class CheckoutError(Exception):
    """An application exception."""


@pytest.fixture
def raised(app: Flask) -> Iterator[list[Alert]]:
    """Every alert the ``app`` raises (before throttling), via ``alert_raised``."""
    alerts: list[Alert] = []

    def receiver(sender: Flask, alert: Alert, **_: Any) -> None:
        alerts.append(alert)

    with alert_raised.connected_to(receiver, app):
        yield alerts


def smtp_alerting(app: Flask, make_alerting: Make, smtp_config: dict[str, Any], **kw: Any) -> Any:
    app.config.update(smtp_config)
    return make_alerting(app, **kw)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def decoded_texts(raw: bytes) -> list[str]:
    """The raw message and every decoded part (base64 / quoted-printable undone)."""
    message = parse(raw)
    texts = [raw.decode("latin-1"), str(message["Subject"])]
    for part in message.walk():
        if not part.is_multipart():
            texts.append(part.get_content())
    return texts


def plain_body(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    content = body.get_content()
    assert isinstance(content, str)
    return content


# -- every unhandled exception: one alert with the full context --------------------------------


def test_unhandled_exception_in_a_view_gives_one_alert_with_context(
    app: Flask, alerting: FlaskAlerting, memory: MemoryNotifier, raised: list[Alert]
) -> None:
    @app.route("/orders/<int:order_id>", methods=["POST"])
    def update_order(order_id: int) -> str:
        request.form.get("qty")
        raise CheckoutError(f"cannot update order {order_id}")

    client = app.test_client()
    response = client.post(
        "/orders/42?verbose=1&lang=fr",
        data={"qty": "3", "note": "fragile"},
        headers={"User-Agent": "pytest-agent/1.0", "X-Request-Id": "req-123"},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert response.status_code == 500
    assert alerting.flush(5.0)

    assert len(raised) == 1 and len(memory.alerts) == 1
    alert = memory.alerts[0]
    assert alert.kind == "error" and alert.severity == "error"
    assert alert.title == "tests.test_capture.CheckoutError: cannot update order 42 in update_order"
    assert alert.labels["exception"] == "tests.test_capture.CheckoutError"
    assert alert.labels["endpoint"] == "update_order"
    assert alert.labels["app"] == "testapp" and alert.labels["host"]
    assert alert.timestamp.tzinfo is not None
    assert alert.traceback is not None
    assert alert.traceback.startswith("Traceback (most recent call last):")
    assert 'raise CheckoutError(f"cannot update order {order_id}")' in alert.traceback
    assert alert.traceback.rstrip().endswith("CheckoutError: cannot update order 42")
    assert alert.message.startswith("An error occurred in your Flask application:")

    req = alert.details["request"]
    assert req["method"] == "POST"
    assert req["url"] == "http://localhost/orders/42?verbose=1&lang=fr"
    assert req["endpoint"] == "update_order"
    assert req["view_args"] == {"order_id": 42}
    assert req["query_args"] == {"verbose": "1", "lang": "fr"}
    assert req["form"] == {"qty": "3", "note": "fragile"}
    assert req["remote_addr"] == "10.1.2.3"
    assert req["user_agent"] == "pytest-agent/1.0"
    assert req["headers"]["X-Request-Id"] == "req-123"


def test_async_view_exception_is_captured(
    app: Flask, alerting: FlaskAlerting, memory: MemoryNotifier, raised: list[Alert]
) -> None:
    @app.route("/async")
    async def async_view() -> str:
        await asyncio.sleep(0)
        raise KeyError("missing-in-async")

    response = app.test_client().get("/async?x=1")
    assert response.status_code == 500
    assert alerting.flush(5.0)
    assert len(raised) == 1
    alert = memory.alerts[0]
    assert alert.labels["exception"] == "KeyError"
    assert alert.labels["endpoint"] == "async_view"
    assert "raise KeyError(\"missing-in-async\")" in (alert.traceback or "")
    assert alert.details["request"]["query_args"] == {"x": "1"}


def test_json_body_is_included_and_truncated_near_10_kb(
    app: Flask, alerting: FlaskAlerting, memory: MemoryNotifier
) -> None:
    @app.route("/small", methods=["POST"])
    def small() -> str:
        request.get_json()  # a body the view did not read is not shown (test_hostile.py)
        raise ValueError("small")

    @app.route("/big", methods=["POST"])
    def big() -> str:
        request.get_json()
        raise ValueError("big")

    client = app.test_client()
    client.post("/small", json={"cart": [{"sku": "A1", "qty": 2}], "coupon": None})
    rows = [{"sku": f"SKU-{i}", "description": "x" * 80} for i in range(1000)]
    client.post("/big", json={"rows": rows})
    assert alerting.flush(5.0)

    by_endpoint = {a.labels["endpoint"]: a for a in memory.alerts}
    small_json = by_endpoint["small"].details["request"]["json"]
    assert json.loads(small_json) == {"cart": [{"sku": "A1", "qty": 2}], "coupon": None}
    big_json = by_endpoint["big"].details["request"]["json"]
    assert 0.8 * JSON_BUDGET < len(big_json) < 1.2 * JSON_BUDGET
    assert big_json.startswith('{"rows": [{"description": "xxx')
    assert "[truncated]" in big_json


def test_invalid_json_and_files_are_described_not_dumped(
    app: Flask, make_alerting: Make, memory: MemoryNotifier
) -> None:
    alerting = make_alerting(app, notifiers=[memory], throttle_seconds=0)

    @app.route("/upload", methods=["POST"])
    def upload() -> str:
        request.get_json(silent=True)
        request.form.get("title")
        raise ValueError("upload")

    client = app.test_client()
    client.post("/upload", data="{not json password=x", content_type="application/json")
    client.post(
        "/upload",
        data={"title": "report", "file": (io.BytesIO(b"FILE-CONTENT"), "r.csv", "text/csv")},
        content_type="multipart/form-data",
    )
    assert alerting.flush(5.0)
    first, second = (a.details["request"] for a in memory.alerts)
    assert "invalid or unreadable JSON" in first["json"] and "password" not in first["json"]
    assert second["form"] == {"title": "report"}
    assert second["files"] == {"file": "'r.csv' (text/csv)"}
    assert "FILE-CONTENT" not in repr(second)


def _chunked_request(path: str, content_type: str, body: io.BytesIO) -> Request:
    """A request as a WSGI server hands over a chunked upload: no Content-Length, the
    input terminated by the server (``wsgi.input_terminated``)."""
    environ = EnvironBuilder(path, method="POST", content_type=content_type).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input"] = body
    environ["wsgi.input_terminated"] = True
    return Request(environ)


@pytest.mark.parametrize(
    ("content_type", "section"),
    [("application/json", "json"), ("application/x-www-form-urlencoded", "form")],
)
def test_a_body_of_unknown_length_is_not_read_on_the_request_path(
    app: Flask, alerting: FlaskAlerting, memory: MemoryNotifier, content_type: str, section: str
) -> None:
    @app.route("/upload", methods=["POST"])
    def upload() -> str:
        raise CheckoutError("failed before reading the upload")

    size = 3 * MAX_BODY_READ
    if section == "json":
        body = io.BytesIO(b'{"rows": [' + b"1," * (size // 2) + b"1]}")
    else:
        body = io.BytesIO(b"a=" + b"x" * size)
    response = app.test_client().open(_chunked_request("/upload", content_type, body))
    assert response.status_code == 500
    assert alerting.flush(5.0)
    assert body.tell() <= MAX_BODY_READ  # not consumed (beyond the limit) for the alert
    alert = memory.alerts[0]
    assert alert.labels["exception"] == "tests.test_capture.CheckoutError"
    assert "body of unknown length, not included" in str(alert.details["request"][section])


def test_a_body_of_unknown_length_the_view_parsed_is_included(
    app: Flask, make_alerting: Make, memory: MemoryNotifier
) -> None:
    alerting = make_alerting(app, notifiers=[memory], throttle_seconds=0)

    @app.route("/json", methods=["POST"])
    def parsed_json() -> str:
        request.get_json()
        raise CheckoutError("json")

    @app.route("/form", methods=["POST"])
    def parsed_form() -> str:
        request.form.get("sku")
        raise CheckoutError("form")

    client = app.test_client()
    client.open(_chunked_request("/json", "application/json", io.BytesIO(b'{"sku": "A1"}')))
    client.open(
        _chunked_request("/form", "application/x-www-form-urlencoded", io.BytesIO(b"sku=B2"))
    )
    assert alerting.flush(5.0)
    json_alert, form_alert = (a.details["request"] for a in memory.alerts)
    assert json.loads(json_alert["json"]) == {"sku": "A1"}
    assert form_alert["form"] == {"sku": "B2"}


def test_logged_like_the_seed_in_the_log_file_and_the_flask_alerting_logger(
    app: Flask,
    make_alerting: Make,
    memory: MemoryNotifier,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log_file = tmp_path / "error.log"
    alerting = make_alerting(app, notifiers=[memory], log_file=str(log_file))

    @app.route("/fail")
    def fail() -> str:
        raise ZeroDivisionError("division by zero in the model")

    @app.route("/handled")
    def handled() -> str:
        try:
            raise KeyError("caught in the view")
        except KeyError:
            alerting.capture_exception()
        return "ok"

    with caplog.at_level(logging.ERROR):
        app.test_client().get("/fail")
        app.test_client().get("/handled")
        assert alerting.flush(5.0)
    alerting.shutdown()

    text = log_file.read_text(encoding="utf-8")
    first_line = text.splitlines()[0]
    # The seed's format: %(asctime)s:%(levelname)s:%(message)s
    assert first_line.endswith(":ERROR:ZeroDivisionError: division by zero in the model in fail")
    assert "Traceback (most recent call last):" in text
    assert 'raise ZeroDivisionError("division by zero in the model")' in text
    assert ":ERROR:KeyError: 'caught in the view' in handled" in text

    # On the propagating loggers every traceback appears exactly once: Flask's own
    # log_exception record for the unhandled error (the alert log does not repeat it),
    # the alert log's record for the exception that Flask never logged.
    unhandled = [r for r in caplog.records if "division by zero" in r.getMessage()
                 or (r.exc_info and "division by zero" in str(r.exc_info[1]))]
    assert [r.name for r in unhandled] == [app.logger.name]
    handled_records = [r for r in caplog.records if "caught in the view" in r.getMessage()]
    assert [r.name for r in handled_records] == ["flask_alerting.alerts.testapp"]
    assert handled_records[0].levelno == logging.ERROR
    assert "Traceback (most recent call last):" in handled_records[0].getMessage()


# -- the app's own handlers, HTTP errors -------------------------------------------------------


def test_apps_exception_handler_answering_500_is_alerted_once_and_kept(
    app: Flask, make_alerting: Make, memory: MemoryNotifier, raised: list[Alert]
) -> None:
    alerting = make_alerting(app, notifiers=[memory], throttle_seconds=0)

    @app.errorhandler(Exception)
    def handle_any(e: Exception) -> Any:
        if isinstance(e, HTTPException):
            return e
        return {"message": "our own page"}, 500

    @app.route("/fail")
    def fail() -> str:
        raise CheckoutError("payment gateway down")

    response = app.test_client().get("/fail")
    assert response.status_code == 500
    assert response.get_json() == {"message": "our own page"}
    assert alerting.flush(5.0)
    assert len(raised) == 1 and len(memory.alerts) == 1
    assert memory.alerts[0].labels["exception"] == "tests.test_capture.CheckoutError"

    # The same handler turning an HTTP 404 into a response: no alert.
    assert app.test_client().get("/nowhere").status_code == 404
    assert alerting.flush(5.0)
    assert len(raised) == 1


@pytest.mark.parametrize(("status", "alerts"), [(503, 1), (502, 1), (200, 0), (409, 0)])
def test_handler_for_the_raised_class_is_alerted_only_when_it_answers_5xx(
    app: Flask, alerting: FlaskAlerting, raised: list[Alert], status: int, alerts: int
) -> None:
    @app.errorhandler(CheckoutError)
    def handle_checkout(e: CheckoutError) -> Any:
        return "handled", status

    @app.route("/fail")
    def fail() -> str:
        raise CheckoutError("x")

    response = app.test_client().get("/fail")
    assert (response.status_code, response.data) == (status, b"handled")
    assert alerting.flush(5.0)
    assert len(raised) == alerts


def test_blueprint_handlers_answering_5xx_alert_once_and_below_never(
    app: Flask, make_alerting: Make, memory: MemoryNotifier, raised: list[Alert]
) -> None:
    shop = Blueprint("shop", __name__)

    @shop.errorhandler(CheckoutError)
    def shop_error(e: CheckoutError) -> Any:
        return "shop is down", 503

    @shop.errorhandler(KeyError)
    def shop_missing(e: KeyError) -> Any:
        return "no such item", 404

    @shop.route("/pay")
    def pay() -> str:
        raise CheckoutError("card declined by upstream")

    @shop.route("/item")
    def item() -> str:
        raise KeyError("sku")

    app.register_blueprint(shop, url_prefix="/shop")
    alerting = make_alerting(app, notifiers=[memory], throttle_seconds=0)
    client = app.test_client()
    assert (client.get("/shop/pay").status_code, client.get("/shop/item").status_code) == (
        503,
        404,
    )
    assert alerting.flush(5.0)
    assert [a.labels["endpoint"] for a in raised] == ["shop.pay"]
    assert len(memory.alerts) == 1


def test_http_exceptions_below_500_never_alert_and_5xx_do(
    app: Flask, alerting: FlaskAlerting, raised: list[Alert]
) -> None:
    @app.route("/bad")
    def bad() -> str:
        abort(400)

    @app.route("/gone")
    def gone() -> str:
        abort(410)

    @app.route("/post-only", methods=["POST"])
    def post_only() -> str:
        return "ok"

    @app.route("/unavailable")
    def unavailable() -> str:
        abort(503)

    client = app.test_client()
    statuses = [
        client.get(path).status_code for path in ("/bad", "/gone", "/post-only", "/missing")
    ]
    assert statuses == [400, 410, 405, 404]
    assert alerting.flush(5.0)
    assert raised == []

    assert client.get("/unavailable").status_code == 503
    assert alerting.flush(5.0)
    assert [a.labels["exception"] for a in raised] == ["werkzeug.exceptions.ServiceUnavailable"]


def test_exceptions_propagated_in_testing_mode_are_still_alerted(
    app: Flask, alerting: FlaskAlerting, raised: list[Alert]
) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = True

    @app.route("/fail")
    def fail() -> str:
        raise CheckoutError("propagated")

    with pytest.raises(CheckoutError):
        app.test_client().get("/fail")
    assert alerting.flush(5.0)
    assert len(raised) == 1


# -- the 500 response ----------------------------------------------------------------------------


@pytest.fixture
def failing_app(app: Flask) -> Flask:
    @app.route("/fail", methods=["GET", "POST"])
    def fail() -> str:
        raise CheckoutError("x")

    return app


#: The notice an app can configure (ALERTING_ERROR_RESPONSE); Flask's own page by default.
NOTICE = "An error occurred. The administrators have been notified."


@pytest.fixture
def notice(failing_app: Flask, make_alerting: Make, memory: MemoryNotifier) -> FlaskAlerting:
    return make_alerting(failing_app, notifiers=[memory], error_response=NOTICE)


def test_500_response_is_flasks_own_by_default(
    failing_app: Flask, alerting: FlaskAlerting, memory: MemoryNotifier
) -> None:
    for headers in ({"Accept": "text/html,*/*"}, {"Accept": "application/json"}):
        response = failing_app.test_client().get("/fail", headers=headers)
        assert response.status_code == 500
        assert response.mimetype == "text/html"
        assert "<h1>Internal Server Error</h1>" in response.get_data(as_text=True)
    assert alerting.flush(5.0)
    assert len(memory.alerts) == 1  # throttled, but alerted


def test_500_response_is_the_notice_text_with_status_500(
    failing_app: Flask, notice: FlaskAlerting
) -> None:
    response = failing_app.test_client().get("/fail", headers={"Accept": "text/html,*/*"})
    # A hand-written try/except recipe answers with status 200: not here.
    assert response.status_code == 500
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == NOTICE


@pytest.mark.parametrize(
    "kwargs",
    [
        {"headers": {"Accept": "application/json"}},
        {"headers": {"Accept": "application/json, text/html;q=0.5"}},
        {"method": "POST", "json": {"a": 1}},
    ],
)
def test_json_clients_get_a_json_500(
    failing_app: Flask, notice: FlaskAlerting, kwargs: dict[str, Any]
) -> None:
    response = failing_app.test_client().open("/fail", **kwargs)
    assert response.status_code == 500
    assert response.get_json() == {"error": NOTICE}


def test_custom_text_and_false_keeps_flasks_page(
    failing_app: Flask, make_alerting: Make, memory: MemoryNotifier
) -> None:
    make_alerting(failing_app, notifiers=[memory], error_response="Sorry, we are on it.")
    response = failing_app.test_client().get("/fail")
    assert (response.status_code, response.data) == (500, b"Sorry, we are on it.")

    other = Flask("other")
    other.config["PROPAGATE_EXCEPTIONS"] = False
    other.add_url_rule("/fail", "fail", divide_by_zero)
    ext = make_alerting(other, notifiers=[memory], error_response=False)
    response = other.test_client().get("/fail")
    assert response.status_code == 500
    assert b"Internal Server Error" in response.data and response.mimetype == "text/html"
    assert ext.flush(5.0)


def test_the_apps_own_500_and_catch_all_handlers_are_kept(
    make_alerting: Make, memory: MemoryNotifier
) -> None:
    before = Flask("before")
    before.config["PROPAGATE_EXCEPTIONS"] = False
    before.register_error_handler(500, lambda e: ("own 500 page", 500))
    before.add_url_rule("/fail", "fail", divide_by_zero)
    first = make_alerting(before, notifiers=[memory])
    assert before.test_client().get("/fail").data == b"own 500 page"
    assert first.flush(5.0)

    catch_all = Flask("catch_all")
    catch_all.config["PROPAGATE_EXCEPTIONS"] = False
    catch_all.add_url_rule("/fail", "fail", divide_by_zero)
    ext = make_alerting(catch_all, notifiers=[memory])

    @catch_all.errorhandler(HTTPException)
    def as_json(e: HTTPException) -> Any:
        return {"code": e.code}, e.code

    response = catch_all.test_client().get("/fail")
    assert (response.status_code, response.get_json()) == (500, {"code": 500})
    assert ext.flush(5.0)
    assert len(memory.alerts) == 2


# -- capture_exception ---------------------------------------------------------------------------


def test_capture_exception_in_a_view_seed_style(
    app: Flask, alerting: FlaskAlerting, memory: MemoryNotifier, raised: list[Alert]
) -> None:
    @app.route("/predict", methods=["POST"])
    def predict() -> str:
        try:
            raise ValueError("model file is corrupt")
        except Exception:
            alerting.capture_exception(model="v2", api_token="tok-never-shown")
            return "An error occurred. The administrators have been notified."

    response = app.test_client().post("/predict?hour=7")
    assert response.status_code == 200
    assert alerting.flush(5.0)
    assert len(raised) == 1
    alert = memory.alerts[0]
    assert alert.labels["endpoint"] == "predict"
    assert alert.details["request"]["query_args"] == {"hour": "7"}
    assert alert.details["extra"] == {"model": "v2", "api_token": FILTERED}


class _Order:
    """Like an ORM instance: its repr() fails once detached (after the request's teardown)."""

    def __init__(self, always_broken: bool = False) -> None:
        self.detached = always_broken

    def __repr__(self) -> str:
        if self.detached:
            raise RuntimeError("Instance <Order> is not bound to a Session")
        return "<Order 7>"

    __str__ = __repr__


def test_extra_details_are_copied_when_captured_so_a_later_failing_repr_loses_nothing(
    app: Flask, make_alerting: Make, smtp_config: dict[str, Any], smtp_server: SMTPServer
) -> None:
    alerting = smtp_alerting(app, make_alerting, smtp_config, throttle_seconds=0)
    order, broken = _Order(), _Order(always_broken=True)
    try:
        raise CheckoutError("saving the order failed")
    except CheckoutError:
        alerting.capture_exception(order=order, lines=[order, 3], broken=broken)
    order.detached = True  # the session closed: repr() raises from now on
    assert alerting.flush(10.0)
    body = plain_body(smtp_server.wait_for(1)[0])
    assert "order: <Order 7>" in body
    assert '["<Order 7>", 3]' in body
    assert "broken: [repr() failed: RuntimeError]" in body


def test_captured_then_reraised_is_alerted_once(
    app: Flask, alerting: FlaskAlerting, raised: list[Alert]
) -> None:
    @app.route("/fail")
    def fail() -> str:
        try:
            raise CheckoutError("twice?")
        except CheckoutError as exc:
            alerting.capture_exception(exc)
            alerting.capture_exception(exc)
            raise

    assert app.test_client().get("/fail").status_code == 500
    assert alerting.flush(5.0)
    assert len(raised) == 1


def _failed_future() -> concurrent.futures.Future[str]:
    future: concurrent.futures.Future[str] = concurrent.futures.Future()
    try:
        raise CheckoutError("the pricing service never started")
    except CheckoutError as exc:
        future.set_exception(exc)
    return future


def test_one_exception_object_reraised_in_every_request_is_alerted_in_each(
    app: Flask, make_alerting: Make, memory: MemoryNotifier, raised: list[Alert]
) -> None:
    # A failed Future (or a cached initialisation error) re-raises the same object in
    # every request: each of those requests answers 500 and must be alerted. Within one
    # request every path that sees it (capture_exception, the request capture, Flask's
    # log record through AlertingHandler) still makes one alert.
    alerting = make_alerting(app, notifiers=[memory], throttle_seconds=0)
    handler = AlertingHandler(alerting)
    app.logger.addHandler(handler)
    future = _failed_future()

    @app.route("/price")
    def price() -> str:
        try:
            return future.result()
        except CheckoutError:
            alerting.capture_exception()
            alerting.capture_exception()
            raise

    try:
        client = app.test_client()
        assert [client.get("/price").status_code for _ in range(5)] == [500] * 5
        assert alerting.flush(5.0)
    finally:
        app.logger.removeHandler(handler)
    assert len(raised) == 5 and len(memory.alerts) == 5
    assert {a.labels["endpoint"] for a in memory.alerts} == {"price"}
    exc = future.exception()
    assert exc is not None and not is_captured(exc)  # the marks lived in each request


def test_one_exception_object_reraised_in_every_request_is_counted_in_the_digest(
    app: Flask, make_alerting: Make, memory: MemoryNotifier, clock: FakeClock
) -> None:
    alerting = make_alerting(app, notifiers=[memory], throttle_seconds=60, clock=clock)
    future = _failed_future()
    app.add_url_rule("/price", "price", future.result)
    client = app.test_client()
    assert [client.get("/price").status_code for _ in range(5)] == [500] * 5
    assert alerting.flush(5.0)
    clock.advance(61)
    assert alerting.flush(5.0)
    assert [a.occurrences for a in memory.alerts] == [1, 4]


def test_marks_last_for_one_app_context_outside_requests_and_forever_outside_contexts(
    app: Flask, alerting: FlaskAlerting, raised: list[Alert]
) -> None:
    try:
        raise CheckoutError("cached")
    except CheckoutError as exc:
        cached = exc

    def job() -> None:  # its own thread: pytest-flask pushes a context around the test
        for _ in range(2):
            with app.app_context():
                alerting.capture_exception(cached)
                alerting.capture_exception(cached)
        alerting.capture_exception(cached)  # no context at all: marked on the object
        alerting.capture_exception(cached)

    worker = threading.Thread(target=job)
    worker.start()
    worker.join(5.0)
    assert not worker.is_alive()
    assert alerting.flush(5.0)
    assert len(raised) == 3
    assert getattr(cached, CAPTURED_ATTR) is True


def test_capture_exception_in_a_background_job_without_any_context(
    app: Flask, alerting: FlaskAlerting, memory: MemoryNotifier
) -> None:
    done = threading.Event()

    def nightly_job() -> None:
        try:
            reports: dict[str, str] = {}
            reports["nightly"]
        except KeyError:
            alerting.capture_exception(job="nightly")
        finally:
            done.set()

    worker = threading.Thread(target=nightly_job)
    worker.start()
    assert done.wait(5.0)
    worker.join(5.0)
    assert alerting.flush(5.0)
    alert = memory.alerts[0]
    assert alert.kind == "error" and alert.labels["exception"] == "KeyError"
    assert "endpoint" not in alert.labels and "request" not in alert.details
    assert alert.details["extra"] == {"job": "nightly"}
    assert "nightly_job" in (alert.traceback or "")

    # Inside an app context but no request: the same, without request context. (In a
    # thread of its own: pytest-flask pushes a request context around the test body.)
    def cron() -> None:
        with app.app_context():
            alerting.capture_exception(RuntimeError("cron"))

    worker = threading.Thread(target=cron)
    worker.start()
    worker.join(5.0)
    assert alerting.flush(5.0)
    assert memory.alerts[1].labels["exception"] == "RuntimeError"
    assert "request" not in memory.alerts[1].details


def test_capture_exception_with_two_apps_and_no_context_warns_and_does_nothing(
    make_alerting: Make, memory: MemoryNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    ext = make_alerting(notifiers=[memory])
    apps = [Flask(name) for name in ("one", "two")]  # kept alive: a freed app is forgotten
    for app in apps:
        ext.init_app(app)
    with caplog.at_level(logging.WARNING, logger="flask_alerting"):
        ext.capture_exception(RuntimeError("where?"))
    assert ext.flush(5.0)
    assert memory.alerts == []
    assert any("2 apps initialised" in r.getMessage() for r in caplog.records)


def test_capture_exception_without_an_exception_warns(
    alerting: FlaskAlerting, memory: MemoryNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_alerting"):
        alerting.capture_exception()
    assert alerting.flush(5.0)
    assert memory.alerts == []
    assert "called with no exception" in caplog.text


def test_disabled_extension_captures_nothing(
    app: Flask, make_alerting: Make, memory: MemoryNotifier
) -> None:
    ext = make_alerting(app, notifiers=[memory], enabled=False)
    app.add_url_rule("/fail", "fail", divide_by_zero)
    response = app.test_client().get("/fail")
    assert response.status_code == 500 and b"Internal Server Error" in response.data
    ext.capture_exception(RuntimeError("off"))
    assert ext.flush(5.0)
    assert memory.alerts == []


# -- fingerprint and storms ----------------------------------------------------------------------


def _raise_at_one_place(message: str) -> None:
    raise CheckoutError(message)


def fail_at_one_place(n: int) -> str:
    _raise_at_one_place(f"n={n}")
    return "never"


def divide_by_zero() -> str:
    return str(1 / 0)


def _fingerprint(exc: BaseException, endpoint: str | None = None) -> str:
    labels = {"app": "a", "host": "h"}
    if endpoint:
        labels["endpoint"] = endpoint
    return error_alert_builder(exc, labels=labels)().fingerprint


def test_fingerprint_is_class_location_and_endpoint_never_the_message() -> None:
    caught: list[BaseException] = []
    for message in ("order 1 failed", "order 2 failed\nwith details", "x" * 500):
        try:
            _raise_at_one_place(message)
        except CheckoutError as exc:
            caught.append(exc)
    try:
        raise CheckoutError("order 1 failed")  # same class and message, another line
    except CheckoutError as exc:
        elsewhere = exc
    try:
        raise ValueError("order 1 failed")
    except ValueError as exc:
        other_class = exc

    prints = {_fingerprint(exc) for exc in caught}
    assert len(prints) == 1
    same = prints.pop()
    assert same == error_fingerprint(caught[0], None)
    assert _fingerprint(elsewhere) != same
    assert _fingerprint(other_class) != same
    assert _fingerprint(caught[0], "checkout") != same


def test_fingerprint_skips_library_frames_for_the_apps_own_code(
    app: Flask, alerting: FlaskAlerting, memory: MemoryNotifier
) -> None:
    @app.route("/parse/<int:n>")
    def parse_view(n: int) -> str:
        # The exception is raised inside the standard library (json), every time with
        # another message: the app's own frame (this line) makes the fingerprint.
        import json

        json.loads("{" * n)
        return "never"

    client = app.test_client()
    for n in (1, 2, 3):
        client.get(f"/parse/{n}")
    assert alerting.flush(5.0)
    fingerprints = {a.fingerprint for a in memory.alerts}
    # The first alert is sent; the others are counted into the window.
    assert len(memory.alerts) == 1 and len(fingerprints) == 1
    assert "json" in (memory.alerts[0].traceback or "")


def test_storm_of_one_error_gives_one_email_then_a_digest_after_the_window(
    app: Flask,
    make_alerting: Make,
    smtp_config: dict[str, Any],
    smtp_server: SMTPServer,
    clock: FakeClock,
) -> None:
    alerting = smtp_alerting(app, make_alerting, smtp_config, throttle_seconds=60, clock=clock)

    @app.route("/pay/<int:n>")
    def pay(n: int) -> str:
        raise CheckoutError(f"card {n} declined at {n * 7} ms")

    client = app.test_client()
    for n in range(50):
        assert client.get(f"/pay/{n}").status_code == 500
    assert alerting.flush(10.0)
    first = smtp_server.wait_for(1)[0]
    assert "card 0 declined" in str(first["Subject"])
    assert len(smtp_server.raw) == 1

    clock.advance(61)
    assert alerting.flush(10.0)
    messages = smtp_server.wait_for(2)
    assert len(messages) == 2
    digest = messages[1]
    assert "(49x)" in str(digest["Subject"])
    # Once the window is open, occurrences are only counted: the digest shows the latest
    # one captured in full, consistently (subject and request details of the same one).
    shown = re.search(r"card (\d+) declined", str(digest["Subject"]))
    # (at worst the occurrence that opened the window, card 0)
    assert shown is not None and 0 <= int(shown.group(1)) <= 49
    assert f"/pay/{shown.group(1)}" in plain_body(digest)
    assert digest["X-Alert-Fingerprint"] == first["X-Alert-Fingerprint"]
    assert "This alert occurred 49 more times" in plain_body(digest)
    assert "the latest occurrence captured in full is shown below" in plain_body(digest)


def test_storm_digest_is_emitted_by_shutdown(
    app: Flask, make_alerting: Make, smtp_config: dict[str, Any], smtp_server: SMTPServer
) -> None:
    alerting = smtp_alerting(app, make_alerting, smtp_config, throttle_seconds=300)
    app.add_url_rule("/fail/<int:n>", "fail", fail_at_one_place)
    client = app.test_client()
    for n in range(50):
        client.get(f"/fail/{n}")
    assert alerting.shutdown(10.0)
    messages = smtp_server.wait_for(2)
    assert len(messages) == 2
    assert "(49x)" in str(messages[1]["Subject"])


# -- no double reports -----------------------------------------------------------------------


def test_flask_log_record_our_alert_and_the_handler_make_one_email(
    app: Flask,
    make_alerting: Make,
    smtp_config: dict[str, Any],
    smtp_server: SMTPServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Throttle off: a duplicate would be a second e-mail, not a digest count.
    alerting = smtp_alerting(app, make_alerting, smtp_config, throttle_seconds=0)
    handler = AlertingHandler(alerting)
    root = logging.getLogger()
    root.addHandler(handler)
    app.logger.addHandler(handler)  # also directly on Flask's logger: a second chance
    try:

        @app.route("/fail")
        def fail() -> str:
            raise CheckoutError("reported once")

        with caplog.at_level(logging.ERROR):
            app.test_client().get("/fail")
            assert alerting.flush(10.0)
    finally:
        root.removeHandler(handler)
        app.logger.removeHandler(handler)
    flask_records = [r for r in caplog.records if r.getMessage().startswith("Exception on /fail")]
    assert len(flask_records) == 1 and flask_records[0].exc_info is not None
    smtp_server.wait_for(1)
    assert len(smtp_server.raw) == 1


# -- scrubbing, end to end -----------------------------------------------------------------------

SECRETS = {
    "header": "sEcReT-hdr-1111",
    "cookie": "sEcReT-cookie-2222",
    "query": "sEcReT-query-3333",
    "form": "sEcReT-form-4444",
    "json": "sEcReT-json-5555",
    "authorization": "sEcReT-auth-6666",
    "url": "sEcReT-url-7777",
    "view_arg": "sEcReT-path-8888",
    "local": "sEcReT-local-9999",
    "extra": "sEcReT-extra-0000",
    "custom_field": "sEcReT-custom-aaaa",
}
VISIBLE = ["visible-header", "visible-cookie", "visible-query", "visible-form", "visible-json"]


def test_secrets_planted_in_every_channel_never_reach_the_email(
    app: Flask,
    make_alerting: Make,
    smtp_config: dict[str, Any],
    smtp_server: SMTPServer,
) -> None:
    app.config["ALERTING_SCRUB_FIELDS"] = ["iban"]
    # Cookie values are shown on request only (by default their names alone, see
    # test_hostile.py): shown here, so that the cookie channel carries values to scrub.
    app.config["ALERTING_SHOW_COOKIE_VALUES"] = True
    alerting = smtp_alerting(app, make_alerting, smtp_config, throttle_seconds=0)

    @app.route("/account/<reset_token>", methods=["POST"])
    def account(reset_token: str) -> str:
        customer_password = SECRETS["local"]  # a frame local: never included
        request.form.get("user")
        request.get_json(silent=True)
        alerting.capture_exception(CheckoutError("saving failed"), api_key=SECRETS["extra"])
        raise CheckoutError(f"account update failed ({len(customer_password)})")

    client = app.test_client()
    client.set_cookie("session_id", SECRETS["cookie"])
    client.set_cookie("theme", "visible-cookie")
    common = {
        "headers": {
            "X-Api-Key": SECRETS["header"],
            "Authorization": f"Bearer {SECRETS['authorization']}",
            "X-Request-Id": "visible-header",
        },
    }
    client.post(
        f"/account/{SECRETS['view_arg']}",
        data={"password": SECRETS["form"], "user": "visible-form", "iban": SECRETS["custom_field"]},
        query_string={"access_token": SECRETS["query"], "page": "visible-query"},
        **common,
    )
    client.post(
        f"/account/{SECRETS['view_arg']}?client_secret={SECRETS['url']}&page=visible-query",
        json={"profile": {"name": "visible-json", "credentials": {"private_key": SECRETS["json"]}}},
        **common,
    )
    assert alerting.flush(10.0)
    smtp_server.wait_for(4)
    assert len(smtp_server.raw) == 4  # two capture_exception calls, two unhandled errors

    everything = "\n".join(t for raw in smtp_server.raw for t in decoded_texts(raw))
    for channel, secret in SECRETS.items():
        assert secret not in everything, f"the {channel} secret leaked"
        for raw in smtp_server.raw:
            assert secret.encode() not in raw
    # The channels are there, with their ordinary values: the scrubbing is selective.
    for value in VISIBLE:
        assert value in everything, value
    assert FILTERED in everything


def test_frame_locals_are_never_included(
    app: Flask, alerting: FlaskAlerting, memory: MemoryNotifier
) -> None:
    @app.route("/fail")
    def fail() -> str:
        db_password = "local-value-never-shown"
        raise CheckoutError(str(len(db_password)))

    app.test_client().get("/fail")
    assert alerting.flush(5.0)
    alert = memory.alerts[0]
    assert "local-value-never-shown" not in repr(alert)
    assert "local-value-never-shown" not in alert.message + (alert.traceback or "")


# -- header safety -------------------------------------------------------------------------------

EXPECTED_HEADERS = {
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "thread-index",
    "x-alert-fingerprint",
    "x-alert-severity",
    "content-type",
    "mime-version",
}


def _assert_clean_email(raw: bytes) -> EmailMessage:
    message = parse(raw)
    assert {name.lower() for name in message.keys()} == EXPECTED_HEADERS
    assert not message.defects
    assert "\n" not in str(message["Subject"]) and "\r" not in str(message["Subject"])
    assert message["To"] == "admin@example.com"
    return message


@pytest.mark.parametrize(
    "case",
    ["crlf", "long", "non_ascii", "bad_query_bytes", "bad_form_bytes", "bad_path", "bad_header"],
)
def test_hostile_text_never_injects_a_header_breaks_the_email_or_loses_the_alert(
    app: Flask,
    make_alerting: Make,
    smtp_config: dict[str, Any],
    smtp_server: SMTPServer,
    case: str,
) -> None:
    alerting = smtp_alerting(app, make_alerting, smtp_config)
    messages = {
        "crlf": "boom\r\nBcc: victim@example.com\r\nX-Injected: yes\r\n\r\nfake body",
        "long": "A" * 100_000,
        "non_ascii": "\u00e9chec du paiement \u6f22\u5b57 \U0001f680 \u200b\u2028next",
    }
    message = messages.get(case, "request bytes")

    @app.route("/fail/<path:rest>", methods=["GET", "POST"])
    def fail(rest: str) -> str:
        request.form.get("x")
        raise CheckoutError(message)

    client = app.test_client()
    if case == "bad_query_bytes":
        client.get("/fail/x", environ_base={"QUERY_STRING": "q=%ff%fe%c3%28&token=%80"})
    elif case == "bad_form_bytes":
        client.post(
            "/fail/x",
            data=b"name=\xff\xfe\xc3(&password=\x80\x81",
            content_type="application/x-www-form-urlencoded",
        )
    elif case == "bad_path":
        client.get("/fail/%ff%c3%28\r\nBcc: victim@example.com")
    elif case == "bad_header":
        client.get("/fail/x", headers={"X-Weird": "caf\xe9 \x7f\x00 end"})
    else:
        client.get("/fail/x")
    assert alerting.flush(10.0)
    raw = smtp_server.wait_for(1)[0].as_bytes()
    assert smtp_server.envelopes == [("alerts@example.com", ["admin@example.com"])]
    email_message = _assert_clean_email(smtp_server.raw[0])
    subject = str(email_message["Subject"])
    body = plain_body(email_message)
    assert subject.startswith("[testapp] tests.test_capture.CheckoutError")
    assert raw
    if case == "crlf":
        assert "Bcc: victim@example.com" in subject  # shown, on one line, harmless
        assert "victim@example.com" not in email_message.get("To", "")
    elif case == "long":
        assert len(subject) <= 150
        assert "A" * 5000 in body
        assert len(body) < MAX_EXCEPTION_TEXT * 2 + 20_000
        assert "more characters]" in body
    elif case == "non_ascii":
        assert "\u00e9chec du paiement \u6f22\u5b57 \U0001f680" in subject
        assert "\u00e9chec du paiement" in body
    else:
        assert "Request:" in body


def test_an_exception_whose_str_fails_is_still_alerted(
    app: Flask, alerting: FlaskAlerting, memory: MemoryNotifier
) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    @app.route("/fail")
    def fail() -> str:
        raise Unprintable()

    app.test_client().get("/fail")
    assert alerting.flush(5.0)
    assert "<exception str() failed>" in (memory.alerts[0].traceback or "")


# -- the request path keeps nothing it should not ------------------------------------------


def test_the_builder_keeps_no_reference_to_the_exception_or_its_frames() -> None:
    def fail() -> None:
        big_local = bytearray(10)  # noqa: F841 - a frame local the builder must not keep
        raise CheckoutError("gone")

    def capture() -> tuple[Callable[[], Alert], weakref.ref[BaseException]]:
        try:
            fail()
        except CheckoutError as exc:
            return error_alert_builder(exc, labels={"app": "a", "host": "h"}), weakref.ref(exc)
        raise AssertionError("not raised")

    builder, ref = capture()
    gc.collect()
    # The exception (and with it the traceback, its frames and their locals) is gone.
    assert ref() is None
    alert = builder()
    assert "CheckoutError: gone" in (alert.traceback or "")


def _nested(level: int) -> None:
    if level == 0:
        raise KeyError("deep")
    _nested(level - 1)


def _chained() -> None:
    try:
        _nested(1)
    except KeyError as exc:
        raise ValueError("wrapped") from exc


def _context() -> None:
    try:
        _nested(0)
    except KeyError:
        raise RuntimeError("while handling") from None


@pytest.mark.parametrize("func", [_chained, _context, lambda: _nested(40)])
def test_traceback_text_is_what_the_standard_library_prints(func: Callable[[], None]) -> None:
    try:
        func()
    except Exception as exc:
        assert format_traceback(exc) == "".join(traceback.format_exception(exc))
        again = format_traceback(exc)  # from the cache of formatted stacks
        assert again == "".join(traceback.format_exception(exc))


def test_equal_code_in_two_files_is_formatted_with_its_own_file() -> None:
    # Code objects compare equal across files (their filename is not compared): the cache
    # of formatted stacks must still tell them apart.
    source = "def fail():\n    raise KeyError('same code')\n"
    for filename in ("/srv/app_one/views.py", "/srv/app_two/views.py"):
        namespace: dict[str, Any] = {}
        exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - test code
        try:
            namespace["fail"]()
        except KeyError as exc:
            text = format_traceback(exc)
            assert text == "".join(traceback.format_exception(exc))
            assert f'File "{filename}", line 2, in fail' in text


def test_a_failure_inside_capture_never_breaks_the_response(
    app: Flask,
    make_alerting: Make,
    memory: MemoryNotifier,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_alerting(app, notifiers=[memory], error_response=NOTICE)
    # Failure injection: the builder factory itself raises.
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug in flask-alerting")

    monkeypatch.setattr("flask_alerting.capture._alerts.error_alert_builder", broken)

    @app.route("/fail")
    def fail() -> str:
        raise CheckoutError("x")

    with caplog.at_level(logging.ERROR, logger="flask_alerting"):
        response = app.test_client().get("/fail")
    assert (response.status_code, response.get_data(as_text=True)) == (500, NOTICE)
    assert "internal error while capturing an exception" in caplog.text
