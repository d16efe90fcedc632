"""The delivery pipeline end to end: real SMTP server, real Flask requests, real threads.

Nothing here sleeps to wait for a thread: tests wait on blinker signals, on the SMTP
server's condition (``SMTPServer.wait_for``) or on ``alerting.flush(timeout)``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from blinker import Signal
from flask import Flask

from flask_alerting import (
    Alert,
    FlaskAlerting,
    MemoryNotifier,
    Notifier,
    RetryPolicy,
    alert_dropped,
    alert_failed,
    alert_raised,
    alert_sent,
)
from flask_alerting.render import text_body
from tests.recorder import Recorder
from tests.smtp_server import SMTPServer, free_port

FAST_RETRY = RetryPolicy(initial=0.05, cap=0.2)


# -- helpers -----------------------------------------------------------------------------------


def smtp_config(host: str, port: int) -> dict[str, Any]:
    """Plain SMTP keys; the metrics sampler stays off so that only the test's alerts exist."""
    return {
        "ALERTING_SMTP_HOST": host,
        "ALERTING_SMTP_PORT": port,
        "ALERTING_SMTP_SECURITY": "none",
        "ALERTING_MAIL_SENDER": "alerts@example.com",
        "ALERTING_MAIL_RECIPIENTS": "admin@example.com",
        "ALERTING_METRICS_ENABLED": False,
    }


class BlockingNotifier(MemoryNotifier):
    """Blocks inside ``send`` until :attr:`release` is set (bounded, so a failing test
    cannot hang the run)."""

    name = "blocking"

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def send(self, alert: Alert) -> None:
        self.entered.set()
        if not self.release.wait(30.0):
            raise RuntimeError("the test never released the blocking notifier")
        super().send(alert)


class FailingNotifier(Notifier):
    """Raises on every attempt."""

    name = "failing"

    def __init__(self, error: Callable[[], Exception]) -> None:
        self.error = error
        self.attempts = 0

    def send(self, alert: Alert) -> None:
        self.attempts += 1
        raise self.error()


def add_error_routes(app: Flask) -> None:
    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("database unreachable")

    @app.route("/other")
    def other() -> str:
        raise KeyError("missing")


# -- server down, then back on the same port ------------------------------------------------


def test_server_down_then_back_delivers_every_alert_exactly_once(
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    smtp_factory: Callable[..., SMTPServer],
    recorder: Callable[[Signal], Recorder],
) -> None:
    port = free_port()  # nothing listens there yet
    app.config.update(smtp_config("127.0.0.1", port))
    failed = recorder(alert_failed)
    sent = recorder(alert_sent)
    alerting = make_alerting(app, retry_policy=FAST_RETRY)
    titles = [f"Disk {i} nearly full" for i in range(6)]

    for title in titles[:3]:
        alerting.alert(title)
    first = failed.wait_for(1)[0]
    assert isinstance(first["exception"], ConnectionRefusedError)
    assert first["will_retry"] is True
    for title in titles[3:]:  # raised while the server is still down
        alerting.alert(title)
    assert not alerting.flush(0.05)

    server = smtp_factory(port=port)
    assert alerting.flush(15)
    subjects = [str(m["Subject"]) for m in server.messages]
    assert sorted(subjects) == sorted(f"[testapp] {t}" for t in titles)  # each exactly once
    assert len(server.raw) == len(titles)
    assert sorted(c["alert"].title for c in sent.calls) == sorted(titles)
    assert all(c["will_retry"] for c in failed.calls)
    assert alerting.stats()["notifiers"]["smtp"] == {
        "queued": 0,
        "sent": len(titles),
        "failed": 0,
    }


# -- a slow server does not slow requests ----------------------------------------------------


def test_slow_server_does_not_delay_requests(
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    smtp_server: SMTPServer,
) -> None:
    smtp_server.delay = 3.0  # every DATA reply is held back 3 s
    app.config.update(smtp_config(smtp_server.host, smtp_server.port))
    add_error_routes(app)
    alerting = make_alerting(app)
    client = app.test_client()

    first = client.get("/boom")
    second = client.get("/other")
    # Had a request waited on SMTP, its message would be on the server by now.
    assert smtp_server.raw == []
    assert (first.status_code, second.status_code) == (500, 500)
    assert "<h1>Internal Server Error</h1>" in first.get_data(as_text=True)
    assert not alerting.flush(0.05)  # both deliveries still pending
    assert alerting.flush(15)
    subjects = sorted(str(m["Subject"]) for m in smtp_server.messages)
    assert subjects == [
        "[testapp] KeyError: 'missing' in other",
        "[testapp] RuntimeError: database unreachable in boom",
    ]


# -- queue overflow ---------------------------------------------------------------------------


def test_queue_overflow_is_counted_signalled_logged_and_told(
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    recorder: Callable[[Signal], Recorder],
    caplog: pytest.LogCaptureFixture,
) -> None:
    add_error_routes(app)
    blocker = BlockingNotifier()
    raised = recorder(alert_raised)
    dropped = recorder(alert_dropped)
    alerting = make_alerting(app, notifiers=[blocker], queue_size=2, throttle_seconds=0)
    client = app.test_client()
    requests = 7  # 1 in the blocked send, 2 queued, 4 dropped
    try:
        statuses = []
        for i in range(requests):
            statuses.append(client.get("/boom").status_code)
            # The dispatch thread has taken the alert: the inbound queue is empty again,
            # so every overflow happens at the notifier's queue, in a known order.
            raised.wait_for(i + 1)
            if i == 0:
                assert blocker.entered.wait(10)
        assert statuses == [500] * requests
        calls = dropped.wait_for(requests - 3)
        assert [c["reason"] for c in calls] == ["queue full"] * (requests - 3)
        assert all(c["alert"].kind == "error" for c in calls)
        assert alerting.stats()["dropped"] == requests - 3
        drop_logs = [
            r
            for r in caplog.records
            if r.name == "flask_alerting" and "dropped" in r.getMessage()
        ]
        assert len(drop_logs) == 1 and drop_logs[0].levelno == logging.WARNING
        assert blocker.alerts == []
    finally:
        blocker.release.set()

    assert alerting.flush(10)
    # The alert in flight was built before the drops; the next one tells them.
    assert [a.dropped for a in blocker.alerts] == [0, requests - 3, 0]
    assert (
        f"Note: {requests - 3} earlier alert(s) were dropped: a full delivery queue, or "
        "the bounds of the outbox (see the flask_alerting log)." in text_body(blocker.alerts[1])
    )
    assert "dropped" not in text_body(blocker.alerts[2])
    assert alerting.stats()["dropped"] == requests - 3


# -- one notifier's trouble is not the others' --------------------------------------------------


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (lambda: RuntimeError("bug in notifier"), False),
        (lambda: ConnectionRefusedError(111, "refused"), True),
    ],
    ids=["permanent", "transient"],
)
def test_failing_notifier_does_not_affect_others(
    error: Callable[[], Exception],
    transient: bool,
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    memory: MemoryNotifier,
    recorder: Callable[[Signal], Recorder],
) -> None:
    failing = FailingNotifier(error)
    sent = recorder(alert_sent)
    failed = recorder(alert_failed)
    alerting = make_alerting(
        app, notifiers=[failing, memory], throttle_seconds=0, retry_policy=FAST_RETRY
    )
    titles = [f"Disk {i} nearly full" for i in range(5)]
    for title in titles:
        alerting.alert(title)

    sent.wait_for(len(titles))
    assert [a.title for a in memory.alerts] == titles
    assert all(c["notifier"] is memory for c in sent.calls)
    assert failed.calls and all(c["notifier"] is failing for c in failed.calls)
    assert failed.calls[0]["will_retry"] is transient
    if transient:
        # Still retrying its first alert: the other notifier got everything regardless.
        assert not alerting.flush(0.05)
        assert alerting.shutdown(0.2) is False  # the failing one's alerts are reported lost
    else:
        assert alerting.flush(10)
        assert failing.attempts == len(titles)
        assert alerting.stats()["notifiers"]["failing"]["failed"] == len(titles)
    assert [a.title for a in memory.alerts] == titles


def test_blocked_notifier_does_not_delay_others(
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    memory: MemoryNotifier,
    recorder: Callable[[Signal], Recorder],
) -> None:
    blocker = BlockingNotifier()
    sent = recorder(alert_sent)
    alerting = make_alerting(app, notifiers=[blocker, memory], throttle_seconds=0)
    titles = [f"Disk {i} nearly full" for i in range(5)]
    try:
        for title in titles:
            alerting.alert(title)
        assert blocker.entered.wait(10)
        sent.wait_for(len(titles))
        assert [a.title for a in memory.alerts] == titles
        assert blocker.alerts == []  # still stuck in its first send
        assert not alerting.flush(0.05)
    finally:
        blocker.release.set()
    assert alerting.flush(10)
    assert [a.title for a in blocker.alerts] == titles
