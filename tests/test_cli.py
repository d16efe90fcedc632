"""``flask alerting`` commands, run through Flask's CliRunner against a real SMTP server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_alerting import FlaskAlerting, LogNotifier, MemoryNotifier, Notifier, alert_raised
from flask_alerting.alert import Alert
from flask_alerting.cli import alerting_cli
from flask_alerting.config import KEYS
from flask_alerting.metrics.rules import Rule
from flask_alerting.metrics.sampler import Sampler
from tests.conftest import FakeClock
from tests.smtp_server import PASSWORD, USERNAME, SMTPServer, free_port

ROOT = Path(__file__).resolve().parent.parent


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
        line.startswith(
            f"FAILED  smtp smtp://127.0.0.1:{server.port}: SMTPAuthenticationError: 535"
        )
        for line in lines
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
    port = app.config["ALERTING_SMTP_PORT"]
    assert f"FAILED  smtp smtp://127.0.0.1:{port}: ConnectionRefusedError" in result.output
    assert "hint" not in result.output  # no known cause: no guess
    assert "Traceback" not in result.output


def test_test_command_fails_when_alerts_would_only_be_logged(
    app: Flask, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    make_alerting(app)  # no ALERTING_SMTP_HOST, no notifiers: the LogNotifier fallback
    result = app.test_cli_runner().invoke(args=["alerting", "test"])
    assert result.exit_code == 1
    assert result.output == (
        "FAILED  nothing would reach a person: no ALERTING_SMTP_HOST and no notifiers, so "
        "alerts are only logged (logger 'flask_alerting.notify')\n"
    )


def test_an_explicit_log_notifier_is_a_choice_not_a_failure(
    app: Flask, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    make_alerting(app, notifiers=[LogNotifier()])
    result = app.test_cli_runner().invoke(args=["alerting", "test"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK      log")


def test_failed_line_hints_at_starttls_when_ssl_meets_a_plain_server(
    app: Flask,
    smtp_factory: Callable[..., SMTPServer],
    make_alerting: Callable[..., FlaskAlerting],
) -> None:
    server = smtp_factory(security="starttls")  # speaks plain SMTP first, as on port 587
    app.config.update(
        ALERTING_SMTP_HOST=server.host,
        ALERTING_SMTP_PORT=server.port,
        ALERTING_SMTP_SECURITY="ssl",  # the default: implicit TLS, as on port 465
        ALERTING_MAIL_SENDER="alerts@example.com",
        ALERTING_MAIL_RECIPIENTS="admin@example.com",
    )
    make_alerting(app)
    result = app.test_cli_runner().invoke(args=["alerting", "test"])
    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if line.startswith("FAILED")]
    assert line.startswith(f"FAILED  smtp smtp://127.0.0.1:{server.port}: SSLError: ")
    assert "WRONG_VERSION_NUMBER" in line
    assert line.endswith(
        f"(hint: the server on port {server.port} does not start with TLS; port 587/25 "
        "usually means ALERTING_SMTP_SECURITY='starttls'/'none')"
    )


@pytest.mark.parametrize("password", [None, "wrong-" + PASSWORD])
def test_failed_line_says_when_the_password_is_missing(
    app: Flask,
    smtp_factory: Callable[..., SMTPServer],
    ca_file: str,
    make_alerting: Callable[..., FlaskAlerting],
    monkeypatch: pytest.MonkeyPatch,
    password: str | None,
) -> None:
    if password is None:
        monkeypatch.delenv("EMAIL_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("EMAIL_PASSWORD", password)
    server = smtp_factory(security="starttls", auth=True)
    app.config.update(
        ALERTING_SMTP_HOST=server.host,
        ALERTING_SMTP_PORT=server.port,
        ALERTING_SMTP_SECURITY="starttls",
        ALERTING_SMTP_CA_FILE=ca_file,
        ALERTING_SMTP_USERNAME=USERNAME,
        ALERTING_MAIL_SENDER="alerts@example.com",
        ALERTING_MAIL_RECIPIENTS="admin@example.com",
    )
    make_alerting(app)
    result = app.test_cli_runner().invoke(args=["alerting", "test"])
    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if line.startswith("FAILED")]
    assert line.startswith(
        f"FAILED  smtp smtp://127.0.0.1:{server.port}: SMTPAuthenticationError: 535"
    )
    hint = (
        "(hint: EMAIL_PASSWORD is not set (nor ALERTING_SMTP_PASSWORD), so the login was "
        "tried without a password)"
    )
    if password is None:
        assert line.endswith(hint)
    else:  # a wrong password: no such hint
        assert "hint" not in line


def test_commands_explain_a_missing_init_app() -> None:
    result = Flask("bare").test_cli_runner().invoke(alerting_cli, ["test"])
    assert result.exit_code != 0
    assert "not initialised" in result.output and "init_app" in result.output


# -- flask alerting status -----------------------------------------------------------------


def _starttls_config(server: SMTPServer, ca_file: str) -> dict[str, Any]:
    return {
        "ALERTING_SMTP_HOST": server.host,
        "ALERTING_SMTP_PORT": server.port,
        "ALERTING_SMTP_SECURITY": "starttls",
        "ALERTING_SMTP_CA_FILE": ca_file,
        "ALERTING_SMTP_USERNAME": USERNAME,
        "ALERTING_MAIL_SENDER": "alerts@example.com",
        "ALERTING_MAIL_RECIPIENTS": "admin@example.com, oncall@example.com",
    }


def test_status_shows_the_configuration_and_notifiers_without_the_password(
    app: Flask,
    smtp_factory: Callable[..., SMTPServer],
    ca_file: str,
    make_alerting: Callable[..., FlaskAlerting],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = smtp_factory(security="starttls", auth=True)
    monkeypatch.setenv("EMAIL_PASSWORD", PASSWORD)  # the seed's variable
    app.config.update(_starttls_config(server, ca_file), ALERTING_THROTTLE_SECONDS=60)
    alerting = make_alerting(app, notifiers=[MemoryNotifier()])
    # The password works: the same configuration delivers through the real server.
    assert app.test_cli_runner().invoke(args=["alerting", "test"]).exit_code == 0
    assert server.logins == [USERNAME]

    result = app.test_cli_runner().invoke(args=["alerting", "status"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert PASSWORD not in out and "Traceback" not in out
    lines = out.splitlines()
    assert lines[0].startswith("flask-alerting ") and "for app 'testapp'" in lines[0]
    config = {
        line.split()[0]: line.split(None, 1)[1] for line in lines if line.startswith("  ALERTING_")
    }
    assert config["ALERTING_SMTP_PASSWORD"] == "***"
    assert config["ALERTING_SMTP_HOST"] == "127.0.0.1"
    assert config["ALERTING_SMTP_PORT"] == str(server.port)
    assert config["ALERTING_MAIL_RECIPIENTS"] == "admin@example.com, oncall@example.com"
    assert config["ALERTING_THROTTLE_SECONDS"] == "60"
    assert config["ALERTING_METRICS_ENABLED"] == "False"
    assert set(config) == {key.name for key in KEYS.values()}
    assert (
        f"  smtp    starttls://{USERNAME}@127.0.0.1:{server.port} from alerts@example.com "
        "to admin@example.com, oncall@example.com"
    ) in lines
    assert "  memory  memory" in lines
    assert alerting.flush(5)


class Leaky(Notifier):
    """A user's notifier whose description carries a secret (it should not)."""

    name = "leaky"

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def send(self, alert: Alert) -> None:
        pass

    def describe(self) -> str:
        return f"https://hooks.example.com/?password={self.secret}"


def test_status_masks_the_password_wherever_it_would_appear(
    app: Flask, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    planted = "Planted-Pa55word-zz9"
    app.config.update(
        ALERTING_SMTP_HOST="127.0.0.1",
        ALERTING_SMTP_PORT=free_port(),
        ALERTING_SMTP_SECURITY="none",
        ALERTING_SMTP_USERNAME="alerts@example.com",
        ALERTING_SMTP_PASSWORD=planted,
        ALERTING_MAIL_SENDER="alerts@example.com",
        ALERTING_MAIL_RECIPIENTS="admin@example.com",
    )
    make_alerting(app, notifiers=[Leaky(planted)])
    result = app.test_cli_runner().invoke(args=["alerting", "status"])
    assert result.exit_code == 0, result.output
    assert planted not in result.output
    assert "  leaky  https://hooks.example.com/?password=***" in result.output.splitlines()
    result = app.test_cli_runner().invoke(args=["alerting", "test"])
    assert result.exit_code == 1  # nothing listens on the SMTP port
    assert planted not in result.output
    assert "OK      leaky: https://hooks.example.com/?password=***" in result.output


def test_status_does_not_mangle_text_around_a_short_password(
    app: Flask, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    app.config.update(
        ALERTING_SMTP_HOST="smtp.example.com",
        ALERTING_SMTP_USERNAME="alerts@example.com",
        ALERTING_SMTP_PASSWORD="x",
        ALERTING_MAIL_SENDER="alerts@example.com",
        ALERTING_MAIL_RECIPIENTS="admin@example.com",
    )
    make_alerting(app)
    result = app.test_cli_runner().invoke(args=["alerting", "status"])
    assert result.exit_code == 0, result.output
    assert "  smtp  ssl://alerts@example.com@smtp.example.com:465 from alerts@example.com" in (
        result.output
    )
    assert "  ALERTING_SMTP_PASSWORD           ***" in result.output.splitlines()


def test_status_shows_rules_pipeline_and_timings(
    app: Flask,
    smtp_server: SMTPServer,
    smtp_config: dict[str, Any],
    make_alerting: Callable[..., FlaskAlerting],
    tmp_path: Path,
) -> None:
    app.config.update(
        smtp_config,
        ALERTING_METRICS_ENABLED=True,
        ALERTING_METRICS_INTERVAL=0.05,
        ALERTING_METRICS_FOR=0,
        ALERTING_CPU_THRESHOLD=None,
        ALERTING_MEMORY_THRESHOLD=100,  # never above: stays "ok"
        ALERTING_METRICS_LOCK_FILE=str(tmp_path / "metrics.lock"),
    )
    alerting = make_alerting(app)
    alerting.add_rule("queue-depth", lambda: 150.0, threshold=100, hysteresis=10)
    fired = threading.Event()

    def on_raised(sender: Flask, alert: Alert) -> None:
        if alert.kind == "metric":
            fired.set()

    with alert_raised.connected_to(on_raised, app):
        assert fired.wait(10), "the sampler raised no metric alert"

    @alerting.timed(name="load-model", threshold=60)
    def load_model() -> int:
        return 1

    with app.app_context():
        for _ in range(3):
            load_model()
        for _ in range(5):  # one e-mail now, four counted for the digest
            alerting.alert("Disk nearly full", fingerprint="disk")
    assert alerting.flush(5)
    smtp_server.wait_for(2)  # the metric alert and the first "Disk nearly full"

    result = app.test_cli_runner().invoke(args=["alerting", "status"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    lock = re.escape(str(tmp_path / "metrics.lock"))
    assert [
        line
        for line in lines
        if re.fullmatch(
            rf"Metric rules: sampled every 0\.05 s by this process \(pid {os.getpid()}\), "
            rf"last sample (just now|\d+ s ago) \(lock {lock}, held\)",
            line,
        )
    ], result.output
    rows = {
        line.split()[0]: line.split()
        for line in lines
        if line.startswith(("  memory ", "  queue-depth "))
    }
    assert rows["queue-depth"][:5] == ["queue-depth", "firing", "150", "100", "90"]
    assert rows["memory"][1] == "ok" and rows["memory"][4:6] == ["100", "%"]
    assert "  raised 6, suppressed 4, digests 0, folded 0, dropped 0" in lines
    assert "  throttle windows holding a digest: 1 (ALERTING_THROTTLE_SECONDS 300)" in lines
    assert "    disk         4" in lines  # fingerprint -> alerts counted for its digest
    assert ["smtp", "0", "2", "0"] in [line.split() for line in lines]
    [timing] = [line for line in lines if line.startswith("  load-model")]
    assert timing.split()[1:3] == ["3", "0"]


def test_status_without_sampling_says_so(
    app: Flask, make_alerting: Callable[..., FlaskAlerting], tmp_path: Path
) -> None:
    app.config["ALERTING_METRICS_LOCK_FILE"] = str(tmp_path / "metrics.lock")
    make_alerting(app, notifiers=[MemoryNotifier()])
    result = app.test_cli_runner().invoke(args=["alerting", "status"])
    assert result.exit_code == 0, result.output
    assert "(ALERTING_METRICS_ENABLED is false)" in result.output
    assert "never sampled" in result.output
    assert "Traceback" not in result.output


def test_status_says_who_samples_and_when_the_states_are_not_current(
    app: Flask, make_alerting: Callable[..., FlaskAlerting], tmp_path: Path, clock: FakeClock
) -> None:
    lock = tmp_path / "metrics.lock"
    app.config.update(
        ALERTING_METRICS_ENABLED=True,
        ALERTING_METRICS_INTERVAL=3600,  # its thread never samples: the test ticks it
        ALERTING_METRICS_LOCK_FILE=str(lock),
        ALERTING_CPU_THRESHOLD=None,
        ALERTING_MEMORY_THRESHOLD=None,
    )
    alerting = make_alerting(app, notifiers=[MemoryNotifier()], clock=clock)
    alerting.add_rule("queue-depth", lambda: 0.0, threshold=100)
    alerting.add_rule("jobs", lambda: 0.0, threshold=10)
    # The sampling process (a worker: an open file of its own on the lock), its "jobs"
    # rule configured with another threshold.
    worker = Sampler(
        name="testapp",
        rules=[
            Rule(name="queue-depth", probe=lambda: 150.0, threshold=100.0),
            Rule(name="jobs", probe=lambda: 3.0, threshold=20.0),
        ],
        submit=lambda alert: None,
        labels={"app": "testapp", "host": "h"},
        interval=5.0,
        lock_path=str(lock),
        clock=clock,
    )
    runner = app.test_cli_runner()

    def status() -> tuple[str, dict[str, list[str]]]:
        result = runner.invoke(args=["alerting", "status"])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        [header] = [line for line in lines if line.startswith("Metric rules: ")]
        rows = {
            line.split()[0]: line.split()
            for line in lines
            if line.startswith(("  queue-depth ", "  jobs "))
        }
        return header, rows

    try:
        header, rows = status()
        assert header == (
            f"Metric rules: no sample recorded (lock {lock}, free): no process of this host "
            "samples app 'testapp'"
        )
        assert rows["queue-depth"][1:3] == ["unknown", "-"]
        assert rows["queue-depth"][-2:] == ["never", "sampled"]

        assert worker.tick()
        assert not alerting._get_state(app).sampler.tick()  # this process stands by
        clock.advance(3.0)
        header, rows = status()
        assert header == (
            f"Metric rules: sampled every 5 s by pid {os.getpid()}, last sample 3 s ago "
            f"(lock {lock}, held); this process stands by"
        )
        assert rows["queue-depth"][:5] == ["queue-depth", "firing", "150", "100", "95"]
        # another threshold there: what it records is no state of this rule
        assert rows["jobs"][1:3] == ["unknown", "-"]
        assert " ".join(rows["jobs"][8:]) == "the sampling process's rule is > 20, not > 10"

        clock.advance(60.0)  # no sample since
        header, rows = status()
        assert header == (
            f"Metric rules: last sampled 1 min 3 s ago by pid {os.getpid()}, which has not "
            "sampled since (every 5 s expected): states below are not current "
            f"(lock {lock}, held); this process stands by"
        )
        assert rows["queue-depth"][1:3] == ["unknown", "-"]
        assert " ".join(rows["queue-depth"][8:]) == "last sample: firing, 150"
    finally:
        worker.stop()
    header, _ = status()
    assert header.startswith(
        f"Metric rules: last sampled 1 min 3 s ago by pid {os.getpid()}, which released the lock: "
    )


# -- flask alerting check ------------------------------------------------------------------


def _check(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["alerting", "check", "--window", "0.05", *args])


def test_check_exits_0_when_no_rule_breaches(
    app: Flask,
    smtp_server: SMTPServer,
    smtp_config: dict[str, Any],
    make_alerting: Callable[..., FlaskAlerting],
) -> None:
    app.config.update(smtp_config, ALERTING_CPU_THRESHOLD=100, ALERTING_MEMORY_THRESHOLD=100)
    alerting = make_alerting(app)
    alerting.add_rule("queue-depth", lambda: 12.0, threshold=100)
    result = _check(app)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["RULE", "VALUE", "THRESHOLD", "RESULT"]
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert rows["cpu"][3:] == ["100", "%", "ok"]
    assert rows["memory"][3:] == ["100", "%", "ok"]
    assert 0 < float(rows["memory"][1]) <= 100
    assert rows["queue-depth"] == ["queue-depth", "12", "100", "ok"]
    assert lines[-1] == "all 3 rule(s) below their threshold"
    assert alerting.flush(5) and smtp_server.raw == []


def test_check_exits_1_when_a_rule_breaches_and_changes_nothing(
    app: Flask,
    smtp_server: SMTPServer,
    smtp_config: dict[str, Any],
    make_alerting: Callable[..., FlaskAlerting],
) -> None:
    app.config.update(smtp_config, ALERTING_CPU_THRESHOLD=None, ALERTING_MEMORY_THRESHOLD=0)
    alerting = make_alerting(app)
    result = _check(app)
    assert result.exit_code == 1, result.output
    [row] = [line for line in result.output.splitlines() if line.startswith("memory")]
    assert row.split()[3:] == ["0", "%", "ABOVE"]
    assert "1 of 1 rule(s) above the threshold" in result.output
    # A check samples without moving the rule's state or sending anything.
    assert [(r.name, r.state) for r in alerting.rule_states(app)] == [("memory", "unknown")]
    assert alerting.flush(5) and smtp_server.raw == []


def _broken() -> float:
    raise ConnectionError("redis at 127.0.0.1:6379 refused the connection")


def test_check_exits_1_when_a_probe_fails(
    app: Flask, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    app.config.update(ALERTING_CPU_THRESHOLD=None, ALERTING_MEMORY_THRESHOLD=None)
    alerting = make_alerting(app, notifiers=[MemoryNotifier()])
    alerting.add_rule("queue-depth", _broken, threshold=100)
    alerting.add_rule("workers", lambda: 1.0, threshold=2)
    result = _check(app)
    # Unhealthy: the value is unknown. (2 is reserved by container health checks.)
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[1:] == [
        "queue-depth  -      100        ERROR  ConnectionError: redis at 127.0.0.1:6379 "
        "refused the connection",
        "workers      1      2          ok",
        "1 of 2 probe(s) failed",
    ]
    assert "Traceback" not in result.output


def test_check_a_breach_wins_over_a_failed_probe(
    app: Flask, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    app.config.update(ALERTING_CPU_THRESHOLD=None, ALERTING_MEMORY_THRESHOLD=None)
    alerting = make_alerting(app, notifiers=[MemoryNotifier()])
    alerting.add_rule("queue-depth", _broken, threshold=100)
    alerting.add_rule("workers", lambda: 3.0, threshold=2)
    result = _check(app)
    assert result.exit_code == 1, result.output
    assert "workers      3      2          ABOVE" in result.output.splitlines()


def test_check_without_rules(app: Flask, make_alerting: Callable[..., FlaskAlerting]) -> None:
    app.config.update(ALERTING_CPU_THRESHOLD=None, ALERTING_MEMORY_THRESHOLD=None)
    make_alerting(app, notifiers=[MemoryNotifier()])
    result = _check(app)
    assert result.exit_code == 0
    assert "no metric rules" in result.output


# -- the real ``flask`` command (the flask.commands entry point) --------------------------


def _flask(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the ``flask`` script of this environment, without the caller's FLASK_* vars."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith("FLASK_") and k != "EMAIL_PASSWORD"
    }
    script = Path(sys.executable).with_name("flask")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "flask"]
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_entry_point_registers_the_commands(tmp_path: Path) -> None:
    # No app at all: the group can only come from the flask.commands entry point.
    result = _flask(["--help"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "alerting  Check and test flask-alerting." in result.stdout
    (tmp_path / "bare.py").write_text("from flask import Flask\napp = Flask('bare')\n")
    result = _flask(["--app", "bare", "alerting", "status"], cwd=tmp_path)
    assert result.returncode == 1
    assert "flask-alerting is not initialised on app 'bare'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


_BAD_APP = """
from flask import Flask
from flask_alerting import FlaskAlerting

app = Flask("shop")
app.config.update(
    ALERTING_SMTP_HOST="smtp.example.com",
    ALERTING_MAIL_SENDER="alerts@example.com",
    ALERTING_MAIL_RECIPIENTS="admin@example.com; ops@example.com ops",
)
FlaskAlerting(app)
"""

_BAD_FACTORY = """
from flask import Flask
from flask_alerting import FlaskAlerting

alerting = FlaskAlerting()


def create_app():
    app = Flask("shop")
    app.config["ALERTING_SMTP_PORT"] = 99999
    alerting.init_app(app)
    return app
"""


@pytest.mark.parametrize("command", ["test", "status", "check"])
@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            _BAD_APP,
            "Error: flask-alerting configuration: ALERTING_MAIL_RECIPIENTS: expected e-mail "
            "addresses like admin@example.com ('ops' is not an e-mail address), got "
            "'admin@example.com; ops@example.com ops'",
        ),
        (
            _BAD_FACTORY,
            "Error: flask-alerting configuration: ALERTING_SMTP_PORT: expected a TCP port "
            "between 1 and 65535, got 99999",
        ),
    ],
    ids=["at-import", "in-the-factory"],
)
def test_a_configuration_error_is_one_line_and_exit_status_2(
    tmp_path: Path, command: str, source: str, message: str
) -> None:
    (tmp_path / "shop.py").write_text(source)
    result = _flask(["--app", "shop", "alerting", command], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == message + "\n"


def test_status_and_test_of_the_example_app_through_the_flask_command(
    smtp_factory: Callable[..., SMTPServer], ca_file: str, tmp_path: Path
) -> None:
    server = smtp_factory(security="starttls", auth=True)
    env = {
        # The example app reads its configuration from the environment, as in production.
        "FLASK_ALERTING_SMTP_HOST": "127.0.0.1",
        "FLASK_ALERTING_SMTP_PORT": str(server.port),
        "FLASK_ALERTING_SMTP_SECURITY": "starttls",
        "FLASK_ALERTING_SMTP_CA_FILE": ca_file,
        "FLASK_ALERTING_SMTP_USERNAME": USERNAME,
        "FLASK_ALERTING_MAIL_SENDER": "alerts@example.com",
        "FLASK_ALERTING_MAIL_RECIPIENTS": "admin@example.com",
        "FLASK_ALERTING_METRICS_LOCK_FILE": str(tmp_path / "metrics.lock"),
        "EMAIL_PASSWORD": PASSWORD,
    }
    app = str(ROOT / "examples" / "prediction_app")

    status = _flask(["--app", app, "alerting", "status"], cwd=tmp_path, **env)
    assert status.returncode == 0, status.stderr
    assert PASSWORD not in status.stdout + status.stderr
    lines = status.stdout.splitlines()
    assert "for app 'prediction_app'" in lines[0]
    assert (
        f"  smtp  starttls://{USERNAME}@127.0.0.1:{server.port} from alerts@example.com "
        "to admin@example.com"
    ) in lines
    assert "  ALERTING_SMTP_PASSWORD           ***" in lines
    assert any(line.split()[:2] == ["prediction_from_model", "0"] for line in lines[-3:])

    test = _flask(["--app", app, "alerting", "test"], cwd=tmp_path, **env)
    assert test.returncode == 0, test.stdout + test.stderr
    assert test.stdout.startswith("OK      smtp: starttls://")
    assert PASSWORD not in test.stdout + test.stderr
    message = server.wait_for(1)[0]
    assert message["Subject"] == "[prediction_app] Test alert from flask-alerting"
    assert server.logins == [USERNAME]  # EMAIL_PASSWORD from the environment, as the seed


def test_the_cli_page_shows_the_real_headings(
    app: Flask, make_alerting: Callable[..., FlaskAlerting], tmp_path: Path
) -> None:
    documented = {
        tuple(line.split())
        for line in (ROOT / "docs" / "cli.rst").read_text(encoding="utf-8").splitlines()
    }
    app.config["ALERTING_METRICS_LOCK_FILE"] = str(tmp_path / "metrics.lock")
    alerting = make_alerting(app, notifiers=[MemoryNotifier()])
    alerting.timed(lambda: None)()  # so that the timing table is printed
    runner = app.test_cli_runner()
    status = runner.invoke(args=["alerting", "status"])
    check = runner.invoke(args=["alerting", "check", "--window", "0"])
    shown = 0
    for line in (status.output + check.output).splitlines():
        tokens = tuple(line.split())
        heading = line.endswith(":") and not line.startswith(" ")
        if heading or tokens[:1] in {("RULE",), ("NOTIFIER",), ("NAME",)}:
            assert tokens in documented, line
            shown += 1
    assert shown == 8
