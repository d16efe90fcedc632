"""Flask stays Flask: apps are freed, tracebacks hold no frame of ours, responses are Flask's.

Flask's own test suite is run with the extension on every app by
``tests/flask_suite/run.py`` (a CI step); these tests pin the same properties down here.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import traceback
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import pytest
from flask import Flask, abort
from werkzeug.exceptions import HTTPException, InternalServerError

import flask_alerting
from flask_alerting import FlaskAlerting, MemoryNotifier

OWN_DIR = os.path.dirname(os.path.abspath(flask_alerting.__file__))
NOTICE = "An error occurred. The administrators have been notified."

Make = Callable[..., FlaskAlerting]


@pytest.fixture
def no_gc() -> Iterator[None]:
    """The garbage collector off, as in Flask's test_app_freed_on_zero_refcount: whatever
    is freed is freed by reference counting alone, so no reference cycle may hold it."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _app(name: str = "freed") -> Flask:
    app = Flask(name)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.route("/ok")
    def ok() -> str:
        return "ok"

    @app.route("/handled")
    def handled() -> str:
        raise LookupError("handled into a 500 by the app")

    @app.errorhandler(LookupError)
    def on_lookup(e: LookupError) -> tuple[str, int]:
        return "sorry", 500

    @app.route("/abort")
    def aborted() -> str:
        abort(503)

    return app


def _flask_alerting_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"flask-alerting-{name}-")]


# -- apps are freed -----------------------------------------------------------------------------


def test_an_app_with_the_extension_is_freed_without_the_garbage_collector(
    no_gc: None, tmp_path: Path
) -> None:
    # Flask's own test_app_freed_on_zero_refcount, with the extension.
    app = Flask(__name__)
    FlaskAlerting(app, notifiers=[MemoryNotifier()], metrics_enabled=False)
    ref = weakref.ref(app)
    del app
    assert ref() is None


def test_an_app_that_served_and_alerted_is_freed_without_the_garbage_collector(
    no_gc: None, tmp_path: Path
) -> None:
    memory = MemoryNotifier()
    alerting = FlaskAlerting(notifiers=[memory], throttle_seconds=0)

    @alerting.timed(threshold=0.0, name="slow_call")
    def slow_call() -> None:
        pass

    app = _app()
    app.config.update(
        ALERTING_ERROR_RESPONSE=NOTICE,
        ALERTING_SLOW_REQUEST_THRESHOLD=0.000001,
        ALERTING_LOG_FILE=str(tmp_path / "alerts.log"),
        ALERTING_METRICS_ENABLED=False,
    )
    alerting.init_app(app)
    client = app.test_client()
    # Not /abort: Flask itself leaves an HTTPException in a cycle (see below).
    assert [client.get(path).status_code for path in ("/ok", "/handled")] == [200, 500]
    with app.app_context():
        alerting.alert("custom")
        slow_call()
        try:
            raise ValueError("captured")
        except ValueError:
            alerting.capture_exception()
    assert alerting.flush(10.0)
    titles = sorted(a.title for a in memory.alerts if a.kind != "timing")
    assert titles == [
        "LookupError: handled into a 500 by the app in handled",
        "ValueError: captured",
        "custom",
    ]
    timings = sorted(a.labels["function"] for a in memory.alerts if a.kind == "timing")
    assert timings == ["GET handled", "GET ok", "slow_call"]
    ref = weakref.ref(app)
    del app, client
    assert ref() is None
    # The extension outlives it, and so do the alerts it delivered.
    assert alerting.timing_stats()["slow_call"].count == 1


def test_plain_flask_frees_the_same_app_without_the_garbage_collector(no_gc: None) -> None:
    # The baseline of the test above: what the extension must not break.
    app = _app("plain")
    client = app.test_client()
    assert [client.get(p).status_code for p in ("/ok", "/handled")] == [200, 500]
    ref = weakref.ref(app)
    del app, client
    assert ref() is None


def test_a_freed_app_ends_its_threads_and_delivers_what_it_raised(tmp_path: Path) -> None:
    memory = MemoryNotifier()
    alerting = FlaskAlerting(notifiers=[memory], throttle_seconds=3600)
    gone, kept = _app("gone"), _app("kept")
    for app in (gone, kept):
        app.config.update(
            ALERTING_METRICS_ENABLED=True,  # a sampler thread too
            ALERTING_METRICS_INTERVAL=3600,
            ALERTING_METRICS_LOCK_FILE=str(tmp_path / f"{app.name}.lock"),
        )
        alerting.init_app(app)
    try:
        client = gone.test_client()
        for _ in range(3):  # the first leaves now, the other two wait for a digest
            assert client.get("/handled").status_code == 500
        assert alerting.flush(10.0)
        assert [a.occurrences for a in memory.alerts] == [1]
        threads = _flask_alerting_threads("gone")
        assert len(threads) >= 3  # dispatch, notifier, metrics
        ref = weakref.ref(gone)
        del gone, client
        gc.collect()  # Flask itself may leave a cycle behind a request
        assert ref() is None
        for thread in threads:
            thread.join(10.0)
            assert not thread.is_alive(), thread.name
        # The pending digest left before the threads ended: nothing lost.
        assert [(a.labels["app"], a.occurrences) for a in memory.alerts] == [
            ("gone", 1),
            ("gone", 2),
        ]
        # The other app keeps alerting.
        assert kept.test_client().get("/handled").status_code == 500
        assert alerting.flush(10.0)
        assert [a.labels["app"] for a in memory.alerts][-1] == "kept"
        assert _flask_alerting_threads("kept")
    finally:
        alerting.shutdown(5.0)


def test_an_app_with_unhandled_errors_is_freed_once_collected() -> None:
    # Flask keeps an unhandled exception's traceback, and an HTTPException answered as
    # it is, in cycles of its own (frames holding the exception), so this needs the
    # collector with or without the extension; but nothing of ours may keep the app.
    memory = MemoryNotifier()
    alerting = FlaskAlerting(notifiers=[memory], error_response=NOTICE)
    app = _app("unhandled")
    # Flask logs the error; pytest's log capture would keep the record, its traceback
    # and so the app: keep this app's log to itself.
    app.logger.propagate = False
    app.logger.addHandler(logging.NullHandler())

    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("unhandled")

    alerting.init_app(app)
    client = app.test_client()
    response = client.get("/boom")
    assert (response.status_code, response.get_data(as_text=True)) == (500, NOTICE)
    assert client.get("/abort").status_code == 503
    assert alerting.flush(10.0) and len(memory.alerts) == 2
    ref = weakref.ref(app)
    del app, client, response, boom
    gc.collect()
    assert ref() is None


# -- tracebacks ---------------------------------------------------------------------------------


def _frames(tb: TracebackType | None) -> list[str]:
    return [os.path.abspath(frame.f_code.co_filename) for frame, _ in traceback.walk_tb(tb)]


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("error_response", [None, NOTICE])
@pytest.mark.parametrize(
    "path", ["/boom", "/handled", "/handler-raises", "/abort500", "/bp/boom"]
)
def test_no_frame_of_flask_alerting_in_any_traceback(
    make_alerting: Make, path: str, error_response: str | None
) -> None:
    from flask import Blueprint

    app = _app("tracebacks")

    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("unhandled")

    @app.route("/handler-raises")
    def handler_raises() -> str:
        raise KeyError("first")

    @app.errorhandler(KeyError)
    def on_key(e: KeyError) -> str:
        raise ValueError("the handler failed too")

    @app.route("/abort500")
    def abort500() -> str:
        abort(500)

    bp = Blueprint("bp", __name__)

    @bp.route("/boom")
    def bp_boom() -> str:
        raise OSError("disk")

    @bp.errorhandler(OSError)
    def bp_handler(e: OSError) -> tuple[str, int]:
        return "bp", 502

    app.register_blueprint(bp, url_prefix="/bp")
    memory = MemoryNotifier()
    alerting = make_alerting(app, notifiers=[memory], error_response=error_response)
    logged = _Records()
    app.logger.addHandler(logged)
    try:
        assert app.test_client().get(path).status_code >= 500
    finally:
        app.logger.removeHandler(logged)
    assert alerting.flush(10.0)
    assert len(memory.alerts) == 1, [a.title for a in memory.alerts]
    alert = memory.alerts[0]
    assert alert.traceback and "Traceback (most recent call last)" in alert.traceback
    assert OWN_DIR not in alert.traceback
    for record in logged.records:  # Flask's own "Exception on ..." line
        assert record.exc_info is not None
        for exc in _chain(record.exc_info[1]):
            assert not [f for f in _frames(exc.__traceback__) if f.startswith(OWN_DIR)]


# -- Flask's own responses --------------------------------------------------------------------


@pytest.fixture
def errors_app() -> Flask:
    app = Flask("responses")
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.route("/unhandled")
    def unhandled() -> str:
        raise RuntimeError("x")

    @app.route("/described")
    def described() -> str:
        abort(500, description="The database is down, back in 5 minutes.")

    @app.route("/own-response")
    def own_response() -> str:
        raise InternalServerError(response=app.response_class("maintenance", status=500))

    @app.route("/plain-abort")
    def plain_abort() -> str:
        abort(500)

    return app


def test_by_default_every_500_is_flasks_own(errors_app: Flask, make_alerting: Make) -> None:
    plain = Flask("plain")
    plain.config["PROPAGATE_EXCEPTIONS"] = False
    for rule in errors_app.url_map.iter_rules():
        if rule.endpoint != "static":
            plain.add_url_rule(rule.rule, rule.endpoint, errors_app.view_functions[rule.endpoint])
    memory = MemoryNotifier()
    alerting = make_alerting(errors_app, notifiers=[memory], throttle_seconds=0)
    ours, theirs = errors_app.test_client(), plain.test_client()
    for path in ("/unhandled", "/described", "/own-response", "/plain-abort"):
        for headers in ({}, {"Accept": "application/json"}):
            got, want = ours.get(path, headers=headers), theirs.get(path, headers=headers)
            assert (got.status_code, got.headers, got.data) == (
                want.status_code,
                want.headers,
                want.data,
            ), path
    assert alerting.flush(10.0)
    assert len(memory.alerts) == 8  # and every one alerted


def test_the_notice_never_replaces_an_explicit_500(errors_app: Flask, make_alerting: Make) -> None:
    make_alerting(errors_app, notifiers=[MemoryNotifier()], error_response=NOTICE)
    client = errors_app.test_client()
    described = client.get("/described")
    assert described.status_code == 500
    assert "The database is down, back in 5 minutes." in described.get_data(as_text=True)
    own = client.get("/own-response", headers={"Accept": "application/json"})
    assert (own.status_code, own.get_data(as_text=True)) == (500, "maintenance")
    # Nothing explicit: the notice.
    for path in ("/unhandled", "/plain-abort"):
        assert client.get(path).get_data(as_text=True) == NOTICE
        json = client.get(path, headers={"Accept": "application/json"})
        assert json.get_json() == {"error": NOTICE}


@pytest.mark.parametrize("registered", ["before", "after"])
@pytest.mark.parametrize("base", [HTTPException, Exception])
def test_the_apps_handler_for_a_base_class_wins_over_the_notice(
    errors_app: Flask, make_alerting: Make, registered: str, base: type[Exception]
) -> None:
    def own(e: Exception) -> tuple[str, int]:
        return f"own {type(e).__name__}", 500

    if registered == "before":
        errors_app.register_error_handler(base, own)
    memory = MemoryNotifier()
    alerting = make_alerting(errors_app, notifiers=[memory], error_response=NOTICE)
    if registered == "after":
        errors_app.register_error_handler(base, own)
    response = errors_app.test_client().get("/plain-abort")
    assert response.get_data(as_text=True) == "own InternalServerError"
    response = errors_app.test_client().get("/unhandled")
    expected = "own InternalServerError" if base is HTTPException else "own RuntimeError"
    assert response.get_data(as_text=True) == expected
    assert alerting.flush(10.0)
    assert len(memory.alerts) == 2  # both answered 500: both alerted


def test_a_handler_answering_below_500_is_not_alerted_and_keeps_its_response(
    errors_app: Flask, make_alerting: Make
) -> None:
    @errors_app.errorhandler(RuntimeError)
    def retry_later(e: RuntimeError) -> tuple[str, int]:
        return "try again", 429

    memory = MemoryNotifier()
    alerting = make_alerting(errors_app, notifiers=[memory], error_response=NOTICE)
    response = errors_app.test_client().get("/unhandled")
    assert (response.status_code, response.get_data(as_text=True)) == (429, "try again")
    assert alerting.flush(10.0)
    assert memory.alerts == []


def test_nothing_of_the_app_is_patched(make_alerting: Make) -> None:
    app = Flask("untouched")
    before = dict(vars(app))
    handlers = {k: dict(v) for k, v in app.error_handler_spec.items()}
    make_alerting(app, notifiers=[MemoryNotifier()], error_response=NOTICE)
    added = {k for k in vars(app) if k not in before or vars(app)[k] is not before[k]}
    assert added == set()  # no method replaced on the instance
    assert {k: dict(v) for k, v in app.error_handler_spec.items()} == handlers
    assert app.before_request_funcs == {} and app.after_request_funcs == {}
    assert "alerting" in app.extensions and "alerting" in app.cli.commands


class _Closing(MemoryNotifier):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


@pytest.mark.parametrize("shut_down_first", [False, True])
def test_a_freed_apps_notifiers_are_closed_once(shut_down_first: bool) -> None:
    notifier = _Closing()
    alerting = FlaskAlerting(notifiers=[notifier])
    app = _app("closing")
    alerting.init_app(app)
    assert app.test_client().get("/handled").status_code == 500
    assert alerting.flush(10.0)
    threads = _flask_alerting_threads("closing")
    if shut_down_first:
        assert alerting.shutdown(5.0)
        assert notifier.closed == 1
    del app
    gc.collect()
    for thread in threads:
        thread.join(10.0)
        assert not thread.is_alive()
    assert notifier.closed == 1
    assert len(notifier.alerts) == 1
