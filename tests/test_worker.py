"""Delivery: retry backoff (injected clock and wait), flush, shutdown, exit hook, fork safety.

Nothing here sleeps to let time pass: backoff runs on a FakeClock advanced by the injected
``wait``; threads are awaited through ``flush(timeout)``, ``threading.Event``s set by
signals, or joins with a timeout.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_alerting import (
    Alert,
    FlaskAlerting,
    MemoryNotifier,
    Notifier,
    RetryPolicy,
    TransientError,
    alert_dropped,
    alert_failed,
    alert_raised,
    alert_sent,
)
from flask_alerting.delivery import NotifierWorker
from tests.conftest import FakeClock

# -- helpers ----------------------------------------------------------------------------------


class ScriptedNotifier(Notifier):
    """Raises the scripted exceptions in turn, then delivers; records every attempt."""

    name = "scripted"

    def __init__(self, *failures: BaseException, always: BaseException | None = None) -> None:
        self.failures = list(failures)
        self.always = always
        self.attempts = 0
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.attempts += 1
        if self.always is not None:
            raise self.always
        if self.failures:
            raise self.failures.pop(0)
        self.alerts.append(alert)


class GateNotifier(Notifier):
    """Blocks in ``send`` until :attr:`gate` is set; records alerts and ``close``."""

    name = "gate"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.closed = threading.Event()
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.entered.set()
        if not self.gate.wait(30):
            raise RuntimeError("gate never opened")
        self.alerts.append(alert)

    def close(self) -> None:
        self.closed.set()


class ClosingMemoryNotifier(MemoryNotifier):
    def __init__(self) -> None:
        super().__init__()
        self.close_calls = 0

    def close(self) -> None:
        self.close_calls += 1


def alert(title: str = "Disk full") -> Alert:
    return Alert(title=title, labels={"app": "worker-test"})


def quiet_app(name: str) -> Flask:
    """An app whose metrics sampler stays off (it would alert about the real host)."""
    app = Flask(name)
    app.config["ALERTING_METRICS_ENABLED"] = False
    return app


def alive_threads(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def join_threads(prefix: str, timeout: float = 10.0) -> list[threading.Thread]:
    """Join the threads whose name starts with ``prefix``; return those still alive."""
    deadline = time.monotonic() + timeout
    for thread in alive_threads(prefix):
        thread.join(max(0.0, deadline - time.monotonic()))
    return alive_threads(prefix)


@pytest.fixture
def sender() -> Flask:
    return quiet_app("worker-test")


@pytest.fixture
def make_worker(
    sender: Flask, clock: FakeClock
) -> Iterator[Callable[..., tuple[NotifierWorker, list[float]]]]:
    """A NotifierWorker whose backoff waits advance the FakeClock instead of sleeping."""
    made: list[NotifierWorker] = []

    def make(notifier: Notifier, **retry: Any) -> tuple[NotifierWorker, list[float]]:
        waits: list[float] = []

        def wait(seconds: float) -> None:
            waits.append(seconds)
            clock.advance(seconds)

        worker = NotifierWorker(
            notifier,
            sender=sender,
            queue_size=100,
            retry=RetryPolicy(**retry),
            clock=clock,
            wait=wait,
            thread_name="flask-alerting-test-worker",
        )
        made.append(worker)
        return worker, waits

    yield make
    for worker in made:
        worker.stop(2.0)


@pytest.fixture
def failures(sender: Flask) -> Iterator[list[dict[str, Any]]]:
    """Every ``alert_failed`` sent by :func:`sender`, as a list of keyword dicts."""
    seen: list[dict[str, Any]] = []

    def receiver(app: Any, **kwargs: Any) -> None:
        seen.append(kwargs)

    with alert_failed.connected_to(receiver, sender):
        yield seen


# -- RetryPolicy ------------------------------------------------------------------------------


def test_retry_policy_delays_double_and_are_capped() -> None:
    policy = RetryPolicy()
    assert [policy.delay(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert policy.delay(1000) == 60.0  # no overflow for long outages
    custom = RetryPolicy(initial=0.5, factor=3.0, cap=10.0)
    assert [custom.delay(n) for n in range(1, 5)] == [0.5, 1.5, 4.5, 10.0]


def test_retry_policy_gives_up_after_the_retry_period() -> None:
    policy = RetryPolicy(give_up_after=3600.0)
    assert policy.should_retry(100.0, 100.0)
    assert policy.should_retry(100.0, 3699.9)
    assert not policy.should_retry(100.0, 3700.0)
    assert not RetryPolicy(give_up_after=0.0).should_retry(5.0, 5.0)


def test_retry_seconds_sets_the_give_up_period(
    app: Flask, memory: MemoryNotifier, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    make_alerting(app, notifiers=[memory], retry_seconds=600)
    assert app.extensions["alerting"].pipeline.retry == RetryPolicy(give_up_after=600.0)


# -- NotifierWorker: backoff through the injected clock -----------------------------------------


def test_transient_failure_backs_off_exponentially_then_gives_up_once(
    make_worker: Callable[..., tuple[NotifierWorker, list[float]]],
    failures: list[dict[str, Any]],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier = ScriptedNotifier(always=ConnectionRefusedError(111, "Connection refused"))
    worker, waits = make_worker(notifier, give_up_after=3600.0)
    start = clock()
    assert worker.put(alert("SMTP down"))
    assert worker.wait_idle(10.0)

    # 1, 2, 4, ..., 32, then 60 s until an hour has passed since the first failure:
    # 63 s + 58 * 60 s = 3543 s < 3600, one more wait, and the attempt at 3603 s gives up.
    assert waits == [1, 2, 4, 8, 16, 32] + [60] * 59
    assert notifier.attempts == len(waits) + 1 == 66
    assert clock() - start == 3603
    assert [f["will_retry"] for f in failures] == [True] * 65 + [False]
    assert all(isinstance(f["exception"], ConnectionRefusedError) for f in failures)
    assert all(f["notifier"] is notifier and f["alert"].title == "SMTP down" for f in failures)
    assert worker.failed == 1 and worker.sent == 0
    # Logged when it starts failing and when it gives up, not at every attempt.
    lines = [r.getMessage() for r in caplog.records if "'SMTP down'" in r.getMessage()]
    assert len(lines) == 2
    assert "will retry" in lines[0] and "gave up" in lines[1]


def test_shorter_retry_period_gives_up_sooner(
    make_worker: Callable[..., tuple[NotifierWorker, list[float]]],
    failures: list[dict[str, Any]],
) -> None:
    notifier = ScriptedNotifier(always=TimeoutError("timed out"))
    worker, waits = make_worker(notifier, give_up_after=10.0)
    worker.put(alert())
    assert worker.wait_idle(10.0)
    assert waits == [1, 2, 4, 8]  # failures at 0, 1, 3, 7 s retried; at 15 s given up
    assert [f["will_retry"] for f in failures] == [True] * 4 + [False]


def test_transient_errors_are_retried_until_delivered(
    make_worker: Callable[..., tuple[NotifierWorker, list[float]]],
    failures: list[dict[str, Any]],
    sender: Flask,
) -> None:
    notifier = ScriptedNotifier(TransientError("rate limited"), OSError("reset"), TimeoutError())
    worker, waits = make_worker(notifier)
    sent: list[dict[str, Any]] = []

    def on_sent(app: Any, **kwargs: Any) -> None:
        sent.append(kwargs)

    with alert_sent.connected_to(on_sent, sender):
        worker.put(alert("flaky"))
        assert worker.wait_idle(10.0)
    assert waits == [1, 2, 4]
    assert [a.title for a in notifier.alerts] == ["flaky"]  # delivered exactly once
    assert [f["will_retry"] for f in failures] == [True, True, True]
    assert len(sent) == 1 and sent[0]["notifier"] is notifier
    assert worker.sent == 1 and worker.failed == 0


def test_permanent_failure_is_reported_once_and_not_retried(
    make_worker: Callable[..., tuple[NotifierWorker, list[float]]],
    failures: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier = ScriptedNotifier(ValueError("recipient refused"))
    worker, waits = make_worker(notifier)
    worker.put(alert("bad recipient"))
    worker.put(alert("next one"))
    assert worker.wait_idle(10.0)
    assert waits == []
    assert notifier.attempts == 2  # one per alert: the failed one was not tried again
    assert [a.title for a in notifier.alerts] == ["next one"]
    assert len(failures) == 1
    assert failures[0]["will_retry"] is False
    assert isinstance(failures[0]["exception"], ValueError)
    lines = [r.getMessage() for r in caplog.records if "'bad recipient'" in r.getMessage()]
    assert len(lines) == 1 and "permanent failure, not retried" in lines[0]
    assert worker.failed == 1 and worker.sent == 1


def test_after_giving_up_the_next_alert_is_delivered(
    make_worker: Callable[..., tuple[NotifierWorker, list[float]]],
) -> None:
    class RefusesOne(MemoryNotifier):
        def send(self, alert: Alert) -> None:
            if alert.title == "lost":
                raise OSError("down")
            super().send(alert)

    notifier = RefusesOne()
    worker, waits = make_worker(notifier, give_up_after=2.5)
    worker.put(alert("lost"))
    worker.put(alert("later"))
    assert worker.wait_idle(10.0)
    assert waits == [1, 2]  # failed at 0, 1 and 3 s: 3 s >= 2.5 s, given up
    assert [a.title for a in notifier.alerts] == ["later"]
    assert worker.failed == 1 and worker.sent == 1


def test_inline_delivery_tries_once_and_a_stop_meanwhile_stays_stopped(
    make_worker: Callable[..., tuple[NotifierWorker, list[float]]],
    failures: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a thread (Python refuses new ones at exit) the queue is delivered on the
    caller's thread by the same loop, one attempt per alert: a transient failure is
    given up at once, never waited for. A stop() issued meanwhile (the exit hook's
    shutdown) is not undone when the inline delivery ends."""
    holder: list[NotifierWorker] = []

    class StopsTheWorker(ScriptedNotifier):
        def send(self, alert: Alert) -> None:
            if alert.title == "stops":
                holder[0].stop(0)  # what a concurrent shutdown() does
            super().send(alert)

    notifier = StopsTheWorker(TimeoutError("timed out"))
    worker, waits = make_worker(notifier)
    holder.append(worker)

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", refuse)
        assert worker.put(alert("transient"))
        assert worker.put(alert("stops"))
        assert not worker.has_thread
        worker.deliver_inline(time.monotonic() + 10.0)
    assert waits == [] and notifier.attempts == 2
    assert [f["will_retry"] for f in failures] == [False]
    assert [a.title for a in notifier.alerts] == ["stops"]
    # Threads may start again, but the worker was stopped: no thread, nothing sent.
    worker.put(alert("after stop"))
    assert not worker.has_thread
    left, inflight = worker.stop(1.0)
    assert [a.title for a in left] == ["after stop"] and inflight is None
    assert [a.title for a in notifier.alerts] == ["stops"]


# -- flush --------------------------------------------------------------------------------------


@pytest.fixture
def gate(make_alerting: Callable[..., FlaskAlerting]) -> Iterator[GateNotifier]:
    """A blocking notifier; opened in teardown before the extensions are shut down."""
    notifier = GateNotifier()
    yield notifier
    notifier.gate.set()


def test_flush_returns_true_once_everything_is_delivered(
    alerting: FlaskAlerting, memory: MemoryNotifier
) -> None:
    for i in range(20):
        alerting.alert(f"alert {i}")
    assert alerting.flush(timeout=10.0) is True
    assert [a.title for a in memory.alerts] == [f"alert {i}" for i in range(20)]


def test_flush_returns_false_while_a_notifier_is_blocked(
    app: Flask, gate: GateNotifier, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    alerting = make_alerting(app, notifiers=[gate])
    alerting.alert("stuck")
    assert gate.entered.wait(10.0)
    assert alerting.flush(timeout=0.2) is False
    assert gate.alerts == []
    gate.gate.set()
    assert alerting.flush(timeout=10.0) is True
    assert [a.title for a in gate.alerts] == ["stuck"]


def test_flush_with_nothing_raised_is_immediately_true(alerting: FlaskAlerting) -> None:
    assert alerting.flush(timeout=0.0) is True


def test_flush_waits_for_an_alert_being_retried(
    app: Flask, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    notifier = ScriptedNotifier(ConnectionRefusedError(111, "refused"))
    failed = threading.Event()

    def on_failed(sender: Any, **kwargs: Any) -> None:
        failed.set()

    alerting = make_alerting(app, notifiers=[notifier])
    with alert_failed.connected_to(on_failed, app):
        alerting.alert("retried")
        assert failed.wait(10.0)
        assert alerting.flush(timeout=10.0) is True
    assert [a.title for a in notifier.alerts] == ["retried"]
    assert notifier.attempts == 2


# -- digests through the live pipeline ---------------------------------------------------------


def test_digest_leaves_on_its_timer_without_further_traffic(
    app: Flask, memory: MemoryNotifier, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    alerting = make_alerting(app, notifiers=[memory], throttle_seconds=0.2)
    total = 0
    all_in = threading.Event()

    def on_sent(sender: Any, alert: Alert, **kwargs: Any) -> None:
        nonlocal total
        total += alert.occurrences
        if total >= 5:
            all_in.set()

    with alert_sent.connected_to(on_sent, app):
        for _ in range(5):
            alerting.alert("storm")
        # No flush, no more alerts: only the window timer can emit the digest.
        assert all_in.wait(10.0)
    assert memory.alerts[0].occurrences == 1 and not memory.alerts[0].is_digest
    assert len(memory.alerts) >= 2
    assert all(a.is_digest for a in memory.alerts[1:])
    assert sum(a.occurrences for a in memory.alerts) == 5


def test_digest_with_fake_clock_and_flush(
    app: Flask,
    memory: MemoryNotifier,
    clock: FakeClock,
    make_alerting: Callable[..., FlaskAlerting],
) -> None:
    alerting = make_alerting(app, notifiers=[memory], clock=clock, throttle_seconds=60)
    for _ in range(3):
        alerting.alert("storm")
    assert alerting.flush(10.0)
    assert [a.occurrences for a in memory.alerts] == [1]
    clock.advance(59)
    assert alerting.flush(10.0)
    assert len(memory.alerts) == 1
    clock.advance(1)
    assert alerting.flush(10.0)  # window over: flush waits for the digest too
    assert [a.occurrences for a in memory.alerts] == [1, 2]
    assert memory.alerts[1].is_digest


# -- shutdown -----------------------------------------------------------------------------------


def test_shutdown_emits_pending_digests_flushes_stops_and_closes(
    make_alerting: Callable[..., FlaskAlerting], caplog: pytest.LogCaptureFixture
) -> None:
    app = quiet_app("shutdown-ok")
    notifier = ClosingMemoryNotifier()
    alerting = make_alerting(app, notifiers=[notifier], throttle_seconds=300)
    for _ in range(3):
        alerting.alert("storm")
    alerting.alert("single")
    assert alive_threads("flask-alerting-shutdown-ok-")

    assert alerting.shutdown(timeout=10.0) is True
    # The digest only exists because shutdown drained the throttle, and it was delivered
    # before the threads stopped.
    assert [(a.title, a.occurrences) for a in notifier.alerts] == [
        ("storm", 1),
        ("single", 1),
        ("storm", 2),
    ]
    assert notifier.alerts[2].is_digest
    assert notifier.close_calls == 1
    assert join_threads("flask-alerting-shutdown-ok-") == []
    # Idempotent, and a closed pipeline accepts no more work (no thread restarts).
    assert alerting.shutdown(timeout=1.0) is True
    assert notifier.close_calls == 1
    with caplog.at_level(logging.WARNING, logger="flask_alerting"):
        alerting.alert("after shutdown")
        alerting.alert("after shutdown again")
    assert alive_threads("flask-alerting-shutdown-ok-") == []
    assert len(notifier.alerts) == 3
    # Not sent, but never silent: said once, then counted.
    said = [r.getMessage() for r in caplog.records if "after shutdown()" in r.getMessage()]
    assert len(said) == 1
    assert alerting.stats(app)["after_shutdown"] == 2


def test_shutdown_reports_what_it_could_not_deliver_and_is_bounded(
    gate: GateNotifier,
    make_alerting: Callable[..., FlaskAlerting],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = quiet_app("shutdown-blocked")
    # This process's own queues: with a shared store, the outbox would keep the queued
    # alerts for the next process instead (tests/test_outbox.py).
    app.config["ALERTING_STORAGE_URI"] = "memory://"
    memory = ClosingMemoryNotifier()
    alerting = make_alerting(app, notifiers=[gate, memory], shutdown_timeout=0.3)
    dropped: list[tuple[str, str]] = []

    def on_dropped(sender: Any, alert: Alert, reason: str) -> None:
        dropped.append((alert.title, reason))

    memory_done = threading.Event()

    def on_sent(sender: Any, notifier: Notifier, alert: Alert) -> None:
        if notifier is memory and len(memory.alerts) == 3:
            memory_done.set()

    with alert_sent.connected_to(on_sent, app):
        alerting.alert("in flight")
        assert gate.entered.wait(10.0)
        alerting.alert("queued 1")
        alerting.alert("queued 2")
        # The other notifier is not held back by the blocked one.
        assert memory_done.wait(10.0)
    with alert_dropped.connected_to(on_dropped, app):
        started = time.monotonic()
        assert alerting.shutdown() is False  # ALERTING_SHUTDOWN_TIMEOUT = 0.3 s
        elapsed = time.monotonic() - started
    # Bounded by the timeout (plus a small floor per thread); generous margin for load.
    assert elapsed < 5.0
    # The queued ones are lost and said so; the one still being sent may yet arrive, so
    # it is reported as unknown, not as dropped.
    assert sorted(dropped) == [("queued 1", "shutdown"), ("queued 2", "shutdown")]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("2 alert(s) undelivered" in m and "'queued 2'" in m for m in errors)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("still sending 'in flight' at shutdown" in m for m in warnings)
    assert [a.title for a in memory.alerts] == ["in flight", "queued 1", "queued 2"]
    # close() is not called under a send that is still running; the idle one is closed.
    assert not gate.closed.is_set() and memory.close_calls == 1
    # The blocked thread ends as soon as its notifier returns.
    gate.gate.set()
    assert join_threads("flask-alerting-shutdown-blocked-") == []


def test_an_alert_shutdown_could_not_dispatch_is_still_in_the_alert_log(
    make_alerting: Callable[..., FlaskAlerting], tmp_path: Path
) -> None:
    """The alert log holds every raised alert, also one that the shutdown found still
    waiting in the inbound queue (the dispatch thread was busy): it is written there by
    the shutdown, and reported undelivered."""
    app = quiet_app("shutdown-late")
    log = tmp_path / "alerts.log"
    memory = MemoryNotifier()
    alerting = make_alerting(app, notifiers=[memory], shutdown_timeout=0.3, log_file=str(log))
    entered, release = threading.Event(), threading.Event()

    def hold(sender: Any, alert: Alert) -> None:
        if alert.title == "holds the dispatch thread":
            entered.set()
            release.wait(30)

    dropped: list[str] = []

    def on_dropped(sender: Any, alert: Alert, reason: str) -> None:
        dropped.append(alert.title)

    with alert_raised.connected_to(hold, app), alert_dropped.connected_to(on_dropped, app):
        alerting.alert("holds the dispatch thread")
        assert entered.wait(10)
        alerting.alert("waits behind it")
        try:
            assert alerting.shutdown() is False
        finally:
            release.set()
    assert dropped == ["waits behind it"]
    text = log.read_text(encoding="utf-8")
    assert ":WARNING:waits behind it" in text
    # The dispatch thread, held past the shutdown's wait, still ends after its item.
    assert join_threads("flask-alerting-shutdown-late-") == []


# -- exit hook ----------------------------------------------------------------------------------

EXIT_SCRIPT = textwrap.dedent(
    """
    import sys

    from flask import Flask

    from flask_alerting import FlaskAlerting, Notifier


    class FileNotifier(Notifier):
        name = "file"

        def send(self, alert):
            with open(sys.argv[1], "a", encoding="utf-8") as f:
                f.write(f"{alert.title}|{alert.occurrences}\\n")


    app = Flask("exit-demo")
    alerting = FlaskAlerting(
        app, notifiers=[FileNotifier()], throttle_seconds=300, metrics_enabled=False
    )
    for _ in range(3):
        alerting.alert("storm")
    alerting.alert("last words")
    # No flush(), no shutdown(): the exit hook must deliver, digest included.
    """
)


def test_exit_hook_flushes_and_emits_digests(tmp_path: Path) -> None:
    script = tmp_path / "exit_demo.py"
    script.write_text(EXIT_SCRIPT, encoding="utf-8")
    out = tmp_path / "delivered.txt"
    proc = subprocess.run(
        [sys.executable, str(script), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text(encoding="utf-8").splitlines() == [
        "storm|1",
        "last words|1",
        "storm|2",  # a pending digest only shutdown() emits
    ]


# -- fork safety --------------------------------------------------------------------------------


class PidFileNotifier(Notifier):
    """Writes ``pid title`` lines; in the parent process, blocks on alerts titled 'block'."""

    name = "pidfile"

    def __init__(self, path: Path, parent: int) -> None:
        self.path = path
        self.parent = parent
        self.gate = threading.Event()
        self.entered = threading.Event()

    def send(self, alert: Alert) -> None:
        if os.getpid() == self.parent and alert.title.startswith("block"):
            self.entered.set()
            if not self.gate.wait(30):
                raise RuntimeError("gate never opened")
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {alert.title}\n")


def lines_by_pid(path: Path) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            pid, _, title = line.partition(" ")
            out.setdefault(int(pid), []).append(title)
    return out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_gets_its_own_threads_and_never_resends_the_parent_queue(
    tmp_path: Path, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    app = quiet_app("fork-test")
    path = tmp_path / "delivered.txt"
    parent = os.getpid()
    notifier = PidFileNotifier(path, parent)
    alerting = make_alerting(app, notifiers=[notifier], throttle_seconds=0)
    try:
        alerting.alert("block: in flight")
        assert notifier.entered.wait(10.0)
        alerting.alert("parent queued")  # waits behind the blocked send at fork time

        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            code = 1
            try:
                os.close(read_fd)
                alerting.alert("child alert")
                flushed = alerting.flush(timeout=10.0)
                threads = sorted(t.name for t in alive_threads("flask-alerting-fork-test-"))
                os.write(write_fd, f"{flushed} {','.join(threads)}".encode())
                code = 0
            finally:
                os._exit(code)

        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            report = pipe.read().decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        flushed, _, threads = report.partition(" ")
        assert flushed == "True"
        # The child ran its own dispatch and notifier threads...
        assert "flask-alerting-fork-test-dispatch" in threads.split(",")
        assert "flask-alerting-fork-test-pidfile-0" in threads.split(",")
        # ...delivered its own alert, and nothing of the parent's queue.
        assert lines_by_pid(path) == {pid: ["child alert"]}
    finally:
        notifier.gate.set()
    # The parent is unaffected: its alerts are delivered by the parent, once each.
    assert alerting.flush(timeout=10.0) is True
    assert lines_by_pid(path) == {
        pid: ["child alert"],
        parent: ["block: in flight", "parent queued"],
    }
