"""AppriseNotifier through the real Apprise, to a real HTTP server on 127.0.0.1 (Apprise's
``json://`` service POSTs ``{"version", "title", "message", "type", ...}``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_alerting import Alert, AppriseNotifier, ConfigurationError, FlaskAlerting
from flask_alerting.notifiers.apprise import INSTALL_HINT
from tests.servers import HTTPRecorder, Reply

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def alert(title: str = "Disk nearly full", **kwargs: Any) -> Alert:
    return Alert(title=title, labels={"app": "shop", "host": "web-1"}, **kwargs)


def test_the_alert_arrives(
    app: Flask, http_recorder: HTTPRecorder, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    app.config["ALERTING_APPRISE_URLS"] = f"json://127.0.0.1:{http_recorder.port}/hook"
    alerting = make_alerting(app)
    with app.app_context():
        alerting.alert("Queue stuck", "No job finished for 10 minutes.", labels={"q": "mail"})
        assert alerting.flush(20)
    [request] = http_recorder.requests
    assert request.method == "POST" and request.path == "/hook"
    body = request.json()
    assert body["title"] == "[testapp] Queue stuck"
    assert body["message"].startswith("No job finished for 10 minutes.")
    assert "q: mail" in body["message"]
    assert body["type"] == "warning"


@pytest.mark.parametrize(
    ("severity", "status", "expected"),
    [
        ("info", "firing", "info"),
        ("warning", "firing", "warning"),
        ("error", "firing", "failure"),
        ("critical", "firing", "failure"),
        ("critical", "resolved", "success"),
    ],
)
def test_severity_picks_the_notification_type(
    http_recorder: HTTPRecorder, severity: str, status: str, expected: str
) -> None:
    AppriseNotifier(f"json://127.0.0.1:{http_recorder.port}/").send(
        alert(severity=severity, status=status)
    )
    assert http_recorder.requests[0].json()["type"] == expected


def test_a_failed_target_is_retried_alone(http_recorder: HTTPRecorder) -> None:
    port = http_recorder.port
    notifier = AppriseNotifier([f"json://127.0.0.1:{port}/a", f"json://127.0.0.1:{port}/b"])
    http_recorder.reply(Reply(200), Reply(503))
    sent = alert()
    with pytest.raises(Exception) as failure:
        notifier.send(sent)
    assert notifier.is_transient(failure.value)  # Apprise only says "not delivered"
    assert "JSON (json://***)" in str(failure.value) and "1 other(s) notified" in str(
        failure.value
    )
    notifier.send(sent)  # the worker's retry: /b only, /a has it already
    assert [r.path for r in http_recorder.requests] == ["/a", "/b", "/b"]
    notifier.send(alert(title="Next one"))  # a new alert goes everywhere again
    assert [r.path for r in http_recorder.requests][3:] == ["/a", "/b"]


def test_urls_are_split_and_masked(http_recorder: HTTPRecorder) -> None:
    notifier = AppriseNotifier(
        f"tgram://{TOKEN}/12345, json://127.0.0.1:{http_recorder.port}/x?to=a,b"
    )
    assert notifier.describe() == "Apprise: Telegram (tgram://***), JSON (json://***)"
    assert TOKEN not in repr(notifier)


def test_cli_lists_it_masked(
    app: Flask, http_recorder: HTTPRecorder, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    app.config["ALERTING_APPRISE_URLS"] = [
        f"json://user:{TOKEN}@127.0.0.1:{http_recorder.port}/{TOKEN}"
    ]
    make_alerting(app)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["alerting", "test"])
    assert result.exit_code == 0, result.output
    assert "OK      apprise: Apprise: JSON (json://***)" in result.output.splitlines()
    status = runner.invoke(args=["alerting", "status"])
    assert "ALERTING_APPRISE_URLS" in status.output and "json://***" in status.output
    for output in (result.output, status.output):
        assert TOKEN not in output


def test_a_url_apprise_does_not_know_is_a_configuration_error(
    app: Flask, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    app.config["ALERTING_APPRISE_URLS"] = f"nosuchservice://{TOKEN}"
    with pytest.raises(ConfigurationError, match="ALERTING_APPRISE_URLS") as error:
        make_alerting(app)
    assert "nosuchservice://***" in str(error.value) and TOKEN not in str(error.value)
    with pytest.raises(ValueError, match="at least one URL"):
        AppriseNotifier([])


def test_without_apprise_the_name_imports_and_using_it_says_what_to_install(
    tmp_path: Path,
) -> None:
    """Apprise made unimportable (``sys.modules["apprise"] = None``) in a fresh
    interpreter: nothing to uninstall."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["apprise"] = None

        from flask import Flask
        import flask_alerting
        from flask_alerting import AppriseNotifier, FlaskAlerting

        try:
            AppriseNotifier("json://127.0.0.1/hook")
        except ImportError as exc:
            print("notifier:", exc)

        app = Flask("no-apprise")
        app.config["ALERTING_METRICS_ENABLED"] = False
        app.config["ALERTING_APPRISE_URLS"] = "json://127.0.0.1/hook"
        try:
            FlaskAlerting(app)
        except ImportError as exc:
            print("config:", exc)

        # Without Apprise URLs nothing needs it.
        other = Flask("plain")
        other.config["ALERTING_METRICS_ENABLED"] = False
        FlaskAlerting(other).shutdown(1)
        print("plain: ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        f"notifier: AppriseNotifier needs the apprise package: {INSTALL_HINT}",
        "config: ALERTING_APPRISE_URLS is set, but AppriseNotifier needs the apprise "
        f"package: {INSTALL_HINT}",
        "plain: ok",
    ]
    assert INSTALL_HINT == "pip install flask-alerting[apprise]"
