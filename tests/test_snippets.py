"""Every piece of code the docs show (examples/snippets/) runs and does what the docs say.

The docs include these files with ``literalinclude``; here each one is imported from its
path and exercised: against a real SMTP server, a real HTTP server or a real gunicorn on
127.0.0.1 where it talks to one.
"""

from __future__ import annotations

import asyncio
import http.server
import importlib.util
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask

from flask_alerting import Alert, FlaskAlerting, TransientError, alert_sent
from flask_alerting import timing as alerting_timing
from flask_alerting.store import parse_storage_uri
from flask_alerting.testing import record_alerts
from tests.servers import Alertmanager, HTTPRecorder, RedisServer
from tests.smtp_server import PASSWORD, USERNAME, SMTPServer, free_port

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS = ROOT / "examples" / "snippets"
DOCS = ROOT / "docs"

Loader = Callable[[str], ModuleType]


@pytest.fixture
def load() -> Iterator[Loader]:
    """Import ``examples/snippets/<name>.py`` afresh; shut its extension down afterwards."""
    loaded: list[ModuleType] = []

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"snippet_{name}", SNIPPETS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        loaded.append(module)
        return module

    yield load
    for module in loaded:
        extension = getattr(module, "alerting", None)
        if isinstance(extension, FlaskAlerting):
            extension.shutdown(timeout=5)
        sys.modules.pop(module.__name__, None)


def _smtp_env(
    monkeypatch: pytest.MonkeyPatch, server: SMTPServer, ca_file: str, tmp_path: Path
) -> None:
    """Point FLASK_ALERTING_* at ``server`` (STARTTLS, AUTH) as an operator would."""
    for name in [n for n in os.environ if n.startswith("FLASK_")]:
        monkeypatch.delenv(name)
    for name, value in {
        "FLASK_ALERTING_SMTP_HOST": server.host,
        "FLASK_ALERTING_SMTP_PORT": str(server.port),
        "FLASK_ALERTING_SMTP_SECURITY": "starttls",
        "FLASK_ALERTING_SMTP_CA_FILE": ca_file,
        "FLASK_ALERTING_SMTP_USERNAME": USERNAME,
        "FLASK_ALERTING_MAIL_SENDER": "alerts@example.com",
        "FLASK_ALERTING_MAIL_RECIPIENTS": "admin@example.com",
        "FLASK_ALERTING_METRICS_LOCK_FILE": str(tmp_path / "metrics.lock"),
    }.items():
        monkeypatch.setenv(name, value)


# -- docs/quickstart.rst ---------------------------------------------------------------------


def test_quickstart_first_email(
    load: Loader,
    smtp_factory: Callable[..., SMTPServer],
    ca_file: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = smtp_factory(security="starttls", auth=True)
    _smtp_env(monkeypatch, server, ca_file, tmp_path)
    monkeypatch.setenv("EMAIL_PASSWORD", PASSWORD)
    quickstart = load("quickstart")
    app = quickstart.app

    result = app.test_cli_runner().invoke(args=["alerting", "test"])
    assert result.exit_code == 0, result.output
    client = app.test_client()
    assert client.get("/divide?by=4").get_data(as_text=True) == "100 / 4 = 25.0"
    response = client.get("/divide?by=0")
    assert response.status_code == 500
    assert quickstart.alerting.flush(10)
    test_mail, error_mail = server.wait_for(2)
    assert test_mail["Subject"] == "[snippet_quickstart] Test alert from flask-alerting"
    assert error_mail["Subject"] == (
        "[snippet_quickstart] ZeroDivisionError: division by zero in divide"
    )
    body = error_mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert 'return f"100 / {by} = {100 / by}"' in body
    assert "url: http://localhost/divide?by=0" in body
    assert server.logins == [USERNAME, USERNAME]


def test_custom_alerts(load: Loader, app: Flask) -> None:
    snippet = load("custom_alerts")
    snippet.alerting.init_app(app)
    with record_alerts(app) as alerts:
        with app.test_request_context("/checkout", method="POST"):
            assert snippet.checkout("A-17", 20.0) == "Your payment was declined."
        snippet.check_disk(limit=1.0)  # never more than 100 % full: no alert
        snippet.check_disk(limit=0.0)  # outside any request: the single app
    payment, disk = alerts
    assert payment.kind == "error"
    assert payment.labels["exception"] == "snippet_custom_alerts.PaymentError"
    assert payment.details["extra"] == {"order_id": "A-17", "amount": 20.0}
    assert payment.details["request"]["url"] == "http://localhost/checkout"
    assert (disk.kind, disk.title, disk.severity) == ("custom", "Disk nearly full", "warning")
    assert disk.labels["disk"] == "/" and disk.message.endswith("GiB left on /")


# -- docs/errors.rst ---------------------------------------------------------------------------


def test_errors_scrubbing_and_own_error_page(load: Loader) -> None:
    snippet = load("errors")
    app = snippet.app
    with record_alerts(app) as alerts:
        response = app.test_client().post(
            "/pay",
            data={"card_number": "4111111111111111", "password": "hunter2", "amount": "20"},
        )
    assert response.status_code == 500
    assert "Sorry!" in response.get_data(as_text=True)  # the app's own page
    [alert] = alerts
    assert alert.title == (
        "TimeoutError: payment gateway did not answer for card ending 1111 in pay"
    )
    assert alert.details["request"]["form"] == {
        "card_number": "[Filtered]",  # ALERTING_SCRUB_FIELDS
        "password": "[Filtered]",  # built in
        "amount": "20",
    }


def test_logging_handler(load: Loader) -> None:
    snippet = load("logging_handler")
    try:
        app = snippet.app
        with record_alerts(app) as alerts:
            with app.app_context():
                snippet.sync_stock("paris", ["a", "b"])
                snippet.sync_stock("paris", ["c"])
                snippet.sync_stock("lyon", [])
        first, second, failure = alerts
        assert first.title == (
            "shop.stock: stock sync from https://stock.example.com/paris: 2 item(s) rejected"
        )
        assert first.fingerprint == second.fingerprint  # same logger and line
        assert failure.labels["exception"] == "KeyError"
        assert failure.details["log"]["message"] == "stock sync failed"
        assert failure.traceback is not None and "WAREHOUSES[warehouse]" in failure.traceback
    finally:
        logging.getLogger("shop").removeHandler(snippet.handler)


# -- docs/timing.rst ---------------------------------------------------------------------------


def test_timing(load: Loader, monkeypatch: pytest.MonkeyPatch) -> None:
    snippet = load("timing")

    class Ticking:
        """Three seconds pass between two readings: every timed call is slow."""

        now = 0.0

        def __call__(self) -> float:
            self.now += 3.0
            return self.now

    monkeypatch.setattr(alerting_timing, "perf_counter", Ticking())
    app = snippet.app
    with record_alerts(app) as alerts:
        with app.app_context():
            assert snippet.load_catalogue() == ["coffee", "pastries", "cakes"]
            model = snippet.load_model()
            assert snippet.predict(model, 12) == "sandwiches"
            assert asyncio.run(snippet.fetch_rates())["USD"] == 1.08
    assert [(a.labels["function"], a.value, a.threshold) for a in alerts] == [
        ("load_catalogue", 3.0, 2.0),
        ("load-model", 3.0, 1.0),
        ("prediction_from_model", 3.0, 2.0),
        ("fetch_rates", 3.0, 0.5),
    ]


# -- docs/metrics.rst --------------------------------------------------------------------------


def test_custom_rule(load: Loader) -> None:
    snippet = load("custom_rule")
    app = snippet.app
    [result] = [r for r in snippet.alerting.check(app, window=0) if r.name == "queue-depth"]
    assert (result.value, result.threshold, result.breached) == (0.0, 100.0, False)
    for n in range(150):
        snippet.jobs.put(f"job-{n}")
    [result] = [r for r in snippet.alerting.check(app, window=0) if r.name == "queue-depth"]
    assert (result.value, result.breached) == (150.0, True)
    [rule] = [r for r in snippet.alerting.rule_states(app) if r.name == "queue-depth"]
    assert (rule.for_, rule.resolve_below, rule.severity) == (60.0, 90.0, "critical")


# -- docs/configuration.rst --------------------------------------------------------------------


def test_config_precedence(load: Loader) -> None:
    snippet = load("config_precedence")
    assert snippet.app.extensions["alerting"].config.throttle_seconds == 60


# -- docs/notifiers.rst ------------------------------------------------------------------------


class Hook(http.server.BaseHTTPRequestHandler):
    """A webhook on 127.0.0.1 answering with the server's next status code."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        server: Any = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[Any]:
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.received = []
    server.status = 200
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_webhook_notifier(
    load: Loader,
    webhook: Any,
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # the notifier uses urllib's defaults
    snippet = load("webhook_notifier")
    assert [n.describe() for n in snippet.app.extensions["alerting"].notifiers] == [
        "https://hooks.example.com/alerts"
    ]
    notifier = snippet.IncidentNotifier(f"{webhook.url}/alerts?token=s3cr3t")
    assert notifier.describe() == f"{webhook.url}/alerts"
    alert = Alert(title="Disk nearly full", labels={"app": "shop"})

    notifier.send(alert)
    path, content_type, payload = webhook.received[-1]
    assert (path, content_type) == ("/alerts?token=s3cr3t", "application/json")
    assert payload == {
        "title": "Disk nearly full",
        "severity": "warning",
        "status": "firing",
        "occurrences": 1,
        "labels": {"app": "shop"},
    }

    webhook.status = 503
    with pytest.raises(TransientError) as transient:
        notifier.send(alert)
    assert notifier.is_transient(transient.value)
    webhook.status = 400
    with pytest.raises(RuntimeError, match="refused the alert: HTTP 400") as refused:
        notifier.send(alert)
    assert not notifier.is_transient(refused.value)

    webhook.status = 200
    alerting = make_alerting(app, notifiers=[notifier])
    with app.app_context():
        alerting.alert("Queue stuck", severity="critical")
    assert alerting.flush(10)
    assert webhook.received[-1][2]["title"] == "Queue stuck"


def _channel_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **keys: str) -> None:
    """Only the given FLASK_ALERTING_* keys (plus a private lock file, no sampler)."""
    for name in [n for n in os.environ if n.startswith("FLASK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FLASK_ALERTING_METRICS_ENABLED", "false")
    monkeypatch.setenv("FLASK_ALERTING_METRICS_LOCK_FILE", str(tmp_path / "metrics.lock"))
    for key, value in keys.items():
        monkeypatch.setenv(f"FLASK_ALERTING_{key}", value)


def test_webhook_config(
    load: Loader, http_recorder: HTTPRecorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _channel_env(monkeypatch, tmp_path, WEBHOOK_URL=f"{http_recorder.url}/services/T0/B0/x")
    snippet = load("webhook_config")
    [notifier] = snippet.app.extensions["alerting"].notifiers
    assert notifier.describe() == f"slack POST to {http_recorder.url}/***"
    with snippet.app.app_context():
        snippet.alerting.alert("Backups failed", severity="error")
    assert snippet.alerting.flush(10)
    [request] = http_recorder.requests
    assert request.path == "/services/T0/B0/x"
    assert request.json()["text"].startswith(":x: *[snippet_webhook_config] Backups failed*")


def test_alertmanager_config(
    load: Loader, alertmanager: Alertmanager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _channel_env(monkeypatch, tmp_path, ALERTMANAGER_URL=alertmanager.url)
    snippet = load("alertmanager_config")
    with snippet.app.app_context():
        snippet.alerting.alert("Nightly import late", labels={"job": "import"})
    assert snippet.alerting.flush(10)
    [alert] = alertmanager.alerts('app="snippet_alertmanager_config"', 'job="import"')
    assert alert["labels"]["alertname"] == "Nightly import late"


def test_alertmanager_cluster(
    load: Loader, alertmanager: Alertmanager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _channel_env(monkeypatch, tmp_path)
    # Two "instances" (the same server twice): each hears of the alert, it stays one alert.
    monkeypatch.setenv("ALERTMANAGERS", f"{alertmanager.url} {alertmanager.url}/")
    snippet = load("alertmanager_cluster")
    assert len(snippet.app.extensions["alerting"].notifiers) == 2
    with snippet.app.app_context():
        snippet.alerting.alert("Payment provider slow")
    assert snippet.alerting.flush(10)
    assert [w.sent for w in snippet.app.extensions["alerting"].pipeline.workers] == [1, 1]
    assert len(alertmanager.alerts('app="snippet_alertmanager_cluster"')) == 1


def test_redis_store(
    load: Loader, redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _channel_env(monkeypatch, tmp_path)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    snippet = load("redis_store")
    sent: list[Alert] = []
    with alert_sent.connected_to(lambda sender, alert, **kw: sent.append(alert), snippet.app):
        with snippet.app.app_context():
            for _ in range(3):
                snippet.alerting.alert("Payment provider slow")
        assert snippet.alerting.flush(10)
        assert len(sent) == 1  # the window is in Redis, where every host sees it
        redis = parse_storage_uri(redis_server.url, app_name=snippet.app.name, timeout=5)
        try:
            (window,) = redis.windows(now=time.time())
        finally:
            redis.close()
        assert window.fingerprint == sent[0].fingerprint and window.count == 2
        assert snippet.alerting.shutdown(10)  # the last process: the digest
    assert [a.occurrences for a in sent] == [1, 2]


def test_apprise_config(
    load: Loader, http_recorder: HTTPRecorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _channel_env(monkeypatch, tmp_path)
    monkeypatch.setenv("APPRISE_URLS", f"json://127.0.0.1:{http_recorder.port}/alerts")
    snippet = load("apprise_config")
    with snippet.app.app_context():
        snippet.alerting.alert("Disk nearly full", severity="critical")
    assert snippet.alerting.flush(20)
    [request] = http_recorder.requests
    assert request.json()["title"] == "[snippet_apprise_config] Disk nearly full"
    assert request.json()["type"] == "failure"


# -- docs/signals.rst --------------------------------------------------------------------------


def test_signal_receivers(
    load: Loader,
    smtp_factory: Callable[..., SMTPServer],
    ca_file: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = smtp_factory(security="starttls", auth=True)
    _smtp_env(monkeypatch, server, ca_file, tmp_path)

    monkeypatch.setenv("EMAIL_PASSWORD", "not-" + PASSWORD)  # refused: a permanent failure
    snippet = load("signal_receivers")
    with snippet.app.app_context():
        snippet.alerting.alert("Disk nearly full")
    assert snippet.alerting.flush(10)
    assert snippet.deliveries == {"smtp.failed": 1}
    [record] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert record.getMessage().startswith(
        "alert 'Disk nearly full' lost: SMTPAuthenticationError: 535"
    )
    assert PASSWORD not in caplog.text
    # Stopped before it starts again with the right password: the two instances have
    # the same name, so they share this host's store, where the first one's window of
    # "Disk nearly full" would otherwise still count the second one's alert.
    assert snippet.alerting.shutdown(10)

    monkeypatch.setenv("EMAIL_PASSWORD", PASSWORD)
    snippet = load("signal_receivers")
    with snippet.app.app_context():
        snippet.alerting.alert("Disk nearly full")
    assert snippet.alerting.flush(10)
    assert snippet.deliveries == {"smtp.sent": 1}
    server.wait_for(1)


# -- docs/migrating.rst ------------------------------------------------------------------------


def test_recipe_settings(
    load: Loader,
    smtp_server: SMTPServer,
    make_alerting: Callable[..., FlaskAlerting],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # error.log is relative, as in the seed
    monkeypatch.setenv("EMAIL_PASSWORD", PASSWORD)
    settings = load("migrated_config").RECIPE_SETTINGS
    seed = Flask("seedapp")
    seed.config.update(settings, ALERTING_METRICS_ENABLED=False)
    make_alerting(seed)
    state = seed.extensions["alerting"]
    assert [n.describe() for n in state.notifiers] == [
        "ssl://your_email@example.com@smtp.example.com:465 from your_email@example.com "
        "to admin@example.com"
    ]
    assert state.config.smtp_password == PASSWORD  # EMAIL_PASSWORD, as the seed read it
    assert (state.config.cpu_threshold, state.config.memory_threshold) == (80.0, 80.0)
    assert (state.config.metrics_for, state.config.slow_threshold) == (0.0, 2.0)

    # The same settings, delivering to a local server: error.log gets the seed's lines.
    app = Flask("migrated")
    app.config.update(
        settings,
        ALERTING_SMTP_HOST=smtp_server.host,
        ALERTING_SMTP_PORT=smtp_server.port,
        ALERTING_SMTP_SECURITY="none",
        ALERTING_SMTP_USERNAME=None,
        ALERTING_METRICS_ENABLED=False,
    )
    alerting = make_alerting(app)

    @app.route("/")
    def index() -> str:
        return str(1 / 0)

    assert app.test_client().get("/").status_code == 500
    assert alerting.flush(10)
    smtp_server.wait_for(1)
    alerting.shutdown(timeout=5)  # closes the log file
    log = (tmp_path / "error.log").read_text()
    assert re.match(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}:ERROR:ZeroDivisionError: division by zero",
        log,
    )
    assert "Traceback (most recent call last):" in log


def test_the_recipes_code_compiles() -> None:
    for path in sorted((SNIPPETS / "recipe").glob("*.py")):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")


# -- docs/deployment.rst -----------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="gunicorn is POSIX only")
def test_gunicorn_conf_flushes_pending_digests_when_workers_stop(
    smtp_server: SMTPServer, tmp_path: Path
) -> None:
    from gunicorn.config import KNOWN_SETTINGS  # type: ignore[import-untyped]

    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLASK_")},
        "PYTHONPATH": str(ROOT / "examples"),
        "WEB_CONCURRENCY": "4",  # the workers share this host's default store
        "FLASK_ALERTING_SMTP_HOST": "127.0.0.1",
        "FLASK_ALERTING_SMTP_PORT": str(smtp_server.port),
        "FLASK_ALERTING_SMTP_SECURITY": "none",
        "FLASK_ALERTING_MAIL_SENDER": "alerts@example.com",
        "FLASK_ALERTING_MAIL_RECIPIENTS": "admin@example.com",
        "FLASK_ALERTING_METRICS_ENABLED": "false",
    }
    args = [sys.executable, "-m", "gunicorn", "-c", str(SNIPPETS / "gunicorn.conf.py")]
    args += ["-b", f"127.0.0.1:{port}"]
    if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS):  # gunicorn >= 25.1
        args.append("--no-control-socket")
    with open(tmp_path / "gunicorn.out", "wb") as out:
        proc = subprocess.Popen(
            [*args, "prediction_app:create_app()"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_until_serving(port, proc)
            for _ in range(3):  # one e-mail now, two counted for the digest
                assert _post_hour(port, 3) == 500
            smtp_server.wait_for(1, timeout=20)
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(40) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    report = (tmp_path / "gunicorn.out").read_text()
    subjects = [m["Subject"] for m in smtp_server.wait_for(2, timeout=1)]
    assert subjects == [
        "[prediction_app] KeyError: 3 in prediction.index",
        "[prediction_app] (2x) KeyError: 3 in prediction.index",
    ], report


#: Straight to 127.0.0.1, whatever http_proxy says.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post_hour(port: int, hour: int) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", f"hour={hour}".encode())
    try:
        with _direct.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _wait_until_serving(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    pause = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if proc.poll() is not None:
            raise AssertionError("gunicorn exited")
        try:
            with _direct.open(f"http://127.0.0.1:{port}/", timeout=2):
                return
        except OSError:
            pause.wait(0.05)
    raise AssertionError(f"gunicorn did not serve within {timeout} s")


# -- the docs show these files, and only code that is tested -----------------------------------


def _included() -> set[Path]:
    paths = set()
    for page in DOCS.glob("*.rst"):
        for target in re.findall(r"\.\. literalinclude:: (\S+)", page.read_text()):
            paths.add((DOCS / target).resolve())
    return paths


def test_every_snippet_is_tested_and_shown() -> None:
    source = Path(__file__).read_text(encoding="utf-8")
    tested = set(re.findall(r'load\("(\w+)"\)', source))
    snippets = {p.stem for p in SNIPPETS.glob("*.py")} - {"gunicorn.conf"}
    assert snippets - tested == set(), "snippets without a test"
    included = _included()
    for path in [*SNIPPETS.glob("*.py"), *(SNIPPETS / "recipe").glob("*.py")]:
        assert path.resolve() in included, f"{path.name} is shown by no page of docs/"
    for path in included:
        assert path.exists(), path


def test_the_docs_include_their_python_code_from_files() -> None:
    for page in DOCS.glob("*.rst"):
        assert ".. code-block:: python" not in page.read_text(), page.name
