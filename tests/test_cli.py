"""``flask alerting`` commands, run through Flask's CliRunner against a real SMTP server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from flask_alerting import FlaskAlerting, MemoryNotifier, Notifier
from flask_alerting.alert import Alert
from flask_alerting.cli import alerting_cli
from tests.smtp_server import PASSWORD, USERNAME, SMTPServer, free_port


class Broken(Notifier):
    name = "broken"

    def send(self, alert: Alert) -> None:
        raise RuntimeError("webhook answered 403")


def test_test_command_delivers_through_every_notifier(
    app: Flask,
    smtp_server: SMTPServer,
    smtp_config: dict[str, Any],
    make_alerting: Callable[..., FlaskAlerting],
) -> None:
    memory = MemoryNotifier()
    app.config.update(smtp_config)
    make_alerting(app, notifiers=[memory])
    result = app.test_cli_runner().invoke(args=["alerting", "test"])
    assert result.exit_code == 0, result.output
    assert "OK      smtp" in result.output and "OK      memory" in result.output
    # Synchronous: delivered before the command returned, no flush needed.
    message = smtp_server.wait_for(1, timeout=0.1)[0]
    assert "Test alert from flask-alerting" in message["Subject"]
    assert [a.title for a in memory.alerts] == ["Test alert from flask-alerting"]


def test_test_command_reports_each_failure_without_secrets(
    app: Flask,
    smtp_factory: Callable[..., SMTPServer],
    client_context: Any,
    ca_file: str,
    make_alerting: Callable[..., FlaskAlerting],
) -> None:
    server = smtp_factory(security="starttls", auth=True)
    wrong = "wrong-" + PASSWORD
    app.config.update(
        ALERTING_SMTP_HOST=server.host,
        ALERTING_SMTP_PORT=server.port,
        ALERTING_SMTP_SECURITY="starttls",
        ALERTING_SMTP_CA_FILE=ca_file,
        ALERTING_SMTP_USERNAME=USERNAME,
        ALERTING_SMTP_PASSWORD=wrong,
        ALERTING_MAIL_SENDER="alerts@example.com",
        ALERTING_MAIL_RECIPIENTS="admin@example.com",
    )
    memory = MemoryNotifier()
    make_alerting(app, notifiers=[Broken(), memory])
    result = app.test_cli_runner().invoke(args=["alerting", "test"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(
        line.startswith("FAILED  smtp: SMTPAuthenticationError: 535") for line in lines
    ), result.output
    assert "FAILED  broken: RuntimeError: webhook answered 403" in lines
    assert "OK      memory: memory" in lines
    assert "2 of 3 notifier(s) failed" in result.output
    assert wrong not in result.output and PASSWORD not in result.output
    assert "Traceback" not in result.output
    assert server.raw == []


def test_test_command_when_the_server_is_down(
    app: Flask, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    app.config.update(
        ALERTING_SMTP_HOST="127.0.0.1",
        ALERTING_SMTP_PORT=free_port(),
        ALERTING_SMTP_SECURITY="none",
        ALERTING_SMTP_TIMEOUT=5,
        ALERTING_MAIL_SENDER="alerts@example.com",
        ALERTING_MAIL_RECIPIENTS="admin@example.com",
    )
    make_alerting(app)
    result = app.test_cli_runner().invoke(args=["alerting", "test"])
    assert result.exit_code == 1
    assert "FAILED  smtp: ConnectionRefusedError" in result.output
    assert "Traceback" not in result.output


def test_commands_explain_a_missing_init_app() -> None:
    result = Flask("bare").test_cli_runner().invoke(alerting_cli, ["test"])
    assert result.exit_code != 0
    assert "not initialised" in result.output and "init_app" in result.output
