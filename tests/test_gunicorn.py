"""A real gunicorn with 3 workers: exactly one samples, one metric email, and a takeover.

The app (tests/metrics_app.py) alerts on any CPU use (threshold 0, ALERTING_METRICS_FOR 0)
through the real aiosmtpd server of the test. Workers log (with their pid) when they take
the host lock, stand by, retry, and sample; the test waits on those lines, not on sleeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gunicorn.config import KNOWN_SETTINGS  # type: ignore[import-untyped]

from tests.smtp_server import SMTPServer, free_port

ROOT = Path(__file__).resolve().parent.parent
INTERVAL = 0.3

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="gunicorn is POSIX only")


class Gunicorn:
    def __init__(self, tmp_path: Path, smtp: SMTPServer) -> None:
        self.log = tmp_path / "alerting.log"
        self.out_path = tmp_path / "gunicorn.out"
        self.port = free_port()
        env = {
            **os.environ,
            "FA_LOG": str(self.log),
            "FA_LOCK": str(tmp_path / "metrics.lock"),
            "FA_INTERVAL": str(INTERVAL),
            "FA_SMTP_PORT": str(smtp.port),
            "PYTHONPATH": str(ROOT),
        }
        args = [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "3",
            "-b",
            f"127.0.0.1:{self.port}",
            "--graceful-timeout",
            "3",
        ]
        if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS):  # gunicorn >= 25.1
            # one control socket per user by default: parallel test runs would share it
            args.append("--no-control-socket")
        self.out = open(self.out_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*args, "tests.metrics_app:app"],
            cwd=ROOT,
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def lines(self) -> list[tuple[int, str]]:
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            pid, _, message = line.partition(" ")
            if pid.isdigit():
                out.append((int(pid), message))
        return out

    def wait_until(self, what: str, predicate: Callable[[], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while not predicate():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.report()}")
            pause.wait(0.05)

    def report(self) -> str:
        log = self.log.read_text() if self.log.exists() else "(none)"
        return f"--- alerting log:\n{log}\n--- gunicorn:\n{self.out_path.read_text()}"

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(15)
        except subprocess.TimeoutExpired:  # pragma: no cover
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:  # pragma: no cover
            pass
        self.out.close()


@pytest.fixture
def gunicorn(tmp_path: Path, smtp_server: SMTPServer) -> Iterator[Gunicorn]:
    server = Gunicorn(tmp_path, smtp_server)
    yield server
    server.stop()


def leaders(lines: list[tuple[int, str]]) -> list[int]:
    return [p for p, m in lines if "samples the metrics of app" in m and " every " in m]


def count(lines: list[tuple[int, str]], pid: int, text: str) -> int:
    return sum(1 for p, m in lines if p == pid and text in m)


def test_three_workers_one_sampler_one_email_and_takeover(
    gunicorn: Gunicorn, smtp_server: SMTPServer
) -> None:
    (message,) = smtp_server.wait_for(1, timeout=30)
    assert message["Subject"].startswith(
        "[metrics-test-app] CPU Usage has exceeded the threshold: Current Value: "
    )
    body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "The CPU Usage has exceeded the threshold:" in body
    assert "Top processes by CPU:" in body and "Top processes by memory:" in body
    seen = len(gunicorn.lines())

    # All three workers have tried the lock: one leads, two stand by. After the email,
    # each stand-by retried twice and the leader sampled twice more.
    def settled() -> bool:
        lines = gunicorn.lines()
        standby = {p for p, m in lines if "stands by" in m}
        lead = leaders(lines)
        later = lines[seen:]
        return (
            len(lead) == 1
            and len(standby) == 2
            and lead[0] not in standby
            and all(count(later, p, "busy, retrying") >= 2 for p in standby)
            and count(later, lead[0], "sampled") >= 2
        )

    gunicorn.wait_until("three workers to settle", settled)
    assert len(smtp_server.raw) == 1, gunicorn.report()
    (leader,) = leaders(gunicorn.lines())

    # The leader dies hard: another worker takes the lock within an interval and continues
    # the same breach (state handed over through the lock file): still one email.
    os.kill(leader, signal.SIGKILL)

    def new_leader() -> int | None:
        others = [p for p in leaders(gunicorn.lines()) if p != leader]
        return others[0] if others else None

    gunicorn.wait_until("another worker to take over", lambda: new_leader() is not None)
    successor = new_leader()
    assert successor is not None
    taken = [m for p, m in gunicorn.lines() if p == successor and " every " in m][0]
    assert f"continuing the state of 1 rule(s) from pid {leader}" in taken
    mark = len(gunicorn.lines())
    gunicorn.wait_until(
        "the new leader to sample twice",
        lambda: count(gunicorn.lines()[mark:], successor, "sampled") >= 2,
    )
    assert len(smtp_server.raw) == 1, gunicorn.report()
    sampling = {p for p, m in gunicorn.lines() if "sampled" in m}
    assert sampling == {leader, successor}
