"""Shared fixtures: apps, extensions that are shut down after each test, SMTP servers."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from flask import Flask

from flask_alerting import FlaskAlerting, MemoryNotifier
from tests.recorder import Recorder
from tests.servers import Alertmanager, HTTPRecorder, require_binary
from tests.smtp_server import PASSWORD, USERNAME, SMTPServer
from tests.store_support import (  # noqa: F401 - fixtures of the store tests
    backend,
    make_store,
    own_redis,
    redis_server,
    store,
    store_uri,
)

pytest_plugins = ["pytester"]


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def private_runtime_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets an ``XDG_RUNTIME_DIR`` of its own (``0700``), inherited by the
    servers it starts: the default store and metrics lock file of its apps are its own,
    never shared with another test or a parallel run."""
    path = tmp_path_factory.mktemp("runtime")
    path.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app() -> Flask:
    app = Flask("testapp")
    # Not app.testing: errors must reach Flask's 500 handling as in production.
    app.config["PROPAGATE_EXCEPTIONS"] = False
    # Not app.testing either, so the metrics sampler would start: it samples the real host
    # and would alert into unrelated tests. Its own tests turn it on explicitly.
    app.config["ALERTING_METRICS_ENABLED"] = False
    # Nor would the store be memory://: these tests are about one process, whose throttle
    # they drive with a FakeClock. The shared store has its own tests (test_shared_*.py).
    app.config["ALERTING_STORAGE_URI"] = "memory://"
    return app


@pytest.fixture
def memory() -> MemoryNotifier:
    return MemoryNotifier()


@pytest.fixture
def make_alerting() -> Iterator[Callable[..., FlaskAlerting]]:
    """Build extensions; every one is shut down (threads stopped) in teardown."""
    made: list[FlaskAlerting] = []

    def make(app: Flask | None = None, **kwargs: Any) -> FlaskAlerting:
        ext = FlaskAlerting(app, **kwargs)
        made.append(ext)
        return ext

    yield make
    for ext in made:
        ext.shutdown(timeout=2.0)


@pytest.fixture
def alerting(
    app: Flask, memory: MemoryNotifier, make_alerting: Callable[..., FlaskAlerting]
) -> FlaskAlerting:
    return make_alerting(app, notifiers=[memory])


@pytest.fixture
def recorder(app: Flask) -> Iterator[Callable[[Any], Recorder]]:
    """``recorder(alert_failed)`` records that signal's calls for the ``app`` fixture."""
    made: list[Recorder] = []

    def make(signal: Any) -> Recorder:
        made.append(Recorder(signal, app))
        return made[-1]

    yield make
    for rec in made:
        rec.disconnect()


# -- TLS and SMTP ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts the test CA (verification stays on)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Any) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def smtp_factory(server_context: ssl.SSLContext) -> Iterator[Callable[..., SMTPServer]]:
    """Start SMTP servers: ``smtp_factory(security="starttls", auth=True)``."""
    servers: list[SMTPServer] = []

    def start(**kwargs: Any) -> SMTPServer:
        kwargs.setdefault("server_context", server_context)
        server = SMTPServer(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def smtp_server(smtp_factory: Callable[..., SMTPServer]) -> SMTPServer:
    """A plain SMTP server (no TLS, no AUTH) on 127.0.0.1."""
    return smtp_factory()


@pytest.fixture
def smtp_config(smtp_server: SMTPServer) -> dict[str, Any]:
    """``app.config`` keys pointing at :func:`smtp_server`."""
    return {
        "ALERTING_SMTP_HOST": smtp_server.host,
        "ALERTING_SMTP_PORT": smtp_server.port,
        "ALERTING_SMTP_SECURITY": "none",
        "ALERTING_MAIL_SENDER": "alerts@example.com",
        "ALERTING_MAIL_RECIPIENTS": "admin@example.com",
    }


__all__ = ["PASSWORD", "USERNAME", "FakeClock"]


# -- HTTP endpoints and Prometheus Alertmanager (tests/servers.py) ------------------------------


@pytest.fixture
def local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to 127.0.0.1 never go through a proxy named in the environment."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def http_recorder(local_only: None) -> Iterator[HTTPRecorder]:
    """An HTTP server on 127.0.0.1 that records requests and answers as scripted."""
    recorder = HTTPRecorder().start()
    yield recorder
    recorder.stop()


@pytest.fixture(scope="session")
def alertmanager_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    """One real Alertmanager for the session, configured with the docs' example file."""
    binary = require_binary(
        "prometheus-alertmanager",
        package="prometheus-alertmanager",
        paths=("/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager"),
    )
    config = Path(__file__).resolve().parent.parent / "examples/alertmanager/alertmanager.yml"
    server = Alertmanager(binary, config, tmp_path_factory.mktemp("alertmanager")).start()
    yield server
    server.stop()


@pytest.fixture
def alertmanager(alertmanager_server: Alertmanager, local_only: None) -> Alertmanager:
    """The session's Alertmanager; tests tell their alerts apart by a unique app name."""
    return alertmanager_server
