"""WebhookNotifier against a real HTTP server on 127.0.0.1 (tests/servers.py).

Retries go through the delivery worker with an injected clock and wait: backoff and
Retry-After are recorded, never slept.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from flask import Flask

from flask_alerting import (
    Alert,
    FlaskAlerting,
    RetryPolicy,
    TransientError,
    WebhookNotifier,
    alert_failed,
    alert_sent,
)
from flask_alerting._urls import mask_scheme_only, mask_secrets, mask_url, split_urls
from flask_alerting.delivery import NotifierWorker
from flask_alerting.notifiers._http import retry_after_seconds
from flask_alerting.notifiers.webhook import alert_json, slack_text
from tests.conftest import FakeClock
from tests.servers import HTTPRecorder, Reply, free_port

TOKEN = "xoxb-T0KEN-8f3a9c"
SECRET_PATH = "/services/T0AAA/B0BBB/Zq9sEcReTpAtH"

DOCUMENTED_FIELDS = {
    "title",
    "message",
    "severity",
    "kind",
    "status",
    "labels",
    "fingerprint",
    "occurrences",
    "value",
    "threshold",
    "timestamp",
    "first_seen",
    "last_seen",
    "dropped",
    "pid",
}


def alert(title: str = "Disk nearly full", **kwargs: Any) -> Alert:
    kwargs.setdefault("labels", {"app": "shop", "host": "web-1"})
    return Alert(title=title, **kwargs)


@pytest.fixture
def sender() -> Flask:
    app = Flask("webhook-test")
    app.config["ALERTING_METRICS_ENABLED"] = False
    return app


@pytest.fixture
def make_worker(
    sender: Flask, clock: FakeClock
) -> Iterator[Callable[..., tuple[NotifierWorker, list[float]]]]:
    """A delivery worker whose waits advance the FakeClock and are recorded."""
    made: list[NotifierWorker] = []

    def make(notifier: WebhookNotifier, **retry: Any) -> tuple[NotifierWorker, list[float]]:
        waits: list[float] = []

        def wait(seconds: float) -> None:
            waits.append(seconds)
            clock.advance(seconds)

        worker = NotifierWorker(
            notifier,
            sender=sender,
            queue_size=10,
            retry=RetryPolicy(**retry),
            clock=clock,
            wait=wait,
            thread_name="flask-alerting-test-webhook",
        )
        made.append(worker)
        return worker, waits

    yield make
    for worker in made:
        worker.stop(5.0)


@pytest.fixture
def signals(sender: Flask) -> Iterator[dict[str, list[dict[str, Any]]]]:
    seen: dict[str, list[dict[str, Any]]] = {"sent": [], "failed": []}
    with alert_sent.connected_to(lambda s, **kw: seen["sent"].append(kw), sender):
        with alert_failed.connected_to(lambda s, **kw: seen["failed"].append(kw), sender):
            yield seen


# -- formats --------------------------------------------------------------------------------


def test_json_format_posts_the_documented_fields(
    app: Flask, http_recorder: HTTPRecorder, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    app.config["ALERTING_WEBHOOK_URL"] = f"{http_recorder.url}/alerts?token={TOKEN}"
    alerting = make_alerting(app)
    with app.app_context():
        alerting.alert(
            "Queue stuck",
            "No job finished for 10 minutes.",
            severity="critical",
            labels={"queue": "emails"},
            value=812,
            threshold=100,
        )
        assert alerting.flush(10)
    [request] = http_recorder.requests
    assert request.method == "POST"
    assert request.path == f"/alerts?token={TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("flask-alerting/")
    body = request.json()
    assert set(body) == DOCUMENTED_FIELDS
    assert body["title"] == "Queue stuck"
    assert body["message"] == "No job finished for 10 minutes."
    assert (body["severity"], body["kind"], body["status"]) == ("critical", "custom", "firing")
    assert body["labels"]["queue"] == "emails" and body["labels"]["app"] == "testapp"
    assert "host" in body["labels"]
    assert body["occurrences"] == 1 and body["dropped"] == 0
    assert body["pid"] == os.getpid()  # alert() was called in this process
    assert (body["value"], body["threshold"]) == (812.0, 100.0)
    assert body["fingerprint"] and body["first_seen"] is None and body["last_seen"] is None
    stamp = datetime.fromisoformat(body["timestamp"])
    assert stamp.tzinfo is not None and stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - stamp) < timedelta(seconds=30)


def test_json_of_a_digest_has_its_count_and_time_range() -> None:
    first = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    body = alert_json(
        alert(
            occurrences=7,
            first_seen=first,
            last_seen=first + timedelta(minutes=4),
            details={"digest": {}},
        )
    )
    assert body["occurrences"] == 7
    assert body["first_seen"] == "2024-05-01T12:00:00+00:00"
    assert body["last_seen"] == "2024-05-01T12:04:00+00:00"
    json.dumps(body)  # JSON as it is


def test_message_size_is_bounded() -> None:
    huge = "x" * 100_000
    body = alert_json(alert(message=huge), max_length=4000)
    assert len(body["message"]) <= 4000
    assert body["message"].endswith("[100000 characters, cut]")
    text = slack_text(alert(message=huge), max_length=4000)
    assert len(text) <= 4000 and text.endswith("characters, cut]\n```")
    assert len(WebhookNotifier("http://h/x").payload(alert(message=huge))["message"]) <= 4000


def test_slack_format_is_one_text_message(
    app: Flask, http_recorder: HTTPRecorder, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    app.config.update(
        ALERTING_WEBHOOK_URL=f"{http_recorder.url}{SECRET_PATH}",
        ALERTING_WEBHOOK_FORMAT="slack",
    )
    alerting = make_alerting(app)
    with app.app_context():
        alerting.alert("Payment <!channel> failed @here & retried", severity="error")
        assert alerting.flush(10)
    [request] = http_recorder.requests
    assert request.path == SECRET_PATH
    body = request.json()
    assert list(body) == ["text"]
    head, _, rest = body["text"].partition("\n")
    # An icon per severity, the subject in bold; mentions and links are defused.
    assert head == (
        ":x: *[testapp] Payment &lt;!channel&gt; failed @\u200bhere &amp; retried*"
    )
    assert rest.startswith("```\n") and rest.endswith("\n```")
    assert "Severity: error" in rest and "<!channel>" not in rest


def test_slack_icons_follow_severity_and_resolution() -> None:
    assert slack_text(alert(severity="info")).startswith(":information_source: *")
    assert slack_text(alert(severity="warning")).startswith(":warning: *")
    assert slack_text(alert(severity="critical")).startswith(":rotating_light: *")
    resolved = slack_text(alert(severity="critical", status="resolved"))
    assert resolved.startswith(":white_check_mark: *[shop] RESOLVED: Disk nearly full*")


def test_extra_headers_are_sent(http_recorder: HTTPRecorder) -> None:
    notifier = WebhookNotifier(
        f"{http_recorder.url}/in", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    notifier.send(alert())
    assert http_recorder.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_user_info_becomes_basic_auth(http_recorder: HTTPRecorder) -> None:
    WebhookNotifier(f"http://hook:{TOKEN}@127.0.0.1:{http_recorder.port}/in").send(alert())
    [request] = http_recorder.requests
    assert request.path == "/in"
    assert request.headers["Authorization"] == "Basic aG9vazp4b3hiLVQwS0VOLThmM2E5Yw=="


# -- retries through the worker ---------------------------------------------------------------


def test_503_then_200_is_retried_and_delivered_once(
    http_recorder: HTTPRecorder,
    make_worker: Callable[..., tuple[NotifierWorker, list[float]]],
    signals: dict[str, list[dict[str, Any]]],
) -> None:
    http_recorder.reply(Reply(503, body=b"maintenance"))
    worker, waits = make_worker(WebhookNotifier(f"{http_recorder.url}/hook"))
    assert worker.put(alert("Cart service down"))
    assert worker.wait_idle(10)
    assert [r.json()["title"] for r in http_recorder.requests] == ["Cart service down"] * 2
    assert waits == [1.0]  # the policy's first backoff
    assert worker.sent == 1 and worker.failed == 0
    assert len(signals["sent"]) == 1
    [failed] = signals["failed"]
    assert failed["will_retry"] and "HTTP 503" in str(failed["exception"])


def test_429_retry_after_is_honoured(
    http_recorder: HTTPRecorder,
    make_worker: Callable[..., tuple[NotifierWorker, list[float]]],
    clock: FakeClock,
) -> None:
    http_recorder.reply(
        Reply(429, {"Retry-After": "30"}),
        Reply(429, {"Retry-After": "0"}),  # asks for less than the backoff: backoff wins
    )
    worker, waits = make_worker(WebhookNotifier(f"{http_recorder.url}/hook"))
    start = clock()
    assert worker.put(alert())
    assert worker.wait_idle(10)
    assert waits == [30.0, 2.0]
    assert clock() - start == 32.0
    assert len(http_recorder.requests) == 3 and worker.sent == 1


def test_retry_after_beyond_the_retry_period_gives_up_now(
    http_recorder: HTTPRecorder,
    make_worker: Callable[..., tuple[NotifierWorker, list[float]]],
    signals: dict[str, list[dict[str, Any]]],
) -> None:
    http_recorder.reply(Reply(503, {"Retry-After": "7200"}))
    worker, waits = make_worker(WebhookNotifier(f"{http_recorder.url}/hook"), give_up_after=3600)
    assert worker.put(alert())
    assert worker.wait_idle(10)
    assert waits == [] and worker.failed == 1
    assert signals["failed"][0]["will_retry"] is False
    assert len(http_recorder.requests) == 1


def test_400_is_permanent_and_not_retried(
    http_recorder: HTTPRecorder,
    make_worker: Callable[..., tuple[NotifierWorker, list[float]]],
    signals: dict[str, list[dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    http_recorder.reply(Reply(400, body=b'{"error": "invalid_payload"}'))
    notifier = WebhookNotifier(f"{http_recorder.url}{SECRET_PATH}?token={TOKEN}")
    worker, waits = make_worker(notifier)
    with caplog.at_level(logging.WARNING, logger="flask_alerting"):
        assert worker.put(alert())
        assert worker.wait_idle(10)
    assert waits == [] and worker.failed == 1 and worker.sent == 0
    assert len(http_recorder.requests) == 1
    [failed] = signals["failed"]
    assert failed["will_retry"] is False
    assert not notifier.is_transient(failed["exception"])
    # The reason is told, the secrets in the URL never are.
    assert "HTTP 400" in caplog.text and "invalid_payload" in caplog.text
    assert "permanent failure, not retried" in caplog.text
    exception = failed["exception"]
    for text in (caplog.text, str(exception), notifier.describe_error(exception)):
        assert TOKEN not in text and "Zq9sEcReTpAtH" not in text
    assert failed["exception"].__context__ is None and failed["exception"].__cause__ is None


def test_a_server_that_never_answers_times_out_and_is_retried(
    http_recorder: HTTPRecorder,
    make_worker: Callable[..., tuple[NotifierWorker, list[float]]],
    signals: dict[str, list[dict[str, Any]]],
) -> None:
    http_recorder.reply(Reply(hang=True))
    worker, waits = make_worker(WebhookNotifier(f"{http_recorder.url}/hook", timeout=0.3))
    assert worker.put(alert())
    assert worker.wait_idle(10)
    assert waits == [1.0] and worker.sent == 1
    [failed] = signals["failed"]
    assert failed["will_retry"]
    assert "no answer from http://127.0.0.1:" in str(failed["exception"])
    assert "within 0.3 s" in str(failed["exception"])
    assert len(http_recorder.requests) == 2


def test_connection_refused_is_transient() -> None:
    notifier = WebhookNotifier(f"http://127.0.0.1:{free_port()}/hook?token={TOKEN}")
    with pytest.raises(TransientError) as failure:
        notifier.send(alert())
    assert notifier.is_transient(failure.value)
    assert "cannot reach http://127.0.0.1:" in str(failure.value)
    assert TOKEN not in str(failure.value)


def test_a_redirect_is_not_followed(http_recorder: HTTPRecorder) -> None:
    http_recorder.reply(Reply(302, {"Location": "http://127.0.0.1:9/elsewhere"}))
    notifier = WebhookNotifier(f"{http_recorder.url}/old")
    with pytest.raises(Exception, match="HTTP 302 redirect") as failure:
        notifier.send(alert())
    assert not notifier.is_transient(failure.value)
    assert len(http_recorder.requests) == 1


def test_retry_after_values() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == (
        90.0
    )
    assert retry_after_seconds(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("nan") is None


# -- through the extension: secrets stay out of the CLI, logs and signals ----------------------


def test_cli_test_and_status_mask_the_url(
    app: Flask, http_recorder: HTTPRecorder, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    app.config.update(
        ALERTING_WEBHOOK_URL=f"http://hook:pw-{TOKEN}@127.0.0.1:{http_recorder.port}"
        f"{SECRET_PATH}?token={TOKEN}",
        ALERTING_WEBHOOK_FORMAT="slack",
    )
    make_alerting(app)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["alerting", "test"])
    assert result.exit_code == 0, result.output
    masked = f"http://***@127.0.0.1:{http_recorder.port}/***?***"
    assert f"OK      webhook: slack POST to {masked}" in result.output.splitlines()
    assert "Test alert from flask-alerting" in http_recorder.requests[0].json()["text"]

    http_recorder.default = Reply(500, body=f"echoing {SECRET_PATH}".encode())
    failed = runner.invoke(args=["alerting", "test"])
    assert failed.exit_code == 1
    assert f"FAILED  webhook: HTTPTransientError: HTTP 500 Internal Server Error from {masked}" in (
        failed.output
    )

    status = runner.invoke(args=["alerting", "status"])
    assert status.exit_code == 0, status.output
    assert "ALERTING_WEBHOOK_URL" in status.output and masked in status.output
    assert "ALERTING_WEBHOOK_FORMAT" in status.output
    for output in (result.output, failed.output, status.output):
        assert TOKEN not in output and "Zq9sEcReTpAtH" not in output, output


def test_url_masking() -> None:
    assert mask_url("https://hooks.slack.com/services/T0/B0/XyZ") == (
        "https://hooks.slack.com/***"
    )
    assert mask_url("https://u:p@example.com:8443/a?b=c#d") == "https://***@example.com:8443/***?***"
    assert mask_url("http://alertmanager:9093") == "http://alertmanager:9093"
    assert mask_url("http://alertmanager:9093/") == "http://alertmanager:9093/"
    assert mask_url("not a url with s3cret") == "***"
    assert mask_scheme_only("slack://TokenA/TokenB") == "slack://***"
    assert mask_scheme_only("TokenA") == "***"
    text = f"failed: https://hooks.example.com/{TOKEN} and {TOKEN.upper()}"
    assert TOKEN not in mask_secrets(text, [f"https://hooks.example.com/{TOKEN}"])
    assert split_urls("slack://a/b, json://h/x?to=a,b  tgram://c/d") == [
        "slack://a/b",
        "json://h/x?to=a,b",
        "tgram://c/d",
    ]


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="http:// or https://") as bad:
        WebhookNotifier(f"ftp://example.com/{TOKEN}")
    assert TOKEN not in str(bad.value)
    with pytest.raises(ValueError, match="'json' or 'slack'"):
        WebhookNotifier("http://example.com", format="xml")
    with pytest.raises(ValueError, match="timeout"):
        WebhookNotifier("http://example.com", timeout=0)
    with pytest.raises(ValueError, match="line break"):
        WebhookNotifier("http://example.com", headers={"X-Token": "a\r\nInjected: 1"})


def test_real_urllib_proxy_setting_is_kept(
    http_recorder: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notifier uses urllib's defaults, proxies from the environment included (an
    operator's egress proxy): here the 'proxy' is the recorder, which sees the request."""
    monkeypatch.setenv("http_proxy", http_recorder.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    urllib.request.getproxies()  # read from the environment per call
    WebhookNotifier("http://hooks.example.invalid/in").send(alert())
    [request] = http_recorder.requests
    assert request.path == "http://hooks.example.invalid/in"  # a proxy request line
