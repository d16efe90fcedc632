"""The testing helpers: record_alerts and the captured_alerts pytest fixture."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from flask_alerting import Alert, FlaskAlerting, MemoryNotifier, alert_raised
from flask_alerting.alert import PendingAlert
from flask_alerting.testing import record_alerts


def test_record_alerts_records_without_delivering(
    app: Flask, memory: MemoryNotifier, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    alerting = make_alerting(app, notifiers=[memory])

    @app.route("/boom")
    def boom() -> str:
        raise ValueError("boom")

    raised = []
    with alert_raised.connected_to(lambda sender, alert: raised.append(sender), app):
        with record_alerts(app) as alerts:
            assert app.test_client().get("/boom").status_code == 500
            # Complete as soon as the request returned: no flush needed.
            assert [a.labels["exception"] for a in alerts] == ["ValueError"]
            with app.app_context():
                alerting.alert("custom one")
                alerting.alert("custom one")  # not throttled while recording
    assert [a.title for a in alerts[1:]] == ["custom one", "custom one"]
    assert raised == [app, app, app]
    assert alerting.flush(5)
    assert memory.alerts == []

    # Recording is over: alerts are delivered again.
    with app.app_context():
        alerting.alert("after")
    assert alerting.flush(5)
    assert [a.title for a in memory.alerts] == ["after"]


def test_record_alerts_needs_an_initialised_app() -> None:
    with pytest.raises(RuntimeError, match="init_app"):
        with record_alerts(Flask("bare")):
            pass


def test_nested_recorders_restore_each_other(
    app: Flask, alerting: FlaskAlerting
) -> None:
    with record_alerts(app) as outer:
        with record_alerts(app) as inner:
            with app.app_context():
                alerting.alert("inner")
        with app.app_context():
            alerting.alert("outer")
    assert [a.title for a in inner] == ["inner"]
    assert [a.title for a in outer] == ["outer"]


def test_captured_alerts_fixture_in_a_users_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from flask import Flask
        from flask_alerting import FlaskAlerting, MemoryNotifier

        notifier = MemoryNotifier()

        @pytest.fixture
        def app():
            app = Flask("userapp")
            app.config["PROPAGATE_EXCEPTIONS"] = False
            alerting = FlaskAlerting(app, notifiers=[notifier])

            @app.route("/")
            def index():
                return {}["missing"]

            yield app
            alerting.shutdown(timeout=2)

        def test_error_is_captured(app, captured_alerts):
            assert app.test_client().get("/").status_code == 500
            assert len(captured_alerts) == 1
            alert = captured_alerts[0]
            assert alert.kind == "error"
            assert alert.labels["exception"] == "KeyError"
            assert alert.labels["endpoint"] == "index"

        def test_nothing_was_delivered():
            assert notifier.alerts == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_record_alerts_records_the_metrics_samplers_alerts(
    app: Flask,
    memory: MemoryNotifier,
    make_alerting: Callable[..., FlaskAlerting],
    tmp_path: Path,
) -> None:
    app.config.update(
        ALERTING_METRICS_ENABLED=True,
        ALERTING_METRICS_INTERVAL=0.05,
        ALERTING_METRICS_FOR=0,
        ALERTING_CPU_THRESHOLD=None,
        ALERTING_MEMORY_THRESHOLD=None,
        ALERTING_METRICS_LOCK_FILE=str(tmp_path / "metrics.lock"),
    )
    alerting = make_alerting(app, notifiers=[memory])
    raised = threading.Event()
    with record_alerts(app) as alerts:
        with alert_raised.connected_to(lambda sender, alert: raised.set(), app):
            # Added inside the block: sampled from the next sample on, so it fires here.
            alerting.add_rule("queue-depth", lambda: 5.0, threshold=1)
            assert raised.wait(10), "the sampler raised no alert"
    assert [(a.kind, a.labels["metric"]) for a in alerts[:1]] == [("metric", "queue-depth")]
    assert alerting.flush(5)
    assert memory.alerts == []  # recorded, not delivered


def test_pipeline_divert_hands_built_alerts_to_the_sink(
    app: Flask, memory: MemoryNotifier, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    """The public seam under record_alerts: while diverted, what is submitted is built on
    the submitting thread and handed to the sink; nothing is signalled, throttled or
    delivered. Blocks nest, and the pipeline delivers again once they are over."""
    alerting = make_alerting(app, notifiers=[memory])
    pipeline = app.extensions["alerting"].pipeline
    later = Alert(title="built later", labels={"app": app.name})
    outer: list[Alert] = []
    inner: list[Alert] = []
    raised: list[Alert] = []
    with alert_raised.connected_to(lambda sender, alert: raised.append(alert), app):
        with pipeline.divert(outer.append):
            pipeline.submit(Alert(title="direct", labels={"app": app.name}))
            with pipeline.divert(inner.append):
                pipeline.submit(lambda: later)
                pipeline.submit(lambda: None)  # a builder with nothing to send
            pipeline.submit(PendingAlert(lambda: later, later.fingerprint, later.timestamp))
        assert [a.title for a in outer] == ["direct", "built later"]
        assert inner == [later]
        assert raised == []  # the sink decides what to signal (record_alerts does)
        pipeline.submit(Alert(title="delivered", labels={"app": app.name}))
        assert alerting.flush(5)
    assert [a.title for a in memory.alerts] == ["delivered"]
    assert [a.title for a in raised] == ["delivered"]


def test_record_alerts_records_every_occurrence_of_a_storm_in_full(
    app: Flask, memory: MemoryNotifier, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    """Outside the block, an occurrence of an error whose throttle window is open is only
    counted (its source captures no details); inside it, every one is recorded in full."""
    alerting = make_alerting(app, notifiers=[memory], throttle_seconds=60)

    @app.route("/fail")
    def fail() -> str:
        raise ValueError("storm")

    client = app.test_client()
    assert client.get("/fail").status_code == 500
    assert alerting.flush(5)  # the window is open now
    state = app.extensions["alerting"]
    fingerprint = memory.alerts[0].fingerprint
    assert state.counts_only(fingerprint)
    with record_alerts(app) as alerts:
        assert not state.counts_only(fingerprint)
        for _ in range(3):
            assert client.get("/fail").status_code == 500
    assert state.counts_only(fingerprint)
    assert len(alerts) == 3
    assert all(a.traceback and "ValueError: storm" in a.traceback for a in alerts)
    assert alerting.flush(5)
    assert len(memory.alerts) == 1  # the recorded ones were not delivered
