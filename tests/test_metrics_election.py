"""The election (``metrics/election.py``) and the recorded rule states
(``metrics/shared.py``) on their own, without a sampler. Two :class:`Election` objects
on one path hold two open files, as two processes would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from flask_alerting.metrics.election import Election
from flask_alerting.metrics.machine import RuleMachine
from flask_alerting.metrics.rules import Rule
from flask_alerting.metrics.shared import CONTINUE_WITHIN, SharedStates
from tests.conftest import FakeClock


@pytest.fixture
def elections(tmp_path: Path) -> Iterator[list[Election]]:
    made = [
        Election(str(tmp_path / "metrics.lock"), app_name="app", interval=5.0) for _ in range(2)
    ]
    yield made
    for election in made:
        election.release()


def test_one_election_holds_the_lock_until_it_releases(elections: list[Election]) -> None:
    a, b = elections
    assert a.elect() and a.locked and a.leader
    assert not b.elect() and not b.locked and not b.leader
    assert not b.elect()  # retried: still busy
    a.release()
    assert a.fd is None and not a.leader
    assert b.elect() and b.locked


def test_only_the_holder_writes_and_a_shorter_write_is_padded(
    elections: list[Election], tmp_path: Path
) -> None:
    a, b = elections
    assert a.elect() and not b.elect()
    b.write(b"forged\n")  # not the holder: nothing happens
    assert (tmp_path / "metrics.lock").read_bytes() == b""
    a.write(b"x" * 40 + b"\n")
    a.write(b"short\n")
    raw = (tmp_path / "metrics.lock").read_bytes()
    assert raw == b"short\n" + b" " * 35  # one write, never truncated
    assert a.read() == raw  # through the held file
    assert b.peek() == raw  # opened anew, as `flask alerting status` does


def test_no_path_means_no_election() -> None:
    election = Election(None, app_name="app", interval=5.0)
    assert election.leader and not election.locked
    election.write(b"ignored")
    election.release()
    assert election.leader


RULE = Rule(name="cpu", probe=lambda: 0.0, threshold=80.0, hysteresis=5.0)


def machines(clock: FakeClock) -> list[RuleMachine]:
    machine = RuleMachine(RULE, clock)
    machine.observe(95.0)  # firing (for_ = 0)
    assert machine.confirm()  # and its alert delivered
    return [machine]


def test_a_record_is_continued_by_the_next_sampler(clock: FakeClock) -> None:
    shared = SharedStates(clock, interval=5.0)
    raw = shared.encode(4242, machines(clock))
    assert json.loads(raw)["pid"] == 4242
    clock.advance(5.0)
    recorded = shared.decode(raw + b"stale tail of an older record}")
    assert recorded is not None and recorded.pid == 4242
    fresh = [RuleMachine(RULE, clock)]
    assert recorded.restore(fresh) == 1 and fresh[0].state == "firing"
    (status,) = recorded.statuses([RULE], clock)
    assert (status.state, status.value) == ("firing", 95.0)


def test_records_of_another_boot_stale_or_malformed_are_ignored(clock: FakeClock) -> None:
    shared = SharedStates(clock, interval=5.0)
    raw = shared.encode(1, machines(clock))
    other_boot = SharedStates(clock, interval=5.0)
    other_boot.boot = (shared.boot or 0.0) - 3600.0
    assert other_boot.decode(raw) is None
    clock.advance(3 * 5.0 + CONTINUE_WITHIN + 1)
    assert shared.decode(raw) is None  # nobody wrote for too long
    for bad in (None, b"", b"   ", b"not json", b"[]", b'{"rules": []}'):
        assert shared.decode(bad) is None


# -- telling whether the lock is held, without taking part ------------------------------------


def test_held_tells_without_electing_anyone(elections: list[Election], tmp_path: Path) -> None:
    a, b = elections
    assert b.held() is False  # no file yet: nobody
    assert not (tmp_path / "metrics.lock").exists()  # and none created by asking
    assert a.elect()
    assert b.held() is True
    assert b.held() is True and not b.leader and b.fd is None  # asked twice, never elected
    a.release()
    assert b.held() is False
    # the test gave its shared lock back: the next process is elected at once
    assert b.elect() and b.locked
    assert a.held() is True


def test_standing_by_is_said_after_a_busy_try(elections: list[Election]) -> None:
    a, b = elections
    assert not b.standing_by
    assert a.elect() and not b.elect()
    assert b.standing_by and not a.standing_by
    a.release()
    assert b.elect() and not b.standing_by


# -- the record: readable at any age, continued only while fresh ------------------------------


def test_a_record_names_its_writer_and_last_sample(clock: FakeClock) -> None:
    shared = SharedStates(clock, interval=5.0)
    raw = shared.encode(4242, machines(clock), started=1234.5, sampled=clock() - 1.0)
    clock.advance(3 * 5.0 + CONTINUE_WITHIN + 1)
    assert shared.decode(raw) is None  # too old to continue...
    recorded = shared.read(raw)  # ...but still shown, as old as it is
    assert recorded is not None
    assert (recorded.pid, recorded.started, recorded.interval) == (4242, 1234.5, 5.0)
    assert recorded.sampled == pytest.approx(999.0) and recorded.written == 1000.0
    assert SharedStates(clock, interval=5.0).read(raw.replace(b'"boot":', b'"was":')) is None


def test_recorded_statuses_are_unknown_when_stale_or_of_another_definition(
    clock: FakeClock,
) -> None:
    shared = SharedStates(clock, interval=5.0)
    recorded = shared.read(shared.encode(1, machines(clock), sampled=clock()))
    assert recorded is not None
    (current,) = recorded.statuses([RULE], clock)
    assert (current.state, current.current, current.note) == ("firing", True, None)
    (stale,) = recorded.statuses([RULE], clock, "not current: the sampling process is stopped")
    assert (stale.state, stale.last_state, stale.value) == ("unknown", "firing", 95.0)
    assert stale.note == "not current: the sampling process is stopped"
    other = Rule(name="cpu", probe=lambda: 0.0, threshold=90.0, hysteresis=5.0)
    (mismatch,) = recorded.statuses([other], clock)
    assert (mismatch.state, mismatch.last_state) == ("unknown", None)
    assert mismatch.note == "the sampling process's rule is > 80, not > 90"
    unrecorded = Rule(name="disk", probe=lambda: 0.0, threshold=90.0)
    (never,) = recorded.statuses([unrecorded], clock)
    assert (never.state, never.note) == ("unknown", "never sampled")
