"""Fixtures for the store tests: every backend, a real redis-server, other processes.

Imported by ``tests/conftest.py`` so the fixtures are visible to every test module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import pytest

from flask_alerting.alert import Alert
from flask_alerting.store import Limits, ProcessId, Store, parse_storage_uri
from flask_alerting.store.process import host_name
from tests.servers import RedisServer

BACKENDS = ("memory", "sqlite", "redis")
#: Generous bound for operations in tests that are not about timeouts (a loaded machine).
TEST_TIMEOUT = 10.0
NOW = 1_800_000_000.0


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session; tests keep apart by namespace."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this test alone (to stop, pause, restart)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_uri(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
def make_store(store_uri: str) -> Iterator[Callable[..., Store]]:
    """``make_store(**limits)``: a handle on this test's store (a fresh Redis namespace).

    Every handle names the same store (for ``memory://``: the same object), as the
    processes of an app do.
    """
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    made: list[Store] = []

    def make(timeout: float = TEST_TIMEOUT, **limits: Any) -> Store:
        if store_uri == "memory://" and made:
            return made[0]
        store = parse_storage_uri(
            store_uri, namespace=namespace, timeout=timeout, limits=Limits(**limits)
        )
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    return make_store()


def alert(fp: str = "fp-1", title: str = "boom", **fields: Any) -> Alert:
    """An alert whose every field is fixed (equal alerts for equal arguments)."""
    fields.setdefault("timestamp", datetime.fromtimestamp(NOW, timezone.utc))
    return Alert(title=title, fingerprint=fp, kind="error", severity="error", **fields)


def remote_process(pid: int = 4242) -> ProcessId:
    """A process of another host (its liveness is its lease)."""
    return ProcessId("another-host.invalid", pid, 12345.67)


def dead_local_process() -> ProcessId:
    """A process of this host that has ended (a real one, started and reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    started = round(psutil.Process(child.pid).create_time(), 2)
    assert child.stdin is not None
    child.stdin.close()
    child.wait(timeout=30)
    return ProcessId(host_name(), child.pid, started)


def fork() -> int:
    """``os.fork()``; Python 3.12+ warns when other tests left threads running: ignored
    here, the children of the store tests only touch their own files and sockets."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "This process .* is multi-threaded",
                                DeprecationWarning)
        return os.fork()
