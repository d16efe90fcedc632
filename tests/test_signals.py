"""Signal receivers that raise are logged and skipped: they never cost an alert."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask, current_app

from flask_alerting import (
    Alert,
    FlaskAlerting,
    MemoryNotifier,
    RetryPolicy,
    TransientError,
    alert_failed,
    alert_raised,
    alert_sent,
    alert_suppressed,
)


def needs_an_app_context(sender: Flask, **kwargs: object) -> None:
    # Receivers run on flask-alerting's threads, without an app context: this raises.
    current_app.logger.info("got %r", kwargs)


def test_raising_receivers_of_raised_and_suppressed_never_lose_the_alert(
    app: Flask,
    memory: MemoryNotifier,
    make_alerting: Callable[..., FlaskAlerting],
    caplog: pytest.LogCaptureFixture,
) -> None:
    alerting = make_alerting(app, notifiers=[memory], throttle_seconds=60)
    seen: list[str] = []
    with alert_raised.connected_to(needs_an_app_context, app), alert_suppressed.connected_to(
        needs_an_app_context, app
    ), alert_raised.connected_to(lambda sender, alert: seen.append(alert.title), app):
        with app.app_context():
            alerting.alert("disk full")
            alerting.alert("disk full")
        assert alerting.flush(5)
    assert [a.title for a in memory.alerts] == ["disk full"]
    assert seen == ["disk full", "disk full"]  # the other receivers still ran
    assert alerting.stats()["suppressed"] == 1
    ignored = [r for r in caplog.records if "a receiver of the" in r.getMessage()]
    assert {r.getMessage() for r in ignored} == {
        "flask-alerting: a receiver of the 'alert-raised' signal raised; ignored",
        "flask-alerting: a receiver of the 'alert-suppressed' signal raised; ignored",
    }


class FailsOnce(MemoryNotifier):
    name = "fails-once"

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def send(self, alert: Alert) -> None:
        self.attempts += 1
        if self.attempts == 1:
            raise TransientError("try again")
        super().send(alert)


def test_a_raising_alert_failed_receiver_does_not_stop_the_retry(
    app: Flask, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    notifier = FailsOnce()
    alerting = make_alerting(
        app, notifiers=[notifier], retry_policy=RetryPolicy(initial=0.01, cap=0.01)
    )
    with alert_failed.connected_to(needs_an_app_context, app), alert_sent.connected_to(
        needs_an_app_context, app
    ):
        with app.app_context():
            alerting.alert("queue stuck")
        assert alerting.flush(5)
    assert notifier.attempts == 2
    assert [a.title for a in notifier.alerts] == ["queue stuck"]
    assert alerting.stats()["notifiers"]["fails-once"] == {"queued": 0, "sent": 1, "failed": 0}


def test_the_log_names_the_signal(caplog: pytest.LogCaptureFixture) -> None:
    from flask_alerting.signals import send_safely

    def boom(sender: object, **kwargs: object) -> None:
        raise RuntimeError("receiver bug")

    calls: list[object] = []
    with caplog.at_level(logging.ERROR, logger="flask_alerting"):
        with alert_raised.connected_to(boom), alert_raised.connected_to(
            lambda sender, **kw: calls.append(kw)
        ):
            send_safely(alert_raised, "sender", alert="x")
    assert calls == [{"alert": "x"}]
    assert "receiver bug" in caplog.text
