"""The durable outbox across real processes: killed with SIGKILL, a gunicorn worker killed
in a burst, two processes recovering at once.

The processes run ``tests/outbox_app.py`` against the real SMTP server of the test
(aiosmtpd on 127.0.0.1) and a real store: the default SQLite file (in the test's own
``XDG_RUNTIME_DIR``, inherited) or the session's redis-server. Every wait is bounded; the
processes write ``<pid> <event>`` lines to a log file that the test waits on.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from flask_alerting import Alert
from flask_alerting.notifiers.smtp import thread_root
from flask_alerting.store import Outgoing, Store, parse_storage_uri
from flask_alerting.store.process import host_name
from tests.servers import RedisServer, wait_until
from tests.smtp_server import SMTPServer, free_port
from tests.store_support import dead_local_process

ROOT = Path(__file__).resolve().parent.parent
HOST = host_name()
ID = re.compile(r"Error(\d+)")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


class Processes:
    """Runs ``python -m tests.outbox_app ...``; every one still running is killed at the end."""

    def __init__(self, tmp_path: Path, app_name: str, storage_uri: str | None) -> None:
        self.log = tmp_path / "events.log"
        self.app_name = app_name
        self.storage_uri = storage_uri
        self.procs: list[subprocess.Popen[bytes]] = []
        self.out = tmp_path

    def env(self, smtp_port: int, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FA_APP": self.app_name,
            "FA_SMTP_PORT": str(smtp_port),
            "FA_LOG": str(self.log),
            # Rounds every 0.2 s instead of 2 s: the tests count rounds, not seconds
            # (test_outbox.py holds the production cadence to its promise).
            "FA_TICK": "0.1",
            "FA_RECOVER_EVERY": "0.2",
            **extra,
        }
        if self.storage_uri:
            env["FA_STORAGE_URI"] = self.storage_uri
        return env

    def start(self, smtp_port: int, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        out = open(self.out / f"process-{len(self.procs)}.out", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.outbox_app", *args], cwd=ROOT,
            env=self.env(smtp_port, **extra), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        out.close()
        self.procs.append(proc)
        return proc

    def events(self, pid: int | None = None) -> list[str]:
        if not self.log.exists():
            return []
        lines = [line.split(" ", 1) for line in self.log.read_text().splitlines()]
        return [event for p, event in lines if pid is None or int(p) == pid]

    def wait_event(self, proc: subprocess.Popen[bytes], prefix: str, timeout: float = 30) -> str:
        def found() -> str | None:
            if proc.poll() is not None and not any(
                e.startswith(prefix) for e in self.events(proc.pid)
            ):
                pytest.fail(f"process {proc.pid} ended ({proc.returncode}):\n{self.report()}")
            return next((e for e in self.events(proc.pid) if e.startswith(prefix)), None)

        return str(wait_until(found, timeout, f"{prefix!r} from process {proc.pid}"))

    def stats(self, proc: subprocess.Popen[bytes], timeout: float = 60) -> dict[str, Any]:
        event = self.wait_event(proc, "stats ", timeout)
        assert proc.wait(30) == 0, self.report()
        stats: dict[str, Any] = json.loads(event.removeprefix("stats "))
        return stats

    def report(self) -> str:
        outputs = "\n".join(
            f"--- process {i}:\n{path.read_text(errors='replace')}"
            for i, path in enumerate(sorted(self.out.glob("process-*.out")))
        )
        events = "\n".join(self.events())
        return f"--- events:\n{events}\n{outputs}"

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def the_store(app_name: str, storage_uri: str | None) -> Store:
    """The store the app processes use (same URI and app name: same file or namespace),
    read from the test."""
    return parse_storage_uri(storage_uri, app_name=app_name, timeout=10.0)


@pytest.fixture(params=["sqlite", "redis"])
def storage_uri(request: pytest.FixtureRequest) -> str | None:
    """None: the default store, the per-host SQLite file; or the session's Redis."""
    if request.param == "sqlite":
        return None
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
def processes(tmp_path: Path, storage_uri: str | None) -> Iterator[Processes]:
    # A name of its own: its own default file, its own Redis namespace.
    procs = Processes(tmp_path, f"outbox-{uuid.uuid4().hex[:8]}", storage_uri)
    yield procs
    procs.kill_all()


def plain(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def error_id(message: EmailMessage) -> int:
    match = ID.search(str(message["Subject"]))
    assert match, message["Subject"]
    return int(match.group(1))


def test_an_alert_of_a_killed_process_is_delivered_once_by_the_next_marked_recovered(
    processes: Processes, smtp_server: SMTPServer
) -> None:
    down = free_port()  # nothing listens there: the SMTP server is down
    first = processes.start(down, "raise", "7")
    processes.wait_event(first, "recorded")
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL

    # A second process of the same app and store, SMTP up, raising nothing itself.
    second = processes.start(smtp_server.port, "recover", FA_EXPECT="1")
    (message,) = smtp_server.wait_for(1, timeout=30)
    stats = processes.stats(second)
    assert stats["recovered"] == 1 and stats["delivered"] is True, processes.report()
    subject = str(message["Subject"]).strip()  # a long subject is folded: " [app] ..."
    assert subject.startswith(f"[{processes.app_name}] (recovered) ") and error_id(message) == 7
    body = plain(message)
    assert body.startswith(
        f"Recovered: pid {first.pid} on {HOST} ended before delivering this alert; "
        f"pid {second.pid} on {HOST} delivered it from the outbox.\n"
    )
    assert f"Raised by: pid {first.pid} on {HOST}" in body  # the process it came from
    # It threads with the other e-mails of its fingerprint, as if delivered at once.
    fingerprint = str(message["X-Alert-Fingerprint"])
    same = Alert(title="any", fingerprint=fingerprint, labels={"app": processes.app_name})
    assert str(message["In-Reply-To"]) == thread_root(same, "example.com")

    # A third process finds nothing more to deliver.
    third = processes.start(smtp_server.port, "recover", FA_ROUNDS="2")
    stats = processes.stats(third)
    assert stats["recovered"] == 0 and stats["rounds"] >= 2
    assert len(smtp_server.raw) == 1
    store = the_store(processes.app_name, processes.storage_uri)
    assert store.outbox_records() == []
    store.close()


def test_two_live_processes_recovering_at_once_deliver_each_record_once(
    processes: Processes, smtp_server: SMTPServer
) -> None:
    store = the_store(processes.app_name, processes.storage_uri)
    gone = dead_local_process()
    labels = {"app": processes.app_name, "host": HOST}
    count = 150  # more than one round takes (100): both processes claim, concurrently
    items = [Outgoing(Alert(title=f"Error{n} left behind", labels=labels), ("smtp",))
             for n in range(count)]  # fmt: skip
    store.outbox_put(items, owner=gone, now=time.time())
    one = processes.start(smtp_server.port, "drain", FA_ROUNDS="1")
    two = processes.start(smtp_server.port, "drain", FA_ROUNDS="1")
    stats = [processes.stats(one), processes.stats(two)]
    messages = smtp_server.wait_for(count, timeout=60)
    ids = sorted(error_id(m) for m in messages)
    assert ids == list(range(count)), processes.report()  # each one once
    assert sum(s["recovered"] for s in stats) == count
    assert all("(recovered)" in str(m["Subject"]) for m in messages)
    assert store.outbox_records() == []
    assert len(smtp_server.raw) == count
    store.close()


# -- gunicorn -----------------------------------------------------------------------------------


class Gunicorn:
    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        from gunicorn.config import KNOWN_SETTINGS  # type: ignore[import-untyped]

        self.port = free_port()
        self.out_path = tmp_path / "gunicorn.out"
        args = [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{self.port}",
                "--graceful-timeout", "5", "--timeout", "120"]  # fmt: skip
        if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS):
            args.append("--no-control-socket")
        self.out = open(self.out_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*args, "tests.outbox_app:app"], cwd=ROOT, env=env, stdout=self.out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def worker_pid(self, timeout: float = 30) -> int:
        def answer() -> int | None:
            assert self.proc.poll() is None, self.out_path.read_text()
            try:
                status, body = self.get("/pid")
            except OSError:
                return None
            return int(json.loads(body)["pid"]) if status == 200 else None

        return int(wait_until(answer, timeout, "a gunicorn worker"))

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:  # pragma: no cover
            pass
        self.out.close()


@pytest.mark.parametrize("storage_uri", ["sqlite"], indirect=True)
def test_a_gunicorn_worker_killed_in_a_burst_leaves_every_accepted_alert_to_the_next(
    tmp_path: Path, processes: Processes, smtp_factory: Callable[..., SMTPServer]
) -> None:
    burst, after = 30, 10
    # The SMTP server is down: the worker accepts the requests and queues their alerts,
    # delivering none (each retried with backoff). It comes up after the kill, on the
    # port the app names (so nothing the killed worker sent can ever be in flight).
    port = free_port()
    server = Gunicorn(tmp_path, processes.env(port))
    store = the_store(processes.app_name, None)
    try:
        killed = server.worker_pid()
        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(lambda n: server.get(f"/fail/{n}")[0], range(burst)))
        assert statuses == [500] * burst  # every one accepted
        # Recorded by the worker's dispatch thread within ~0.1 s of each request.
        wait_until(lambda: len(store.outbox_records()) == burst, 30, "the burst's records")
        os.kill(killed, signal.SIGKILL)  # in the middle of delivering it
        # The master starts a new worker; its init_app takes the burst over.
        replacement = server.worker_pid()
        assert replacement != killed
        smtp = smtp_factory(port=port)
        for n in range(burst, burst + after):  # and it serves requests of its own
            assert server.get(f"/fail/{n}")[0] == 500
        smtp.wait_for(burst + after, timeout=60)
        wait_until(lambda: not store.outbox_records(), 30, "an empty outbox")
    finally:
        server.stop()
        store.close()
    by_id: dict[int, list[str]] = {}
    for message in smtp.messages:
        by_id.setdefault(error_id(message), []).append(str(message["Subject"]))
    assert sorted(by_id) == list(range(burst + after)), server.out_path.read_text()
    assert all(len(subjects) == 1 for subjects in by_id.values()), by_id  # each one once
    assert all("(recovered)" in by_id[n][0] for n in range(burst))
    assert not any("(recovered)" in by_id[n][0] for n in range(burst, burst + after))
