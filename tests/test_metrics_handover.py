"""Rule states handed from one real process to the next through the lock file, and what
``flask alerting status`` says about the process that samples: real processes
(``tests/rule_app.py``), a real SMTP server, a real ``flask`` command.

- A "resolved" alert only follows a "firing" one that was delivered, or is sure to be
  (recorded in the durable outbox of a shared store), by this process or by the one
  whose state it continues, for the same rule definition (threshold).
- One incident, one "firing" alert: a process that takes over never fires again for a
  breach whose "firing" alert the outbox holds (the process that recovers the record
  delivers it).
- The states of a process that was killed or stopped are never shown as current.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psutil
import pytest

from flask_alerting.metrics.status import process_state
from flask_alerting.store import SQLiteStore
from tests.smtp_server import SMTPServer, free_port

ROOT = Path(__file__).resolve().parent.parent
INTERVAL = 0.1


def wait_until(predicate: Callable[[], bool], what: str, log: Path, timeout: float = 30.0) -> None:
    """Poll ``predicate`` (a condition, not a guess at a duration) until it holds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            text = log.read_text() if log.exists() else "(no log)"
            raise AssertionError(f"timed out waiting for {what}; log:\n{text}")
        pause.wait(0.05)


class RuleApp:
    """``python -m tests.rule_app`` processes sharing one lock file, value file and log."""

    def __init__(self, tmp_path: Path) -> None:
        self.lock = tmp_path / "metrics.lock"
        self.value = tmp_path / "value"
        self.log = tmp_path / "alerting.log"
        #: The store of the processes (with its durable outbox): SQLite, as the default
        #: store is, but under tmp_path. The default file is one per host and app name,
        #: which every run of these tests on the host would share: a record that one
        #: run's killed process left would be delivered by another run's.
        self.store = tmp_path / "store.sqlite3"
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(
        self,
        threshold: float,
        smtp_port: int | None,
        interval: float,
        storage: str | None = None,
    ) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "FA_"))}
        env.update(
            FA_LOG=str(self.log),
            FA_LOCK=str(self.lock),
            FA_VALUE=str(self.value),
            FA_THRESHOLD=str(threshold),
            FA_INTERVAL=str(interval),
            PYTHONPATH=str(ROOT),
        )
        if smtp_port is not None:
            env["FA_SMTP_PORT"] = str(smtp_port)
        env["FA_STORAGE"] = storage or f"sqlite:///{self.store}"
        return env

    def set(self, value: float) -> None:
        tmp = self.value.with_suffix(".tmp")
        tmp.write_text(str(value))
        tmp.replace(self.value)  # the probe never reads half a number

    def start(
        self,
        *,
        threshold: float = 100.0,
        smtp_port: int | None = None,
        storage: str | None = None,
    ) -> int:
        """Start a process; ``storage``: its ``ALERTING_STORAGE_URI`` (None: the SQLite
        store :attr:`store`, shared by every process of the test)."""
        output = open(self.tmp_path / f"out-{len(self.procs)}", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.rule_app"],
            cwd=ROOT,
            env=self.env(threshold, smtp_port, INTERVAL, storage),
            stdin=subprocess.PIPE,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        output.close()
        self.procs.append(proc)
        return proc.pid

    def proc(self, pid: int) -> subprocess.Popen[bytes]:
        return next(p for p in self.procs if p.pid == pid)

    def stop(self, pid: int) -> None:
        """Close its standard input: it shuts down (pending alerts leave) and exits 0."""
        proc = self.proc(pid)
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(30) == 0, self.log.read_text()

    def kill(self, pid: int) -> None:
        proc = self.proc(pid)
        proc.kill()  # SIGKILL: nothing of it runs any more
        proc.wait(30)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
            if proc.stdin is not None:
                proc.stdin.close()

    def record(self) -> dict[str, Any] | None:
        try:
            text = self.lock.read_text()
        except FileNotFoundError:
            return None
        return json.loads(text) if text.strip() else None

    def rule(self, pid: int) -> dict[str, Any] | None:
        """The recorded state of ``queue-depth`` when process ``pid`` wrote the record."""
        record = self.record()
        if record is None or record["pid"] != pid:
            return None
        rule: dict[str, Any] = record["rules"]["queue-depth"]
        return rule

    def lines(self, pid: int) -> list[str]:
        out = []
        for line in self.log.read_text().splitlines() if self.log.exists() else []:
            who, _, message = line.partition(" ")
            if who == str(pid):
                out.append(message)
        return out

    def wait_outbox_empty(self, what: str) -> None:
        """Wait until the outbox of :attr:`store` holds no record."""
        store = SQLiteStore(str(self.store), timeout=10.0)
        try:
            wait_until(lambda: not store.outbox_records(), what, self.log)
        finally:
            store.close()

    def wait_rule(self, pid: int, what: str, **expected: Any) -> None:
        def holds() -> bool:
            rule = self.rule(pid)
            return rule is not None and all(rule.get(k) == v for k, v in expected.items())

        wait_until(holds, f"pid {pid} to record {what} ({expected})", self.log)


@pytest.fixture
def rule_app(tmp_path: Path) -> Any:
    app = RuleApp(tmp_path)
    yield app
    app.close()


def _kind(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    if "is back under the threshold" in text:
        return "resolved"
    assert "has exceeded the threshold" in text, text
    return "firing"


def _raised_by(message: EmailMessage) -> int:
    body = message.get_body(("plain",))
    assert body is not None
    found = re.search(r"Raised by: pid (\d+)", body.get_content())
    assert found, body.get_content()
    return int(found.group(1))


# -- a "resolved" alert only for a delivered "firing" one -------------------------------------


def test_killed_after_its_alert_was_delivered_the_next_process_resolves_it(
    rule_app: RuleApp, smtp_server: SMTPServer
) -> None:
    rule_app.set(150.0)
    first = rule_app.start(smtp_port=smtp_server.port)
    [fired] = smtp_server.wait_for(1, timeout=30)
    assert (_kind(fired), _raised_by(fired)) == ("firing", first)
    # the delivery is recorded at once (the alert_sent signal), for whoever comes next
    rule_app.wait_rule(first, "the delivery", state="firing", notice="sent")
    # and settled in the outbox: a kill between the send and that write would have the
    # next process deliver the alert once more, recovered (docs/delivery.rst says so)
    rule_app.wait_outbox_empty("the delivered alert's record to be deleted")
    rule_app.kill(first)

    rule_app.set(10.0)
    second = rule_app.start(smtp_port=smtp_server.port)
    messages = smtp_server.wait_for(2, timeout=30)
    assert [(_kind(m), _raised_by(m)) for m in messages] == [
        ("firing", first),
        ("resolved", second),  # continued, not fired again: one incident, closed
    ]
    assert any(f"continuing the state of 1 rule(s) from pid {first}" in line
               for line in rule_app.lines(second))  # fmt: skip
    rule_app.stop(second)
    assert len(smtp_server.messages) == 2


def _recovered(message: EmailMessage) -> bool:
    """Whether ``message`` was delivered from the outbox by another process than the one
    that raised it (docs/delivery.rst, "The durable outbox")."""
    return "(recovered)" in message["Subject"]


@pytest.mark.parametrize("breach", ["goes on", "ended"])
def test_killed_before_its_alert_left_the_next_process_does_not_continue_firing(
    rule_app: RuleApp, smtp_server: SMTPServer, breach: str
) -> None:
    """``memory://``, no outbox: a "firing" alert that had not left dies with the process
    that raised it. The next one continues the breach, not the notification: it fires
    again if the breach goes on, and ends it without a "resolved" alert if not."""
    rule_app.set(150.0)
    nowhere = free_port()  # nothing listens there: the first process's e-mail never leaves
    first = rule_app.start(smtp_port=nowhere, storage="memory://")
    rule_app.wait_rule(first, "the firing", state="firing", notice="queued")
    wait_until(
        lambda: any("could not deliver" in line for line in rule_app.lines(first)),
        "the first delivery attempt to fail",
        rule_app.log,
    )
    rule_app.kill(first)

    rule_app.set(150.0 if breach == "goes on" else 10.0)
    second = rule_app.start(smtp_port=smtp_server.port, storage="memory://")
    if breach == "goes on":
        # the alert nobody received leaves now, from the process that took over
        [fired] = smtp_server.wait_for(1, timeout=30)
        assert (_kind(fired), _raised_by(fired)) == ("firing", second)
        rule_app.wait_rule(second, "the delivery", state="firing", notice="sent")
    else:
        rule_app.wait_rule(second, "the end of the breach", state="ok", value=10.0)
    rule_app.stop(second)  # flushes: whatever it raised has left
    assert len(smtp_server.messages) == (1 if breach == "goes on" else 0)  # no "resolved"
    [dropped] = [line for line in rule_app.lines(second) if "does not continue" in line]
    assert f"recorded by pid {first}" in dropped
    assert "'firing' alert was never confirmed delivered" in dropped


@pytest.mark.parametrize("breach", ["goes on", "ended"])
def test_killed_with_its_alert_in_the_outbox_the_next_process_continues_firing(
    rule_app: RuleApp, smtp_server: SMTPServer, breach: str
) -> None:
    """A SQLite store shared by the processes (as the default store is) has a durable
    outbox. Until the outbox existed, a process killed before its "firing" alert left
    took that alert with it, and the next process fired again (the test above, which
    ``memory://`` keeps). Now the alert is recorded before any delivery: the next process
    of the store delivers it, marked as recovered. Firing again as well would say the
    same breach twice, and ending it quietly would leave a delivered "firing" alert
    unresolved. So the first process records "recorded" in the lock file once the
    outbox holds its alert, and the process that takes over continues "firing" from
    there: one "firing" alert in all (the recovered one), and one "resolved" alert when
    the value drops, from the process that samples then."""
    rule_app.set(150.0)
    nowhere = free_port()  # nothing listens there: the first process's e-mail never leaves
    first = rule_app.start(smtp_port=nowhere)
    rule_app.wait_rule(first, "the firing alert in the outbox", state="firing",
                       notice="recorded")  # fmt: skip
    wait_until(
        lambda: any("could not deliver" in line for line in rule_app.lines(first)),
        "the first delivery attempt to fail",
        rule_app.log,
    )
    rule_app.kill(first)

    rule_app.set(150.0 if breach == "goes on" else 10.0)
    second = rule_app.start(smtp_port=smtp_server.port)
    if breach == "goes on":
        # the first process's alert, recovered from the outbox...
        [fired] = smtp_server.wait_for(1, timeout=30)
        assert (_kind(fired), _raised_by(fired), _recovered(fired)) == ("firing", first, True)
        # ...and the breach continued by the second one, which samples it still firing
        # (a "firing" alert of its own would leave with that sample, and be counted below)
        rule_app.wait_rule(second, "a sample of the breach", state="firing", value=150.0)
        rule_app.set(10.0)
    smtp_server.wait_for(2, timeout=30)
    rule_app.stop(second)  # flushes: whatever it raised has left
    # The recovered "firing" alert and the "resolved" one come from two processes' queues:
    # their order is not what this test is about.
    assert sorted((_kind(m), _raised_by(m), _recovered(m)) for m in smtp_server.messages) == [
        ("firing", first, True),
        ("resolved", second, False),
    ]
    lines = rule_app.lines(second)
    assert any(f"continuing the state of 1 rule(s) from pid {first}" in line for line in lines)
    assert not [line for line in lines if "does not continue" in line]


@pytest.mark.parametrize("threshold", [100.0, 200.0], ids=["same-threshold", "new-threshold"])
def test_a_restart_resolves_a_delivered_breach_only_under_the_same_threshold(
    rule_app: RuleApp, smtp_server: SMTPServer, threshold: float
) -> None:
    rule_app.set(150.0)
    first = rule_app.start(threshold=100.0, smtp_port=smtp_server.port)
    smtp_server.wait_for(1, timeout=30)
    rule_app.wait_rule(first, "the delivery", state="firing", notice="sent")
    rule_app.stop(first)  # a full restart: the app stops...

    if threshold == 100.0:
        rule_app.set(10.0)  # ...and the breach ends meanwhile
    # With 200 the value (150) is below the new threshold and under its resolve point
    # (190): continuing the old "firing" state would resolve it against a threshold that
    # never fired.
    second = rule_app.start(threshold=threshold, smtp_port=smtp_server.port)
    rule_app.wait_rule(second, "its first sample", state="ok")
    rule_app.stop(second)
    kinds = [(_kind(m), _raised_by(m)) for m in smtp_server.messages]
    if threshold == 100.0:
        assert kinds == [("firing", first), ("resolved", second)]
    else:
        assert kinds == [("firing", first)]
        [dropped] = [line for line in rule_app.lines(second) if "does not continue" in line]
        assert "the rule changed since (it was > 100, it is > 200)" in dropped


# -- flask alerting status, against real processes ----------------------------------------


def _status(rule_app: RuleApp) -> list[str]:
    """``flask alerting status`` in a process of its own. Its own sampler would only try
    the lock after an hour: it reads, never samples."""
    env = rule_app.env(100.0, None, 3600.0)
    script = Path(sys.executable).with_name("flask")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "flask"]
    result = subprocess.run(
        [*command, "--app", "tests.rule_app", "alerting", "status"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def _metric_lines(lines: list[str]) -> tuple[str, list[str]]:
    [header] = [line for line in lines if line.startswith("Metric rules: ")]
    [row] = [line for line in lines if line.startswith("  queue-depth ")]
    return header, row


def shape(line: str) -> str:
    """A status line with its rule name, numbers, units, durations and lock path made
    generic."""
    line = re.sub(r"\(lock [^,)]+", "(lock LOCK", line)
    line = re.sub(r"^ +[a-z-]+ ", "RULE ", line)
    line = re.sub(r"\d+(\.\d+)?( %)?", "N", line)
    line = re.sub(r"(N (d|h|min) )?N (d|h|min|s) ago|just now", "AGO", line)
    return " ".join(line.split())


def documented_shapes() -> set[str]:
    text = (ROOT / "docs" / "cli.rst").read_text(encoding="utf-8")
    return {shape(line) for line in text.splitlines() if line.startswith("    ")}


def test_status_tells_a_live_a_stopped_and_a_killed_sampling_process_apart(
    rule_app: RuleApp,
) -> None:
    lock = re.escape(str(rule_app.lock))
    rule_app.set(150.0)
    pid = rule_app.start()
    rule_app.wait_rule(pid, "the firing", state="firing")

    header, row = _metric_lines(_status(rule_app))
    assert re.fullmatch(
        rf"Metric rules: sampled every 0\.1 s by pid {pid}, last sample (just now|\d+ s ago) "
        rf"\(lock {lock}, held\)",
        header,
    ), header
    assert row.split()[:5] == ["queue-depth", "firing", "150", "100", "95"]
    shapes = [shape(header)]

    # Stopped (SIGSTOP): it still holds the lock, and its last sample is recent.
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, "SIGSTOP",
                   rule_app.log)  # fmt: skip
        header, row = _metric_lines(_status(rule_app))
    finally:
        os.kill(pid, signal.SIGCONT)
    assert re.fullmatch(
        rf"Metric rules: last sampled (just now|\d+ s ago) by pid {pid}, which is stopped: "
        rf"states below are not current \(lock {lock}, held\)",
        header,
    ), header
    assert row.split() == ["queue-depth", "unknown", "-", "100", "95", "0", "s", "-",
                           "last", "sample:", "firing,", "150"]  # fmt: skip

    rule_app.kill(pid)
    assert process_state(pid, None) == "not running"
    header, row = _metric_lines(_status(rule_app))
    assert re.fullmatch(
        rf"Metric rules: last sampled (just now|\d+ s ago) by pid {pid}, which is not "
        rf"running: states below are not current \(lock {lock}, free\)",
        header,
    ), header
    assert row.split()[1:3] == ["unknown", "-"]
    assert row.split()[-3:] == ["sample:", "firing,", "150"]
    shapes += [shape(header), shape(row)]

    # docs/cli.rst shows these lines as the command prints them
    assert set(shapes) <= documented_shapes(), shapes
