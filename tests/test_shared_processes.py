"""One incident, one message, across real processes: gunicorn masters and their workers
serving tests/storm_app.py, a real SMTP server, a real redis-server, the default SQLite
store of a host.

Each gunicorn master stands for a host: a runtime directory (``XDG_RUNTIME_DIR``, where
the default store lives) and a temp directory of its own, and, where the machine lets
this test make a UTS namespace (``unshare --uts``, as root), a host name of its own.
Requests are sent by several client threads at once, each on a connection of its own, so
they spread over the workers; every response names the worker that served it. Waits
poll state held by other processes (the SMTP server, log files, the store), never sleep.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psutil
import pytest
from gunicorn.config import KNOWN_SETTINGS  # type: ignore[import-untyped]

from flask_alerting.store import SQLiteStore, Store, parse_storage_uri
from tests.servers import RedisServer, free_port, wait_until
from tests.smtp_server import SMTPServer

ROOT = Path(__file__).resolve().parent.parent
#: Generous: what a request may take while the store hangs or fails (its bound is 50 ms
#: per operation, and no request ever waits for one).
REQUEST_BOUND = 1.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="gunicorn is POSIX only")


@functools.lru_cache(maxsize=1)
def can_name_hosts() -> bool:
    """Whether a process can get a host name of its own here (a UTS namespace)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        result = subprocess.run(
            [unshare, "--uts", "sh", "-c", "hostname fa-test-host && hostname"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and result.stdout.strip() == "fa-test-host"


@dataclasses.dataclass(frozen=True)
class Result:
    status: int
    pid: int
    seconds: float


class Host:
    """A gunicorn master and its workers serving tests/storm_app.py (see the module)."""

    def __init__(
        self,
        directory: Path,
        smtp: SMTPServer,
        *,
        workers: int,
        store: str | None = None,
        throttle: float = 300.0,
        retry: float = 30.0,
        hostname: str | None = None,
    ) -> None:
        self.directory = directory
        self.runtime = directory / "runtime"
        self.tmp = directory / "tmp"
        for path in (self.runtime, self.tmp):
            path.mkdir(parents=True, mode=0o700)
        self.log = directory / "alerting.log"
        self.out_path = directory / "gunicorn.out"
        self.workers = workers
        self.port = free_port()
        self.hostname = hostname
        env = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(self.runtime),
            "TMPDIR": str(self.tmp),
            "FA_LOG": str(self.log),
            "FA_SMTP_PORT": str(smtp.port),
            "FA_THROTTLE": str(throttle),
            "FA_RETRY": str(retry),
            "PYTHONPATH": str(ROOT),
        }
        env.pop("FA_STORE", None)
        if store is not None:
            env["FA_STORE"] = store
        args = [
            sys.executable, "-m", "gunicorn", "-w", str(workers),
            "-b", f"127.0.0.1:{self.port}", "--graceful-timeout", "20",
        ]
        if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS):  # gunicorn >= 25.1
            args.append("--no-control-socket")
        args.append("tests.storm_app:app")
        if hostname is not None:  # the same process, in a UTS namespace of its own
            args = ["unshare", "--uts", "sh", "-c", f'hostname {hostname} && exec "$@"', "sh",
                    *args]
        self.out = open(self.out_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self.out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.ready: set[int] = set()
        wait_until(self._ready, 60, f"gunicorn with {workers} workers\n{self.report()}")

    def _ready(self) -> bool:
        """Every worker has loaded the app and served a request."""
        assert self.proc.poll() is None, self.report()
        booted = self.out_path.read_text(errors="replace").count("Booting worker with pid")
        if booted < self.workers:
            return False
        with concurrent.futures.ThreadPoolExecutor(self.workers * 2) as pool:
            for pid in pool.map(self._pid, range(self.workers * 2)):
                if pid is not None:
                    self.ready.add(pid)
        return len(self.ready) >= self.workers

    def _pid(self, _: int) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/pid", timeout=5) as r:
                return int(r.read())
        except OSError:
            return None

    def get(self, path: str) -> Result:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as r:
                status, pid = r.status, r.headers["X-Worker-Pid"]
        except urllib.error.HTTPError as exc:
            status, pid = exc.code, exc.headers["X-Worker-Pid"]
            exc.close()
        return Result(status, int(pid), time.perf_counter() - started)

    def lines(self, text: str = "") -> list[tuple[int, str]]:
        """The ``flask_alerting`` log of every worker: (pid, line) containing ``text``."""
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            pid, _, rest = line.partition(" ")
            if pid.isdigit() and text in rest:
                out.append((int(pid), rest))
        return out

    def default_store(self) -> Store:
        """A handle on this host's default store (the file the workers share)."""
        (path,) = self.runtime.glob("flask-alerting-*-storm-app-*.sqlite3")
        return SQLiteStore(str(path))

    def report(self) -> str:
        log = self.log.read_text(errors="replace") if self.log.exists() else "(none)"
        out = self.out_path.read_text(errors="replace")
        return f"--- {self.directory.name}: alerting log:\n{log}\n--- gunicorn:\n{out[-4000:]}"

    def stop(self) -> None:
        """SIGTERM to the master: it stops its workers (each flushes and leaves the store)
        and exits."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.out.close()


@pytest.fixture
def hosts(tmp_path: Path, smtp_server: SMTPServer) -> Iterator[Callable[..., Host]]:
    made: list[Host] = []

    def make(name: str = "host", **kwargs: Any) -> Host:
        made.append(Host(tmp_path / name, smtp_server, **kwargs))
        return made[-1]

    yield make
    for host in made:
        with_group = host.proc.poll() is None
        host.stop()
        if with_group:  # workers orphaned by a failed test must not live on
            try:
                os.killpg(host.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def storm(targets: list[Host], count: int, *, concurrency: int = 16) -> list[Result]:
    """``count`` erroring requests, spread over ``targets`` in turn, ``concurrency`` at
    once."""
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(targets[i % len(targets)].get, "/fail") for i in range(count)]
        results = [f.result() for f in futures]
    assert [r.status for r in results] == [500] * count
    return results


_COUNT = re.compile(r"\((\d+)x\)")


def tally(messages: list[EmailMessage]) -> tuple[int, list[int]]:
    """First e-mails, and the counts of the digests, among ``messages``."""
    firsts, digests = 0, []
    for message in messages:
        match = _COUNT.search(str(message["Subject"]))
        if match:
            digests.append(int(match.group(1)))
        else:
            firsts += 1
    return firsts, digests


def raised_by(message: EmailMessage) -> tuple[int, str]:
    body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    match = re.search(r"Raised by: pid (\d+) on (\S+)", body)
    assert match, body
    return int(match.group(1)), match.group(2)


def settle(smtp: SMTPServer, count: int) -> list[EmailMessage]:
    """The e-mails once ``count`` arrived (after every sender stopped: none can follow)."""
    return smtp.wait_for(count, timeout=30)


# -- one host: the default store -----------------------------------------------------------------


def test_four_workers_on_the_default_store_send_one_email_and_one_digest(
    hosts: Callable[..., Host], smtp_server: SMTPServer
) -> None:
    host = hosts(workers=4)
    results = storm([host], 200)
    workers = {r.pid for r in results}
    assert len(workers) >= 2, f"the storm hit one worker only: {workers}"
    first = smtp_server.wait_for(1)[0]
    assert raised_by(first)[0] in workers

    # Stopped inside the 300-s window: every worker adds its counts and leaves the
    # store; the last one sends the digest.
    host.stop()
    messages = settle(smtp_server, 2)
    assert len(messages) == 2, host.report()
    assert tally(messages) == (1, [199])
    assert raised_by(messages[1])[0] in workers
    assert host.lines("failed while") == [], host.report()
    # It was this host's default store, and it holds nothing more.
    store = host.default_store()
    try:
        assert store.windows(now=time.time()) == [] and store.processes(now=time.time()) == []
    finally:
        store.close()


def test_a_killed_window_owners_digest_leaves_from_another_worker(
    hosts: Callable[..., Host], smtp_server: SMTPServer
) -> None:
    host = hosts(workers=3, throttle=12.0)
    results = storm([host], 60)
    first = smtp_server.wait_for(1)[0]
    owner = raised_by(first)[0]
    workers = {r.pid for r in results}
    assert owner in workers and len(workers) >= 2, workers
    store = host.default_store()
    try:
        # Every suppressed occurrence has reached the store (counts leave in batches).
        (window,) = wait_until(
            lambda: [w for w in store.windows(now=time.time()) if w.count == 59], 10,
            "the counts in the store",
        )
        assert window.owner.split("/")[1] == str(owner)
        assert window.end > time.time(), "the storm outlasted the window: no test"
        os.kill(owner, signal.SIGKILL)  # inside its window, before its digest
        wait_until(lambda: len(smtp_server.raw) >= 2, 30, f"the digest\n{host.report()}")
        assert tally(smtp_server.messages) == (1, [59]), host.report()
        # Claimed, and started again, by another worker: one that raised, or the one
        # gunicorn started in place of the killed one (every worker's dispatch thread
        # runs from init_app on with a shared store, and claims due windows).
        (claimed,) = store.windows(now=time.time())
        claimer = int(claimed.owner.split("/")[1])
        assert claimer != owner and psutil.pid_exists(claimer), (claimer, owner, workers)
        assert psutil.Process(claimer).ppid() == host.proc.pid
    finally:
        store.close()
    host.stop()
    assert tally(smtp_server.messages) == (1, [59])  # the window counted nothing more


# -- several hosts: one Redis --------------------------------------------------------------------


def test_two_hosts_sharing_a_redis_send_one_email_and_one_digest(
    hosts: Callable[..., Host], smtp_server: SMTPServer, own_redis: RedisServer
) -> None:
    named = can_name_hosts()
    a = hosts("host-a", workers=2, store=own_redis.url, hostname="fa-host-a" if named else None)
    b = hosts("host-b", workers=2, store=own_redis.url, hostname="fa-host-b" if named else None)
    results = storm([a, b], 200)
    (first,) = smtp_server.wait_for(1)
    if named:
        assert raised_by(first)[1] in {"fa-host-a", "fa-host-b"}
        redis = parse_storage_uri(own_redis.url, app_name="storm-app", timeout=5)
        try:
            hostnames = {p.process.host for p in redis.processes(now=time.time())}
        finally:
            redis.close()
        assert hostnames == {"fa-host-a", "fa-host-b"}
    assert len({r.pid for r in results}) >= 2
    a.stop()  # its workers leave: the other host's are alive, no digest yet
    b.stop()  # the last process of the store sends the digest
    messages = settle(smtp_server, 2)
    assert len(messages) == 2, a.report() + b.report()
    assert tally(messages) == (1, [199])
    assert a.lines("failed while") == b.lines("failed while") == []


# -- the store failing ----------------------------------------------------------------------------


def check_fallback_logged_once_and_return(host: Host) -> None:
    """Each worker that used the store logged its failure once, then its return once."""
    failed = host.lines("failed while")
    back = host.lines("answers again;")
    assert failed, host.report()
    pids = [p for p, _ in failed]
    assert sorted(pids) == sorted(set(pids)), host.report()  # once per worker
    assert sorted(p for p, _ in back) == sorted(pids), host.report()


def test_redis_stopped_mid_run_then_restarted(
    hosts: Callable[..., Host], smtp_server: SMTPServer, own_redis: RedisServer
) -> None:
    own_redis.stop()
    own_redis.start(port=own_redis.port, persist=True)  # a restart keeps its data
    host = hosts(workers=2, store=own_redis.url, throttle=4.0, retry=1.0)
    raised = len(storm([host], 40))
    smtp_server.wait_for(1)
    redis = parse_storage_uri(own_redis.url, app_name="storm-app", timeout=5)
    try:
        wait_until(lambda: sum(w.count for w in redis.windows(now=time.time())) == 39, 10,
                   "the counts in Redis")
    finally:
        redis.close()

    own_redis.stop()
    during = storm([host], 40)
    raised += len(during)
    assert max(r.seconds for r in during) < REQUEST_BOUND
    wait_until(lambda: host.lines("failed while"), 10, "the fallback to be logged")
    own_redis.start(port=own_redis.port, persist=True)
    wait_until(
        lambda: len(host.lines("answers again;")) == len(host.lines("failed while")), 20,
        "every worker to come back to the store",
    )
    after = storm([host], 40)
    raised += len(after)
    assert max(r.seconds for r in after) < REQUEST_BOUND
    host.stop()
    check_fallback_logged_once_and_return(host)
    firsts, digests = tally(smtp_server.messages)
    assert firsts + sum(digests) == raised, (firsts, digests, host.report())


def test_a_frozen_redis_costs_no_request_and_no_alert(
    hosts: Callable[..., Host], smtp_server: SMTPServer, own_redis: RedisServer
) -> None:
    """A server that accepts connections and never answers (SIGSTOP): every operation
    waits for its bound, on the dispatch thread only."""
    host = hosts(workers=2, store=own_redis.url, throttle=4.0, retry=1.0)
    raised = len(storm([host], 40))
    smtp_server.wait_for(1)
    own_redis.pause()
    try:
        during = storm([host], 40)
        raised += len(during)
        assert max(r.seconds for r in during) < REQUEST_BOUND
        wait_until(lambda: host.lines("failed while"), 20, "the fallback to be logged")
    finally:
        own_redis.resume()
    wait_until(
        lambda: len(host.lines("answers again;")) == len(host.lines("failed while")), 20,
        "every worker to come back to the store",
    )
    after = storm([host], 40)
    raised += len(after)
    assert max(r.seconds for r in after) < REQUEST_BOUND
    host.stop()
    check_fallback_logged_once_and_return(host)
    firsts, digests = tally(smtp_server.messages)
    # A write that timed out may have been applied once the server ran again: counted
    # twice at worst, never lost.
    assert raised <= firsts + sum(digests) <= raised + 40, (firsts, digests, host.report())


@pytest.mark.parametrize("outage", ["nothing listens", "an unwritable SQLite path"])
def test_a_store_that_fails_from_the_start_costs_no_request_and_no_alert(
    hosts: Callable[..., Host], smtp_server: SMTPServer, tmp_path: Path, outage: str
) -> None:
    if outage == "nothing listens":
        port = free_port()
        store = f"redis://127.0.0.1:{port}/0"
        redis = RedisServer(tmp_path / "redis")
        (tmp_path / "redis").mkdir()
    else:
        blocker = tmp_path / "blocker"
        blocker.write_text("a file where the store's directory should be")
        store = f"sqlite:///{blocker}/store.sqlite3"
    host = hosts(workers=2, store=store, throttle=4.0, retry=1.0)
    try:
        results = storm([host], 60)
        assert max(r.seconds for r in results) < REQUEST_BOUND
        wait_until(lambda: host.lines("failed while"), 10, "the fallback to be logged")
        # Each worker on its own: at most one first e-mail per worker.
        firsts = len(smtp_server.wait_for(1))
        assert 1 <= firsts <= len({r.pid for r in results})
        if outage == "nothing listens":
            redis.start(port=port)
        else:
            blocker.unlink()
            blocker.mkdir()
        wait_until(
            lambda: len(host.lines("answers again;")) == len(host.lines("failed while")), 20,
            "every worker to come back to the store",
        )
        after = storm([host], 60)
        assert max(r.seconds for r in after) < REQUEST_BOUND
        host.stop()
    finally:
        if outage == "nothing listens":
            redis.stop()
    check_fallback_logged_once_and_return(host)
    found, digests = tally(smtp_server.messages)
    assert found + sum(digests) == 120, (found, digests, host.report())
