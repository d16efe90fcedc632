"""The metrics sampler: sampling steps with a fake clock, the lock election, the thread,
fork, the Werkzeug reloader, and the extension's wiring (add_rule, rule_states, check)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_alerting import Alert, ConfigurationError, FlaskAlerting, MemoryNotifier
from flask_alerting._flask import in_reloader_parent
from flask_alerting.metrics.election import default_lock_path
from flask_alerting.metrics.machine import RuleMachine
from flask_alerting.metrics.processes import ProcessInfo, ProcessTable
from flask_alerting.metrics.reading import ERROR_LOG_INTERVAL
from flask_alerting.metrics.rules import Rule
from flask_alerting.metrics.sampler import Sampler
from tests.conftest import FakeClock
from tests.forking import wait_child
from tests.smtp_server import SMTPServer, free_port

ROOT = Path(__file__).resolve().parent.parent
Make = Callable[..., FlaskAlerting]


class Series:
    """A probe returning preset values, then repeating the last one."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        if len(self.values) > 1:
            return self.values.pop(0)
        return self.values[0]


class Primed:
    """A probe with a measurement window, like CPU percent."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.primes = 0
        self.reads = 0

    def prime(self) -> None:
        self.primes += 1

    def __call__(self) -> float:
        self.reads += 1
        return self.value


@pytest.fixture
def samplers() -> Iterator[Callable[..., Sampler]]:
    made: list[Sampler] = []

    def make(rules: list[Rule], **kwargs: Any) -> Sampler:
        kwargs.setdefault("name", "testapp")
        kwargs.setdefault("submit", lambda alert: None)
        kwargs.setdefault("labels", {"app": "testapp", "host": "h"})
        kwargs.setdefault("interval", 5.0)
        kwargs.setdefault("lock_path", None)
        sampler = Sampler(rules=rules, **kwargs)
        made.append(sampler)
        return sampler

    yield make
    for sampler in made:
        sampler.stop()


def rule(name: str, probe: Callable[[], float], **kwargs: Any) -> Rule:
    kwargs.setdefault("threshold", 80.0)
    kwargs.setdefault("for_", 0.0)
    kwargs.setdefault("hysteresis", 5.0)
    return Rule(name=name, probe=probe, **kwargs)


# -- one step at a time, fake clock -----------------------------------------------------------


def test_samples_submit_firing_and_resolved(
    samplers: Callable[..., Sampler], clock: FakeClock
) -> None:
    sent: list[Alert] = []
    probe = Series(50.0, 90.0, 95.0, 96.0, 78.0, 70.0)
    sampler = samplers([rule("load", probe, for_=10.0)], submit=sent.append, clock=clock)
    for _ in range(6):
        assert sampler.tick()
        clock.advance(5.0)
    assert [(a.status, a.value) for a in sent] == [("firing", 96.0), ("resolved", 70.0)]
    assert all(a.kind == "metric" and a.labels["metric"] == "load" for a in sent)
    assert sent[0].labels["host"] == "h" and sent[0].labels["app"] == "testapp"
    assert probe.calls == 6


def test_primed_probe_is_read_one_interval_after_priming(
    samplers: Callable[..., Sampler], clock: FakeClock
) -> None:
    probe = Primed(99.0)
    sent: list[Alert] = []
    sampler = samplers([rule("cpu", probe)], submit=sent.append, clock=clock)
    sampler.tick()
    assert (probe.primes, probe.reads, sent) == (1, 0, [])
    clock.advance(5.0)
    sampler.tick()
    assert (probe.primes, probe.reads, len(sent)) == (1, 1, 1)


def test_raising_probe_is_logged_and_others_go_on(
    samplers: Callable[..., Sampler], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> float:
        raise OSError("sensor unplugged")

    sent: list[Alert] = []
    sampler = samplers(
        [rule("broken", broken), rule("fine", Series(90.0))], submit=sent.append, clock=clock
    )
    with caplog.at_level(logging.ERROR, logger="flask_alerting"):
        for _ in range(3):
            sampler.tick()
            clock.advance(5.0)
    errors = [r for r in caplog.records if "probe of metric rule 'broken'" in r.getMessage()]
    assert len(errors) == 1  # not once per sample
    assert "OSError: sensor unplugged" in errors[0].getMessage()
    assert [a.labels["metric"] for a in sent] == ["fine"]
    status = {s.name: s for s in sampler.status()}
    assert status["broken"].error == "OSError: sensor unplugged"
    assert status["broken"].state == "ok"
    caplog.clear()
    clock.advance(ERROR_LOG_INTERVAL)
    with caplog.at_level(logging.ERROR, logger="flask_alerting"):
        sampler.tick()
    assert len([r for r in caplog.records if "'broken'" in r.getMessage()]) == 1


@pytest.mark.parametrize("bad", [lambda: "high", lambda: None, lambda: float("nan")])
def test_non_numbers_are_probe_errors(
    samplers: Callable[..., Sampler], clock: FakeClock, bad: Callable[[], Any]
) -> None:
    sampler = samplers([rule("odd", bad)], clock=clock)
    sampler.tick()
    assert sampler.status()[0].error is not None


def test_top_processes_measured_over_the_pending_period(
    samplers: Callable[..., Sampler], clock: FakeClock
) -> None:
    rows = [ProcessInfo(7, "hog", 10.0, 5 * 1048576, 0.5, 1.0)]
    table_clock = FakeClock(0.0)
    table = ProcessTable(lister=lambda: list(rows), clock=table_clock)
    sent: list[Alert] = []
    sampler = samplers(
        [rule("cpu", Series(90.0), for_=10.0, display_name="CPU Usage")],
        submit=sent.append,
        clock=clock,
        processes=table,
        top_window=0.0,
    )
    sampler.tick()  # pending: the baseline is taken
    assert table.baseline_time == 0.0
    table_clock.advance(10.0)
    rows[0] = ProcessInfo(7, "hog", 19.5, 5 * 1048576, 0.5, 1.0)
    clock.advance(10.0)
    sampler.tick()  # firing
    (alert,) = sent
    lines = alert.message.splitlines()
    row = lines[lines.index("Top processes by CPU:") + 2].split()
    assert row == ["7", "95.0", "0.5", "hog"]
    assert "Top processes by memory:" in lines


def test_flapping_value_does_not_list_processes_at_every_sample(
    samplers: Callable[..., Sampler], clock: FakeClock
) -> None:
    listed: list[int] = []

    def lister() -> list[ProcessInfo]:
        listed.append(1)
        return []

    table = ProcessTable(lister=lister, clock=clock)
    sampler = samplers(
        [rule("cpu", Series(*[81.0, 79.0] * 20), for_=30.0)], clock=clock, processes=table
    )
    for _ in range(40):  # 200 s of ok -> pending -> ok -> ...
        sampler.tick()
        clock.advance(5.0)
    # one baseline per for_ + 3 intervals (45 s) at most, not one per pending spell (20)
    assert 1 <= len(listed) <= 200 // 45 + 1


def test_firing_on_first_sample_measures_top_over_a_short_window(
    samplers: Callable[..., Sampler], clock: FakeClock
) -> None:
    baselines: list[float] = []
    cpu = [0.0]

    def lister() -> list[ProcessInfo]:
        cpu[0] += 0.01
        return [ProcessInfo(1, "x", cpu[0], 1, 0.0, 1.0)]

    table = ProcessTable(lister=lister)
    original = table.baseline

    def baseline() -> None:
        baselines.append(time.monotonic())
        original()

    table.baseline = baseline  # type: ignore[method-assign]
    sent: list[Alert] = []
    sampler = samplers(
        [rule("cpu", Series(90.0))],
        submit=sent.append,
        clock=clock,
        processes=table,
        top_window=0.01,
    )
    sampler.tick()
    assert len(baselines) == 1 and len(sent) == 1
    assert "Top processes by CPU:" in sent[0].message


# -- election through the lock file -----------------------------------------------------------


def test_one_process_samples_the_other_stands_by_and_takes_over(
    samplers: Callable[..., Sampler], clock: FakeClock, tmp_path: Path
) -> None:
    """Two samplers on one lock file (separate open files: like two processes)."""
    lock = str(tmp_path / "metrics.lock")
    sent_a: list[Alert] = []
    sent_b: list[Alert] = []
    probe_a, probe_b = Series(90.0), Series(90.0)
    a = samplers([rule("cpu", probe_a)], submit=sent_a.append, lock_path=lock, clock=clock)
    b = samplers([rule("cpu", probe_b)], submit=sent_b.append, lock_path=lock, clock=clock)
    assert a.tick() and a.leader
    assert not b.tick() and not b.leader
    clock.advance(5.0)
    assert a.tick() and not b.tick()
    assert probe_b.calls == 0
    assert [x.status for x in sent_a] == ["firing"]
    a.delivered(sent_a[0])  # a notifier delivered it (the alert_sent signal)

    # the stand-by sees the leader's states through the lock file
    (seen,) = b.status()
    assert (seen.state, seen.value) == ("firing", 90.0)

    a.stop()  # a worker exits (or dies: the kernel drops its lock the same way)
    clock.advance(5.0)
    assert b.tick() and b.leader
    # the breach continues under the new leader: no second "firing"
    assert sent_b == []
    probe_b.values = [10.0]
    clock.advance(5.0)
    b.tick()
    assert [x.status for x in sent_b] == ["resolved"]


def test_stale_state_is_not_continued(
    samplers: Callable[..., Sampler], clock: FakeClock, tmp_path: Path
) -> None:
    lock = str(tmp_path / "metrics.lock")
    a = samplers([rule("cpu", Series(90.0))], lock_path=lock, clock=clock)
    a.tick()
    a.stop()
    clock.advance(3600.0)  # nobody sampled for an hour
    sent: list[Alert] = []
    b = samplers([rule("cpu", Series(90.0))], submit=sent.append, lock_path=lock, clock=clock)
    b.tick()
    assert [x.status for x in sent] == ["firing"]


def _record(lock: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(lock.read_text())
    return data


@pytest.mark.parametrize("breach", ["goes on", "ended"])
def test_a_firing_never_confirmed_delivered_is_not_continued(
    samplers: Callable[..., Sampler],
    clock: FakeClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    breach: str,
) -> None:
    """The first sampler fired, but no notifier confirmed the alert before it went away
    (killed with the e-mail in its queue): nobody may have heard of the breach."""
    lock = tmp_path / "metrics.lock"
    sent_a: list[Alert] = []
    a = samplers([rule("cpu", Series(90.0))], submit=sent_a.append, lock_path=str(lock),
                 clock=clock)  # fmt: skip
    assert a.tick() and [x.status for x in sent_a] == ["firing"]
    assert _record(lock)["rules"]["cpu"]["notice"] == "queued"
    a.stop()
    sent_b: list[Alert] = []
    value = 90.0 if breach == "goes on" else 10.0
    b = samplers([rule("cpu", Series(value))], submit=sent_b.append, lock_path=str(lock),
                 clock=clock)  # fmt: skip
    clock.advance(5.0)
    with caplog.at_level(logging.INFO, logger="flask_alerting"):
        assert b.tick() and b.leader
    # goes on: the alert that may never have left leaves now; ended: nothing at all
    assert [x.status for x in sent_b] == (["firing"] if breach == "goes on" else [])
    [dropped] = [r.getMessage() for r in caplog.records if "does not continue" in r.getMessage()]
    assert f"recorded by pid {os.getpid()}" in dropped and "never confirmed delivered" in dropped
    assert all(r.levelno == logging.INFO for r in caplog.records if "does not" in r.getMessage())


@pytest.mark.parametrize("breach", ["goes on", "ended"])
def test_a_firing_recorded_in_the_outbox_is_continued(
    samplers: Callable[..., Sampler],
    clock: FakeClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    breach: str,
) -> None:
    """The first sampler's "firing" alert was recorded in the outbox of a shared store
    before it went away: whoever takes the record over delivers it, so the next sampler
    neither fires again nor keeps the breach's end quiet."""
    lock = tmp_path / "metrics.lock"
    sent_a: list[Alert] = []
    a = samplers([rule("cpu", Series(90.0))], submit=sent_a.append, lock_path=str(lock),
                 clock=clock)  # fmt: skip
    assert a.tick() and [x.status for x in sent_a] == ["firing"]
    a.in_outbox(sent_a[0])  # alert_recorded: written into the lock file at once
    assert _record(lock)["rules"]["cpu"]["notice"] == "recorded"
    a.stop()
    sent_b: list[Alert] = []
    value = 90.0 if breach == "goes on" else 10.0
    b = samplers([rule("cpu", Series(value))], submit=sent_b.append, lock_path=str(lock),
                 clock=clock)  # fmt: skip
    clock.advance(5.0)
    with caplog.at_level(logging.INFO, logger="flask_alerting"):
        assert b.tick() and b.leader
    assert [x.status for x in sent_b] == ([] if breach == "goes on" else ["resolved"])
    assert "continuing the state of 1 rule(s)" in caplog.text
    assert "does not continue" not in caplog.text


def test_what_becomes_of_a_firing_alert_is_written_into_the_lock_file_at_once(
    samplers: Callable[..., Sampler], clock: FakeClock, tmp_path: Path
) -> None:
    lock = tmp_path / "metrics.lock"
    ticks = iter(range(100))

    def wall_clock() -> datetime:
        return datetime(2024, 5, 1, 12, 0, next(ticks), tzinfo=timezone.utc)

    sent: list[Alert] = []
    sampler = samplers([rule("cpu", Series(90.0), repeat_seconds=10.0)], submit=sent.append,
                       lock_path=str(lock), clock=clock, wall_clock=wall_clock)  # fmt: skip
    sampler.tick()
    clock.advance(10.0)
    sampler.tick()
    firing, reminder = sent
    assert (firing.status, reminder.status) == ("firing", "firing")
    sampler.in_outbox(firing)
    assert _record(lock)["rules"]["cpu"]["notice"] == "recorded"
    sampler.lost(reminder)  # a lost reminder: the "firing" alert went its own way
    assert _record(lock)["rules"]["cpu"]["notice"] == "recorded"
    sampler.lost(firing)  # dropped by its notifier's full queue: nobody will deliver it
    assert _record(lock)["rules"]["cpu"]["notice"] is None


@pytest.mark.parametrize(
    ("threshold", "value", "expected"),
    [(95.0, 87.0, []), (80.0, 10.0, ["resolved"])],
    ids=["new-threshold", "same-threshold"],
)
def test_a_changed_threshold_does_not_resolve_the_old_breach(
    samplers: Callable[..., Sampler],
    clock: FakeClock,
    tmp_path: Path,
    threshold: float,
    value: float,
    expected: list[str],
) -> None:
    lock = tmp_path / "metrics.lock"
    sent_a: list[Alert] = []
    a = samplers([rule("cpu", Series(90.0))], submit=sent_a.append, lock_path=str(lock),
                 clock=clock)  # fmt: skip
    a.tick()
    a.delivered(sent_a[0])
    assert _record(lock)["rules"]["cpu"]["notice"] == "sent"
    a.stop()  # restarted with another configuration
    sent_b: list[Alert] = []
    b = samplers([rule("cpu", Series(value), threshold=threshold)], submit=sent_b.append,
                 lock_path=str(lock), clock=clock)  # fmt: skip
    clock.advance(5.0)
    assert b.tick()
    # 87 is under the resolve point of a breach of 95 (90): only the rule that fired
    # may resolve, and the new threshold never fired
    assert [x.status for x in sent_b] == expected


def test_a_firing_alert_dropped_by_the_pipeline_resolves_quietly(
    samplers: Callable[..., Sampler], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[Alert] = []
    probe = Series(90.0, 10.0)
    sampler = samplers([rule("cpu", probe)], submit=sent.append, clock=clock)
    sampler.tick()
    sampler.lost(sent[0])  # alert_dropped: the queue was full
    clock.advance(5.0)
    with caplog.at_level(logging.INFO, logger="flask_alerting"):
        sampler.tick()
    assert [x.status for x in sent] == ["firing"]
    assert "no 'resolved' alert, as its 'firing' alert was never delivered" in caplog.text


def test_a_late_delivery_of_an_earlier_breach_confirms_nothing(
    samplers: Callable[..., Sampler], clock: FakeClock, tmp_path: Path
) -> None:
    lock = tmp_path / "metrics.lock"
    ticks = iter(range(100))

    def wall_clock() -> datetime:
        return datetime(2024, 5, 1, 12, 0, next(ticks), tzinfo=timezone.utc)

    sent: list[Alert] = []
    sampler = samplers([rule("cpu", Series(90.0, 10.0, 90.0))], submit=sent.append,
                       lock_path=str(lock), clock=clock, wall_clock=wall_clock)  # fmt: skip
    for _ in range(3):
        sampler.tick()
        clock.advance(5.0)
    first, resolved, second = sent
    assert [x.status for x in sent] == ["firing", "resolved", "firing"]
    sampler.delivered(resolved)  # a "resolved" alert confirms no breach
    sampler.delivered(first)  # the earlier breach's, delivered late
    assert _record(lock)["rules"]["cpu"]["notice"] == "queued"
    sampler.delivered(second)
    assert _record(lock)["rules"]["cpu"]["notice"] == "sent"


def test_deliveries_are_heard_through_the_signals(
    app: Flask, make_alerting: Make, tmp_path: Path, clock: FakeClock
) -> None:
    class Broken(MemoryNotifier):
        name = "broken"

        def send(self, alert: Alert) -> None:
            raise ValueError("refused")  # permanent: never retried

    for notifiers, notice in (([Broken()], "queued"), ([Broken(), MemoryNotifier()], "sent")):
        lock = tmp_path / f"{notice}.lock"
        each = Flask(f"app-{notice}")
        each.config.update(app.config, ALERTING_METRICS_LOCK_FILE=str(lock),
                           ALERTING_METRICS_FOR=0, ALERTING_MEMORY_THRESHOLD=None)  # fmt: skip
        alerting = make_alerting(each, notifiers=notifiers, clock=clock)
        alerting.add_rule("queue-depth", lambda: 150.0, threshold=100)
        sampler = alerting._get_state(each).sampler  # not started: ALERTING_METRICS_ENABLED
        assert sampler.tick()
        with each.app_context():
            assert alerting.flush(10)
        # delivered by one notifier of two: someone was told
        assert _record(lock)["rules"]["queue-depth"]["notice"] == notice


@pytest.mark.parametrize("storage", ["sqlite", "memory"])
def test_a_firing_alert_in_the_outbox_is_heard_through_its_signal(
    make_alerting: Make, tmp_path: Path, clock: FakeClock, storage: str
) -> None:
    """With a shared store, the lock file says "recorded" before any notifier has the
    alert (the outbox recorded it); with ``memory://`` it stays "queued" until a
    delivery."""

    class Gate(MemoryNotifier):
        def __init__(self) -> None:
            super().__init__()
            self.entered = threading.Event()
            self.gate = threading.Event()

        def send(self, alert: Alert) -> None:
            self.entered.set()
            assert self.gate.wait(30), "the gate never opened"
            super().send(alert)

    lock = tmp_path / "metrics.lock"
    uri = f"sqlite:///{tmp_path / 'store.sqlite3'}" if storage == "sqlite" else "memory://"
    app = Flask(f"app-{storage}")
    app.config.update(ALERTING_METRICS_ENABLED=False, ALERTING_METRICS_LOCK_FILE=str(lock),
                      ALERTING_METRICS_FOR=0, ALERTING_CPU_THRESHOLD=None,
                      ALERTING_MEMORY_THRESHOLD=None, ALERTING_STORAGE_URI=uri)  # fmt: skip
    gate = Gate()
    alerting = make_alerting(app, notifiers=[gate], clock=clock)
    alerting.add_rule("queue-depth", lambda: 150.0, threshold=100)
    sampler = alerting._get_state(app).sampler  # not started: ALERTING_METRICS_ENABLED
    try:
        assert sampler.tick()
        assert gate.entered.wait(10)  # the notifier has it, and holds it
        expected = "recorded" if storage == "sqlite" else "queued"
        assert _record(lock)["rules"]["queue-depth"]["notice"] == expected
    finally:
        gate.gate.set()
    with app.app_context():
        assert alerting.flush(10)
    assert _record(lock)["rules"]["queue-depth"]["notice"] == "sent"


def test_sampling_status_is_current_only_while_a_live_holder_samples(
    samplers: Callable[..., Sampler], clock: FakeClock, tmp_path: Path
) -> None:
    lock = str(tmp_path / "metrics.lock")
    a = samplers([rule("cpu", Series(90.0))], lock_path=lock, clock=clock)
    b = samplers([rule("cpu", Series(90.0))], lock_path=lock, clock=clock)
    nothing = b.sampling()
    assert (nothing.current, nothing.reason, nothing.pid, nothing.lock_held) == (
        False,
        "recorded no sample",
        None,
        False,
    )
    assert [(r.state, r.note) for r in nothing.rules] == [("unknown", "never sampled")]

    assert a.tick()
    own = a.sampling()
    assert (own.this_process, own.current, own.lock_held) == (True, True, True)
    assert own.pid == os.getpid()
    assert own.last_sample_age == 0.0 and [r.state for r in own.rules] == ["firing"]
    clock.advance(2.0)
    seen = b.sampling()  # another process (an open file of its own) reads the record
    assert (seen.this_process, seen.current, seen.reason) == (False, True, None)
    assert (seen.pid, seen.process, seen.lock_held, seen.interval) == (
        os.getpid(),
        "running",
        True,
        5.0,
    )
    assert seen.last_sample_age == 2.0 and not seen.standing_by
    assert [(r.state, r.current, r.value) for r in seen.rules] == [("firing", True, 90.0)]
    assert not b.tick() and b.sampling().standing_by

    # the holder stops sampling (a hung probe, a frozen thread): 3 intervals + 5 s
    clock.advance(3 * 5.0 + 5.0 - 2.0)
    assert b.sampling().current and a.sampling().current
    clock.advance(0.5)
    for status in (b.sampling(), a.sampling()):
        assert not status.current
        assert status.reason == "has not sampled since (every 5 s expected)"
        [cpu] = status.rules
        assert (cpu.state, cpu.current, cpu.last_state, cpu.since) == (
            "unknown",
            False,
            "firing",
            None,
        )
    assert b.sampling().rules[0].note == (
        "not current: the sampling process has not sampled since (every 5 s expected)"
    )
    assert a.tick()
    assert b.sampling().current

    a.stop()  # gives the lock back: nobody samples now
    gone = b.sampling()
    assert (gone.current, gone.reason, gone.lock_held) == (False, "released the lock", False)
    assert [r.state for r in gone.rules] == ["unknown"]
    assert (a.sampling().current, a.sampling().reason) == (False, "released the lock")


def test_own_sampling_status_without_a_lock_file(
    samplers: Callable[..., Sampler], clock: FakeClock
) -> None:
    sampler = samplers([rule("cpu", Series(10.0))], clock=clock)  # lock_path None
    first = sampler.sampling()
    assert (first.this_process, first.current, first.reason) == (True, False, "recorded no sample")
    assert first.lock_path is None and first.lock_held is None
    sampler.tick()
    assert sampler.sampling().current
    sampler.stop()
    stopped = sampler.sampling()
    assert (stopped.current, stopped.reason) == (False, "is stopped")
    assert stopped.rules[0].note == "not current: the sampler of this process is stopped"


def test_lock_file_holds_readable_state(
    samplers: Callable[..., Sampler], clock: FakeClock, tmp_path: Path
) -> None:
    lock = tmp_path / "metrics.lock"
    a = samplers([rule("cpu", Series(42.0))], lock_path=str(lock), clock=clock)
    a.tick()
    data = json.loads(lock.read_text())
    assert data["pid"] == os.getpid()
    assert data["rules"]["cpu"]["value"] == 42.0 and data["rules"]["cpu"]["state"] == "ok"


def test_state_followed_by_stale_bytes_is_still_continued(
    samplers: Callable[..., Sampler], clock: FakeClock, tmp_path: Path
) -> None:
    """A writer killed between writing a shorter state and truncating the file (as an
    earlier version could be) leaves the end of the longer one behind it."""
    lock = tmp_path / "metrics.lock"
    sent_a: list[Alert] = []
    a = samplers(
        [rule("cpu", Series(90.0))], submit=sent_a.append, lock_path=str(lock), clock=clock
    )
    assert a.tick() and [x.status for x in sent_a] == ["firing"]
    a.delivered(sent_a[0])
    a.stop()
    lock.write_bytes(lock.read_bytes().rstrip() + b'"value":12.5}},"pid":99}\n')
    sent_b: list[Alert] = []
    b = samplers(
        [rule("cpu", Series(91.0))], submit=sent_b.append, lock_path=str(lock), clock=clock
    )
    (seen,) = b.status()  # a stand-by reads it (not current: a released the lock)...
    assert (seen.last_state, seen.value, seen.state) == ("firing", 90.0, "unknown")
    clock.advance(5.0)
    assert b.tick() and b.leader
    assert sent_b == []  # ...and the next leader continues the breach: no second "firing"


def test_shorter_state_leaves_one_json_document(
    samplers: Callable[..., Sampler], clock: FakeClock, tmp_path: Path
) -> None:
    lock = tmp_path / "metrics.lock"

    def probe() -> float:
        if clock.now < 1010.0:
            raise OSError("the sensor is unplugged " * 20)  # a long error in the state
        return 42.0

    sampler = samplers([rule("cpu", probe)], lock_path=str(lock), clock=clock)
    sampler.tick()
    long_size = lock.stat().st_size
    assert "unplugged" in lock.read_text()
    clock.advance(20.0)
    sampler.tick()
    data = json.loads(lock.read_text())  # trailing spaces only: one document
    assert data["rules"]["cpu"]["value"] == 42.0 and data["rules"]["cpu"]["error"] is None
    assert lock.stat().st_size == long_size  # overwritten in place, never truncated


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
@pytest.mark.parametrize("target_exists", [True, False])
def test_lock_path_that_is_a_symlink_is_never_followed(
    samplers: Callable[..., Sampler],
    clock: FakeClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    target_exists: bool,
) -> None:
    """Someone else's link at the predictable path must not make us write through it."""
    victim = tmp_path / "victim.txt"
    if target_exists:
        victim.write_text("precious\n")
    lock = tmp_path / "metrics.lock"
    lock.symlink_to(victim)
    sent: list[Alert] = []
    sampler = samplers(
        [rule("cpu", Series(90.0))], submit=sent.append, lock_path=str(lock), clock=clock
    )
    with caplog.at_level(logging.WARNING, logger="flask_alerting"):
        assert sampler.tick()  # samples without the lock, as for any unusable lock file
        clock.advance(5.0)
        assert sampler.tick()
    [record] = [r for r in caplog.records if "symbolic link" in r.getMessage()]
    assert record.levelno == logging.ERROR and str(lock) in record.getMessage()
    assert [x.status for x in sent] == ["firing"]
    assert lock.is_symlink()
    if target_exists:
        assert victim.read_text() == "precious\n"
    else:
        assert not victim.exists()


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_configured_lock_file_that_is_a_symlink_is_a_configuration_error(
    app: Flask, make_alerting: Make, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "metrics.lock").symlink_to(victim)
    app.config.update(metrics_config(tmp_path))
    with pytest.raises(ConfigurationError, match="ALERTING_METRICS_LOCK_FILE.*symbolic link"):
        make_alerting(app, notifiers=[MemoryNotifier()])
    assert victim.read_text() == "precious\n"


def test_unopenable_lock_file_samples_anyway_with_a_warning(
    samplers: Callable[..., Sampler],
    clock: FakeClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lock = str(tmp_path / "no-such-dir" / "metrics.lock")
    sampler = samplers([rule("cpu", Series(1.0))], lock_path=lock, clock=clock)
    with caplog.at_level(logging.WARNING, logger="flask_alerting"):
        assert sampler.tick()
    assert "cannot open the metrics lock file" in caplog.text


def test_default_lock_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = default_lock_path("my app/1")
    assert os.path.dirname(path) == str(tmp_path)
    assert "my_app_1" in os.path.basename(path) and path.endswith(".lock")
    assert default_lock_path("my app/1") == path  # keyed by app name, stable
    assert default_lock_path("other") != path
    # Else a directory of ours in the temp dir (made 0700 when the lock is first taken):
    # the temp dir itself is open to every local user (tests/test_hostile.py).
    import tempfile

    private = os.path.join(tempfile.gettempdir(), f"flask-alerting-{os.geteuid()}")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    assert os.path.dirname(default_lock_path("x")) == private
    open_to_others = tmp_path / "runtime"
    open_to_others.mkdir(mode=0o755)
    open_to_others.chmod(0o755)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(open_to_others))
    assert os.path.dirname(default_lock_path("x")) == private


# -- Werkzeug reloader ------------------------------------------------------------------------


def test_reloader_parent_retires_and_releases_the_lock(
    samplers: Callable[..., Sampler], clock: FakeClock, tmp_path: Path
) -> None:
    lock = str(tmp_path / "metrics.lock")
    parent_flag = [False]
    probe = Series(90.0)
    parent = samplers(
        [rule("cpu", probe)], lock_path=lock, clock=clock, reloader_parent=lambda: parent_flag[0]
    )
    child = samplers([rule("cpu", Series(90.0))], lock_path=lock, clock=clock)
    # slow start: the parent took the lock before it entered the reloader loop ...
    assert parent.tick()
    assert not child.tick()
    # ... it sees it at its next tick, and hands over
    parent_flag[0] = True
    assert not parent.tick() and parent.retired
    assert probe.calls == 1
    assert child.tick() and child.leader


def test_not_a_reloader_parent_here() -> None:
    assert not in_reloader_parent()


# -- the thread -------------------------------------------------------------------------------


def test_thread_samples_and_stop_is_instant(samplers: Callable[..., Sampler]) -> None:
    called = threading.Event()

    def probe() -> float:
        called.set()
        return 1.0

    sampler = samplers([rule("p", probe)], interval=0.01)
    sampler.start()
    assert called.wait(10)
    thread = sampler._thread
    assert thread is not None and thread.daemon
    assert thread.name == "flask-alerting-testapp-metrics"
    sampler.start()  # idempotent
    assert sampler._thread is thread

    slow = samplers([rule("q", probe)], interval=3600.0)
    slow.start()
    assert slow.running
    # An hour-long interval: only an event wait lets stop() return before the join times out.
    slow.stop(timeout=5.0)
    assert not slow.running
    slow.start()  # a stopped sampler stays stopped
    assert not slow.running


def test_thread_survives_a_raising_probe(samplers: Callable[..., Sampler]) -> None:
    calls = []
    again = threading.Event()

    def flaky() -> float:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first call fails")
        again.set()
        return 1.0

    sampler = samplers([rule("flaky", flaky)], interval=0.01)
    sampler.start()
    assert again.wait(10)
    assert sampler.running


def test_thread_primes_at_start_so_the_first_sample_is_real(
    samplers: Callable[..., Sampler],
) -> None:
    read = threading.Event()

    class Probe(Primed):
        def __call__(self) -> float:
            value = super().__call__()
            read.set()
            return value

    probe = Probe(1.0)
    sampler = samplers([rule("cpu", probe)], interval=0.01)
    sampler.start()
    assert read.wait(10)
    # primed once at thread start; the first sample already reads it
    assert probe.primes == 1


EXIT_SCRIPT = """
import atexit, sys, threading

state = {}

def last_hook():  # registered first, so it runs after flask-alerting's own hooks
    sampler = state["sampler"]
    print("sampler stopped:", not sampler.running and sampler.closed)
    print("pipeline closed:", state["pipeline"].closed)
    print("sampler stopped before the pipeline shut down:", state["order"])
    print("threads left:", sorted(t.name for t in threading.enumerate()
                                  if t.name.startswith("flask-alerting")))

atexit.register(last_hook)

from flask import Flask
from flask_alerting import FlaskAlerting, MemoryNotifier

app = Flask("exiting")
app.config.update(ALERTING_METRICS_INTERVAL=3600, ALERTING_METRICS_LOCK_FILE=sys.argv[1])
FlaskAlerting(app, notifiers=[MemoryNotifier()])
state["sampler"] = app.extensions["alerting"].sampler
state["pipeline"] = pipeline = app.extensions["alerting"].pipeline
shutdown = pipeline.shutdown

def watched_shutdown(*args, **kwargs):
    state["order"] = state["sampler"].closed
    return shutdown(*args, **kwargs)

pipeline.shutdown = watched_shutdown
print("running:", state["sampler"].running)
"""


def test_thread_ends_at_exit_before_the_pipeline_closes(tmp_path: Path) -> None:
    """The interpreter exits at once (hour-long interval), the exit hooks stop the sampler
    first, then the delivery pipeline."""
    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, str(tmp_path / "metrics.lock")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "running: True",
        "sampler stopped: True",
        "pipeline closed: True",
        "sampler stopped before the pipeline shut down: True",
        "threads left: []",
    ], done.stderr
    assert done.stderr == ""


# -- fork -------------------------------------------------------------------------------------




@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_gets_a_working_sampler_even_mid_sample(
    samplers: Callable[..., Sampler], tmp_path: Path
) -> None:
    """Fork while the parent's thread is inside a probe, holding the host lock."""
    parent_pid = os.getpid()
    inside = threading.Event()
    release = threading.Event()
    child_sampled = threading.Event()

    def probe() -> float:
        if os.getpid() != parent_pid:
            child_sampled.set()
            return 1.0
        inside.set()
        release.wait(10)
        return 1.0

    sampler = samplers([rule("p", probe)], interval=0.02, lock_path=str(tmp_path / "metrics.lock"))
    sampler.start()
    assert inside.wait(10)
    parent_thread = sampler._thread
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads: that is the point.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            report = {
                "new_thread": sampler._thread is not None
                and sampler._thread is not parent_thread
                and sampler.running,
                "leader_at_fork": sampler.leader,
                "sampled": child_sampled.wait(20),
                "leader_after": sampler.leader,
            }
            os.write(write_end, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        release.set()
        # The parent's worker goes away (stops): the child must take over the host lock.
        sampler.stop()
        exit_code = wait_child(pid, 30)
        assert exit_code == 0, "the child hung or failed"
        report = json.loads(os.read(read_end, 4096))
    finally:
        os.close(read_end)
    assert report == {
        "new_thread": True,  # its own thread, not the parent's dead one
        "leader_at_fork": False,  # never believes it holds the parent's lock
        "sampled": True,  # and it samples once the parent let go: no deadlock
        "leader_after": True,
    }


# -- the extension ----------------------------------------------------------------------------


def metrics_config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "ALERTING_METRICS_LOCK_FILE": str(tmp_path / "metrics.lock"),
        "ALERTING_METRICS_FOR": 0,
        **extra,
    }


def test_metrics_default_off_under_testing_on_otherwise(
    make_alerting: Make, tmp_path: Path
) -> None:
    testing = Flask("t1")
    testing.testing = True
    testing.config.update(metrics_config(tmp_path))
    make_alerting(testing, notifiers=[MemoryNotifier()])
    assert not testing.extensions["alerting"].sampler.running

    production = Flask("t2")
    production.config.update(metrics_config(tmp_path, ALERTING_METRICS_INTERVAL=3600))
    alerting = make_alerting(production, notifiers=[MemoryNotifier()])
    sampler = production.extensions["alerting"].sampler
    assert sampler.running
    assert sampler._thread.name == "flask-alerting-t2-metrics"
    alerting.shutdown()
    assert not sampler.running


def test_builtin_rules_from_config(make_alerting: Make, app: Flask, tmp_path: Path) -> None:
    app.config.update(metrics_config(tmp_path))
    alerting = make_alerting(app, notifiers=[MemoryNotifier()])
    assert [s.name for s in alerting.rule_states()] == ["cpu", "memory"]

    other = Flask("all-rules")
    other.config.update(
        ALERTING_METRICS_ENABLED=False,
        ALERTING_CPU_THRESHOLD=None,
        ALERTING_DISK_PATH=str(tmp_path),
        ALERTING_DISK_THRESHOLD=90,
        ALERTING_SWAP_THRESHOLD=50,
        ALERTING_RSS_THRESHOLD=1024,
        ALERTING_LOAD_THRESHOLD=1.5,
        ALERTING_METRICS_HYSTERESIS=10,
        ALERTING_METRICS_LOCK_FILE=str(tmp_path / "other.lock"),
    )
    alerting = make_alerting(other, notifiers=[MemoryNotifier()])
    states = {s.name: s for s in alerting.rule_states(other)}
    assert list(states) == ["memory", "disk", "swap", "rss", "load"]
    assert states["disk"].display_name == f"Disk Usage of {tmp_path}"
    assert states["swap"].resolve_below == 40.0  # points for percentages
    assert states["rss"].resolve_below == pytest.approx(1024 * 0.9)  # percent of threshold
    assert states["load"].resolve_below == pytest.approx(1.35)
    results = {r.name: r for r in alerting.check(other, window=0.05)}
    assert set(results) == set(states)
    assert all(r.error is None and r.value is not None for r in results.values())
    assert (results["rss"].value or 0.0) > 1.0  # MiB of this very process


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ALERTING_DISK_PATH", "/no/such/path"),
        ("ALERTING_DISK_THRESHOLD", 101),
        ("ALERTING_SWAP_THRESHOLD", -1),
        ("ALERTING_RSS_THRESHOLD", 0),
        ("ALERTING_LOAD_THRESHOLD", "many"),
        ("ALERTING_CPU_THRESHOLD", 120),
        ("ALERTING_METRICS_LOCK_FILE", 12),
        ("ALERTING_METRICS_INTERVAL", 0),
    ],
)
def test_bad_metrics_config(app: Flask, make_alerting: Make, key: str, value: Any) -> None:
    app.config[key] = value
    with pytest.raises(ConfigurationError, match=key):
        make_alerting(app)


def test_low_thresholds_resolve_with_the_default_hysteresis(
    make_alerting: Make, app: Flask, memory: MemoryNotifier, clock: FakeClock, tmp_path: Path
) -> None:
    """ALERTING_METRICS_HYSTERESIS (5) taken as 5 points made threshold=1 resolve below -4
    and ALERTING_CPU_THRESHOLD=3 below -2: firing for ever. A value of 0 must resolve."""
    app.config.update(metrics_config(tmp_path, ALERTING_CPU_THRESHOLD=3))
    alerting = make_alerting(app, notifiers=[memory], clock=clock)  # no startup error
    alerting.add_rule("error-rate", lambda: 0.0, threshold=1.0)
    alerting.add_rule("queue-depth", lambda: 0.0, threshold=200.0)
    states = {s.name: s for s in alerting.rule_states()}
    assert states["cpu"].resolve_below == 1.5  # points, at most half the threshold
    assert states["memory"].resolve_below == 75.0  # points, as configured
    assert states["error-rate"].resolve_below == pytest.approx(0.95)  # percent of threshold
    assert states["queue-depth"].resolve_below == pytest.approx(190.0)
    rules = {r.name: r for r in app.extensions["alerting"].sampler.rules}
    for name, breach in (("cpu", 4.0), ("error-rate", 2.0), ("queue-depth", 250.0)):
        machine = RuleMachine(rules[name], clock)
        assert machine.observe(breach) is not None and machine.state == "firing"
        clock.advance(5.0)
        event = machine.observe(0.0)
        assert event is not None and event.kind == "resolved", name
    with pytest.raises(ValueError, match="hysteresis of rule 'too-wide'"):
        alerting.add_rule("too-wide", lambda: 0.0, threshold=1.0, hysteresis=5.0)


def test_add_rule_before_and_after_init_app(
    make_alerting: Make, app: Flask, memory: MemoryNotifier, clock: FakeClock, tmp_path: Path
) -> None:
    app.config.update(metrics_config(tmp_path))
    alerting = make_alerting(notifiers=[memory], clock=clock, metrics_for=0)
    depth = Series(150.0, 150.0, 20.0)
    alerting.add_rule("queue-depth", depth, threshold=100.0, hysteresis=10.0, severity="error")
    alerting.init_app(app)
    alerting.add_rule("late", lambda: 1.0, threshold=5.0, display_name="Late Rule")
    with pytest.raises(ValueError, match="already exists"):
        alerting.add_rule("queue-depth", lambda: 1.0)
    with pytest.raises(ValueError, match="already exists"):
        alerting.add_rule("cpu", lambda: 1.0)  # a built-in one
    with pytest.raises(ValueError):
        alerting.add_rule("bad", lambda: 1.0, for_=-1)
    sampler = app.extensions["alerting"].sampler
    assert [r.name for r in sampler.rules] == ["cpu", "memory", "queue-depth", "late"]
    for _ in range(3):
        sampler.tick()
        clock.advance(5.0)
    assert alerting.flush(timeout=10.0)
    depth_alerts = [a for a in memory.alerts if a.labels.get("metric") == "queue-depth"]
    assert [(a.status, a.value, a.severity) for a in depth_alerts] == [
        ("firing", 150.0, "error"),
        ("resolved", 20.0, "error"),
    ]
    assert depth_alerts[0].title == (
        "queue-depth has exceeded the threshold: Current Value: 150.0, Threshold: 100.0"
    )
    states = {s.name: s for s in alerting.rule_states()}
    assert states["queue-depth"].state == "ok" and states["queue-depth"].value == 20.0
    assert states["late"].display_name == "Late Rule"


def test_rule_names_are_unique_in_a_sampler_and_across_apps(
    samplers: Callable[..., Sampler], make_alerting: Make, tmp_path: Path
) -> None:
    """One check (``rules.check_new_name``) behind every way a rule is added."""
    with pytest.raises(ValueError, match="'a' already exists"):
        samplers([rule("a", Series(1.0)), rule("a", Series(2.0))])
    sampler = samplers([rule("a", Series(1.0))])
    with pytest.raises(ValueError, match="'a' already exists"):
        sampler.add(rule("a", Series(2.0)))
    assert [r.name for r in sampler.rules] == ["a"]

    # add_rule before any app: names checked among the rules of add_rule
    alerting = make_alerting(notifiers=[MemoryNotifier()])
    alerting.add_rule("queue", lambda: 1.0)
    with pytest.raises(ValueError, match="'queue' already exists"):
        alerting.add_rule("queue", lambda: 2.0)
    # ... and against the built-in rules when an app is initialised
    clash = make_alerting(notifiers=[MemoryNotifier()])
    clash.add_rule("memory", lambda: 1.0)
    with pytest.raises(ValueError, match="'memory' already exists"):
        clash.init_app(Flask("clash"))

    # across apps: one app has a "disk" rule, the other not; all apps or none get it
    def config(name: str, **extra: Any) -> dict[str, Any]:
        return {
            **metrics_config(tmp_path, **extra),
            "ALERTING_METRICS_LOCK_FILE": str(tmp_path / f"{name}.lock"),
            "ALERTING_METRICS_ENABLED": False,  # no thread: rules are only looked at
        }

    plain, with_disk = Flask("plain"), Flask("with-disk")
    plain.config.update(config("plain"))
    with_disk.config.update(config("with-disk", ALERTING_DISK_THRESHOLD=90))
    alerting.init_app(plain)
    alerting.init_app(with_disk)
    with pytest.raises(ValueError, match="'disk' already exists"):
        alerting.add_rule("disk", lambda: 1.0)
    assert [r.name for r in plain.extensions["alerting"].sampler.rules] == [
        "cpu",
        "memory",
        "queue",
    ]
    later = Flask("later")
    later.config.update(config("later"))
    alerting.init_app(later)  # the refused rule is not given to later apps either
    assert [r.name for r in later.extensions["alerting"].sampler.rules] == [
        "cpu",
        "memory",
        "queue",
    ]


def test_check_samples_once_and_reports(make_alerting: Make, app: Flask, tmp_path: Path) -> None:
    app.config.update(metrics_config(tmp_path))
    alerting = make_alerting(app, notifiers=[MemoryNotifier()])

    def broken() -> float:
        raise RuntimeError("no backend")

    alerting.add_rule("high", lambda: 7.0, threshold=5.0)
    alerting.add_rule("low", lambda: 3.0, threshold=5.0)
    alerting.add_rule("broken", broken, threshold=5.0)
    results = {r.name: r for r in alerting.check(window=0.05)}
    name, value, threshold, breached, error = results["high"]
    assert (name, value, threshold, breached, error) == ("high", 7.0, 5.0, True, None)
    assert results["low"].breached is False
    assert results["broken"].value is None and results["broken"].error == (
        "RuntimeError: no backend"
    )
    assert 0.0 <= results["cpu"].value <= 100.0  # type: ignore[operator]
    # check() changes no state
    assert {(s.state, s.note) for s in alerting.rule_states()} == {("unknown", "never sampled")}
    assert all(s.value is None for s in alerting.rule_states())


def test_metric_alert_email_through_the_thread(
    make_alerting: Make, smtp_config: dict[str, Any], smtp_server: SMTPServer, tmp_path: Path
) -> None:
    """The whole way: sampler thread -> rule -> pipeline -> real SMTP server."""
    app = Flask("mailer")
    app.config.update(
        smtp_config,
        **metrics_config(
            tmp_path,
            ALERTING_CPU_THRESHOLD=None,
            ALERTING_MEMORY_THRESHOLD=None,
            ALERTING_METRICS_INTERVAL=0.05,
        ),
    )
    alerting = make_alerting(app)
    alerting.add_rule("temperature", lambda: 93.1, threshold=80.0, display_name="Temperature")
    (message,) = smtp_server.wait_for(1)
    assert message["Subject"] == (
        "[mailer] Temperature has exceeded the threshold: Current Value: 93.1, Threshold: 80.0"
    )
    body = message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert body.startswith(
        "The Temperature has exceeded the threshold:\n\nCurrent Value: 93.1\nThreshold: 80.0"
    )
    assert "Host: " in body and "Top processes by CPU:" in body


# -- a real Werkzeug reloader -----------------------------------------------------------------


def _read_log(path: Path) -> list[tuple[int, str]]:
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        pid, _, message = line.partition(" ")
        if pid.isdigit():
            lines.append((int(pid), message))
    return lines


def _wait_until(predicate: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            text = log.read_text() if log.exists() else "(no log)"
            raise AssertionError(f"timed out waiting for {what}; log:\n{text}")
        event.wait(0.05)


@pytest.mark.parametrize(
    "how",
    [
        "app.run(use_reloader=True)",
        "FLASK_DEBUG=1 app.run()",  # the reloader chosen by Flask, from the environment
        "flask run --debug",
    ],
)
def test_only_the_reloader_child_samples(tmp_path: Path, how: str) -> None:
    # The sampler recognises the reloader's parent by itself, however the reloader was
    # asked for; nothing wraps app.run.
    log = tmp_path / "alerting.log"
    port = free_port()
    env = {
        **os.environ,
        "FA_LOG": str(log),
        "FA_LOCK": str(tmp_path / "metrics.lock"),
        "FA_INTERVAL": "1.0",
        "FA_PORT": str(port),
        "PYTHONPATH": str(ROOT),
    }
    for name in ("WERKZEUG_RUN_MAIN", "WERKZEUG_SERVER_FD", "FLASK_DEBUG", "FLASK_RUN_FROM_CLI"):
        env.pop(name, None)
    command = [sys.executable, "-m", "tests.metrics_app"]
    if how == "FLASK_DEBUG=1 app.run()":
        env.update(FLASK_DEBUG="1", FA_RELOADER="from-flask-debug")
    elif how == "flask run --debug":
        command = [
            sys.executable, "-m", "flask", "--app", "tests.metrics_app",
            "run", "--debug", "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
    output = open(tmp_path / "server.out", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def child_sampled_twice() -> bool:
            lines = _read_log(log)
            return sum(1 for p, m in lines if p != proc.pid and "sampled" in m) >= 2

        _wait_until(child_sampled_twice, 30, "the child to sample", log)
        _wait_until(
            lambda: any(p == proc.pid and "reloader's parent" in m for p, m in _read_log(log)),
            30,
            "the parent to retire",
            log,
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            serving_pid = int(response.read())
        lines = _read_log(log)
        samplers = {p for p, m in lines if "sampled" in m}
        assert samplers == {serving_pid}
        assert serving_pid != proc.pid
        # the parent never took the lock (its retirement line says "samples" too)
        assert not [m for p, m in lines if p == proc.pid and " every " in m]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        output.close()
