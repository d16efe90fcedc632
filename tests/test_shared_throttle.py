"""The shared throttle: several processes of one store act as one.

Each "process" here is a Dispatcher over a SharedThrottle with a StoreLink of its own,
named as a process of another host (its liveness is its lease, so the injected clock
decides it). The store is real: memory://, a SQLite file (a connection per process) and
the session's redis-server. Time is a FakeClock; nothing sleeps.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from flask_alerting import Alert
from flask_alerting.alert import PendingAlert
from flask_alerting.delivery.shared_throttle import FLUSH_EVERY, SharedThrottle
from flask_alerting.delivery.store_link import LEASE, StoreLink
from flask_alerting.dispatch import Dispatcher
from flask_alerting.store import ProcessId, SQLiteStore, Store
from tests.conftest import FakeClock

EPOCH = 1_800_000_000.0
WINDOW = 60.0
GRACE = 1.0


class Process:
    """One process of the store: a Dispatcher over a SharedThrottle, delivering to a list."""

    def __init__(self, store: Store, clock: FakeClock, host: str, window: float) -> None:
        self.clock = clock
        self.link = StoreLink(
            store,
            name="app",
            clock=clock,
            wall=lambda: EPOCH + clock(),
            process=ProcessId(host, 4242, 12345.0),
        )
        self.throttle = SharedThrottle(
            self.link, window, clock, notifiers=["memory"], labels={"app": "app", "host": host}
        )
        self.sent: list[Alert] = []
        self.dispatcher = Dispatcher(
            sender=object(), throttle=self.throttle, deliver=self.sent.append, log=lambda a: None
        )

    def now(self) -> datetime:
        return datetime.fromtimestamp(EPOCH + self.clock(), timezone.utc)

    def raise_(self, times: int = 1, **fields: Any) -> None:
        fields.setdefault("title", "boom")
        fields.setdefault("kind", "error")
        fields.setdefault("fingerprint", "fp")
        for _ in range(times):
            alert = Alert(timestamp=self.now(), labels={"app": "app"}, **fields)
            self.dispatcher.dispatch(alert)

    def tick(self) -> None:
        """A turn of the dispatch loop: the store tick, then the throttle's."""
        self.link.tick()
        self.dispatcher.tick()

    @property
    def firsts(self) -> list[Alert]:
        return [a for a in self.sent if not a.is_digest]

    @property
    def digests(self) -> list[Alert]:
        return [a for a in self.sent if a.is_digest]


class World:
    """Processes sharing one store, and the clock they share."""

    def __init__(self, make_store: Callable[..., Store], clock: FakeClock) -> None:
        self.make_store = make_store
        self.clock = clock
        self.processes: list[Process] = []

    def process(self, window: float = WINDOW, **store: Any) -> Process:
        host = f"host-{len(self.processes) + 1}"
        self.processes.append(Process(self.make_store(**store), self.clock, host, window))
        return self.processes[-1]

    def advance(self, seconds: float, *only: Process) -> None:
        """Move time in steps of a flush interval, every process (or ``only`` these)
        taking a turn of its loop at each step."""
        steps = max(1, round(seconds / FLUSH_EVERY))
        for _ in range(steps):
            self.clock.advance(seconds / steps)
            for process in only or self.processes:
                process.tick()

    def sent(self) -> list[Alert]:
        return [a for p in self.processes for a in p.sent]


@pytest.fixture
def world(make_store: Callable[..., Store], clock: FakeClock) -> Iterator[World]:
    yield World(make_store, clock)


def occurrences(alerts: list[Alert]) -> int:
    return sum(a.occurrences for a in alerts)


# -- one incident, one message ---------------------------------------------------------------


def test_one_first_alert_and_one_digest_whose_count_adds_every_process(world: World) -> None:
    a, b, c = world.process(), world.process(), world.process()
    a.raise_()
    assert len(a.sent) == 1 and not a.sent[0].is_digest  # at once, by its opener
    assert a.throttle.suppresses("fp") and not b.throttle.suppresses("fp")
    b.raise_(3)
    c.raise_(2)
    a.raise_(4)
    assert b.sent == [] and c.sent == []  # the window was open: counted
    assert b.throttle.suppresses("fp") and c.throttle.suppresses("fp")
    assert b.dispatcher.suppressed == 3 and b.dispatcher.would_only_count("fp")
    world.advance(WINDOW - 0.5)
    assert len(world.sent()) == 1  # counts were added in batches, the window is open
    world.advance(0.5 + GRACE + 0.2)
    (digest,) = [x for x in world.sent() if x.is_digest]
    assert digest.occurrences == 9 and digest.details["digest"] == {"count": 9}
    assert digest.first_seen is not None and digest.last_seen is not None
    assert occurrences(world.sent()) == 10  # first + digest = all raised
    world.advance(2 * WINDOW)  # nothing more to say
    assert len(world.sent()) == 2


def test_a_continuous_storm_gives_one_message_per_window_in_all(world: World) -> None:
    processes = [world.process() for _ in range(3)]
    raised = 0
    for step in range(int(4 * WINDOW / 5)):  # 4 windows, an occurrence every 5 s each
        for i, process in enumerate(processes):
            if (step + i) % 2 == 0:
                process.raise_()
                raised += 1
        world.advance(5)
    for process in processes:
        process.dispatcher.drain()
    sent = world.sent()
    assert occurrences(sent) == raised
    assert len([x for x in sent if not x.is_digest]) == 1
    # One digest per window period: at 61 s, 122 s and 183 s (a window's end plus the
    # grace, then the window starts again), and the fourth period's at the drain.
    assert len([x for x in sent if x.is_digest]) == 4
    ends = sorted(x.timestamp for x in sent if x.is_digest)
    gaps = [(b - a).total_seconds() for a, b in zip(ends, ends[1:], strict=False)]
    assert all(gap >= WINDOW for gap in gaps[:-1]), gaps


def test_a_storm_stays_known_across_the_windows_its_process_claims(world: World) -> None:
    """The claim comes before the window is forgotten here: the request path goes on
    counting (a dictionary lookup) instead of capturing occurrences in full."""
    a = world.process(window=1.0)
    a.raise_()
    for _ in range(55):  # 5.5 s of a storm, 10 occurrences a second
        world.advance(0.1)
        a.raise_()
        assert a.throttle.suppresses("fp")
    assert len(a.digests) == 2  # each 2 s: the window, then the grace before its claim
    a.dispatcher.drain()
    assert len(a.digests) == 3 and occurrences(a.sent) == 56


def test_timing_alerts_follow_the_same_rules_with_their_statistics(world: World) -> None:
    a, b = world.process(), world.process()
    a.raise_(kind="timing", title="slow", value=3.0, fingerprint="t")
    for value in (2.5, 4.0):
        b.raise_(kind="timing", title="slow", value=value, fingerprint="t")
    a.raise_(kind="timing", title="slow", value=6.5, fingerprint="t")
    world.advance(WINDOW + GRACE + 0.2)
    (digest,) = [x for x in world.sent() if x.is_digest]
    assert digest.occurrences == 3 and digest.value == 6.5
    assert digest.details["digest"] == {"count": 3, "mean": 13.0 / 3, "max": 6.5, "min": 2.5}


def test_metric_alerts_bypass_the_throttle(world: World) -> None:
    a, b = world.process(), world.process()
    for process in (a, b):
        process.raise_(kind="metric", title="CPU high", fingerprint="cpu")
        process.raise_(kind="metric", title="CPU high", fingerprint="cpu", status="resolved")
    assert len(a.sent) == len(b.sent) == 2 and not a.throttle.suppresses("cpu")


def test_the_digest_shows_the_latest_occurrence_built(world: World) -> None:
    a, b = world.process(), world.process()
    a.raise_(message="first")
    b.raise_(message="from b")  # counted, and it is the newest built alert
    world.advance(WINDOW + GRACE + 0.2)
    (digest,) = [x for x in world.sent() if x.is_digest]
    assert digest.message == "from b" and digest.occurrences == 1


# -- processes that die, processes that stop ---------------------------------------------------


def test_a_window_whose_owner_died_is_closed_by_another_process(world: World) -> None:
    owner, other = world.process(), world.process()
    owner.raise_(4)  # opens the window, counts 3
    world.advance(0.2)  # its counts are added; then it dies (it never runs again)
    world.advance(WINDOW + GRACE, other)  # `other` never saw this fingerprint
    (digest,) = other.sent
    assert digest.is_digest and digest.occurrences == 3
    assert owner.sent == owner.firsts and len(owner.sent) == 1


def test_the_last_process_to_stop_sends_the_pending_digests(world: World) -> None:
    a, b = world.process(), world.process()
    world.advance(0.1)  # both registered
    a.raise_()
    b.raise_(2)
    a.raise_()
    b.dispatcher.drain()  # adds its counts, leaves: a is still alive, so no digest
    assert b.sent == [] and b.link.left
    a.dispatcher.drain()  # the last one: every window's digest now
    (first, digest) = a.sent
    assert digest.is_digest and digest.occurrences == 3
    assert a.link.store.windows(now=a.link.now()) == []


def test_a_process_registers_before_it_first_writes_to_the_store(world: World) -> None:
    """No tick has run yet (a storm's first alerts come first): still, a process that
    holds counts is registered, so the other does not take itself for the last one."""
    a, b = world.process(), world.process()
    a.raise_()
    b.raise_(2)  # joins a's window, counts 2 (not added yet)
    assert a.link.registered and b.link.registered
    a.dispatcher.drain()  # b is alive and registered: no digest from a
    assert a.digests == []
    b.dispatcher.drain()
    assert [x.occurrences for x in b.digests] == [2]


def test_counts_whose_window_was_drained_meanwhile_leave_on_their_own(world: World) -> None:
    """A process paused past its lease: the others took it for dead, and the last of
    them drained the store. Its counts come back from the store, and it sends them."""
    paused, other = world.process(window=600), world.process(window=600)
    world.advance(0.1)
    paused.raise_(3)  # opens the window (sent) and counts 2, not added yet
    world.advance(LEASE + 1, other)  # `paused` does not run: its lease runs out
    other.dispatcher.drain()  # the last live process: the window counted nothing yet
    assert other.sent == []
    world.advance(0.1, paused)  # it wakes: its counts come back
    (first, late) = paused.sent
    assert late.is_digest and late.occurrences == 2
    assert occurrences(paused.sent) == 3
    assert not paused.throttle.suppresses("fp")  # the next one asks the store again
    paused.raise_()
    assert len(paused.sent) == 3 and not paused.sent[2].is_digest


def test_a_window_closed_here_to_make_room_keeps_its_counts(world: World) -> None:
    a = world.process()
    a.throttle.max_fingerprints = 2
    a.raise_(3, fingerprint="one")
    a.raise_(fingerprint="two")
    a.raise_(fingerprint="three")  # closes "one" here: its two counts leave now
    assert [(x.fingerprint, x.occurrences) for x in a.digests] == [("one", 2)]
    assert a.throttle.evictions == 1 and len(a.throttle) == 2


def test_an_unbuilt_alert_opens_a_window_of_this_process(world: World) -> None:
    a, b = world.process(), world.process()
    item = PendingAlert(lambda: Alert(title="folded", fingerprint="f"), "f", a.now())
    assert a.throttle.offer(item)  # nothing asked of the store
    assert a.link.store.windows(now=a.link.now()) == []
    assert a.throttle.suppresses("f") and not b.throttle.suppresses("f")
    a.raise_(2, fingerprint="f", title="folded")
    world.advance(WINDOW + 0.2)
    (digest,) = a.digests
    assert digest.occurrences == 2 and digest.title == "folded"


# -- the store failing -------------------------------------------------------------------------


@pytest.fixture
def sqlite_world(tmp_path: Any, clock: FakeClock) -> Iterator[World]:
    path = str(tmp_path / "s.sqlite3")
    made: list[Store] = []

    def make(timeout: float = 0.05) -> Store:
        made.append(SQLiteStore(path, timeout=timeout))
        return made[-1]

    yield World(make, clock)
    for store in made:
        store.close()


class Lock:
    """Another process's SQLite write transaction, held (a real "database is locked")."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)

    def __enter__(self) -> Lock:
        self.conn.execute("BEGIN EXCLUSIVE")
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def test_a_locked_store_falls_back_to_each_process_and_comes_back(
    sqlite_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world = sqlite_world
    caplog.set_level(logging.WARNING, logger="flask_alerting")
    a, b = world.process(), world.process()
    world.advance(0.1)
    path = a.link.store.uri.removeprefix("sqlite://")
    with Lock(path):
        a.raise_(3)
        b.raise_(2)
        # Each process on its own: its first alert now, the rest counted here.
        assert len(a.firsts) == 1 and len(b.firsts) == 1 and not a.link.available
        world.advance(WINDOW + 0.2)
        assert [x.occurrences for x in a.digests] == [2]
        assert [x.occurrences for x in b.digests] == [1]
        a.raise_()  # still on its own: its window was opened again here
        assert len(a.firsts) == 1
    failed = [r for r in caplog.records if "failed while" in r.getMessage()]
    assert len(failed) == 2 and all("locked" in r.getMessage() for r in failed)
    world.advance(30)  # the next trial: the store answers again
    back = [r for r in caplog.records if "answers again;" in r.getMessage()]
    assert len(back) == 2 and a.link.available and b.link.available
    world.advance(WINDOW)  # a's own window ends: its digest, and the store again
    assert [x.occurrences for x in a.digests] == [2, 1]
    b.raise_(2)
    a.raise_()
    assert len(b.firsts) == 2 and len(a.firsts) == 1  # one first alert, from the store
    world.advance(WINDOW + GRACE + 0.2)
    assert occurrences(world.sent()) == 3 + 2 + 1 + 2 + 1


def test_counts_the_store_cannot_take_leave_as_this_process_s_digest(
    sqlite_world: World,
) -> None:
    world = sqlite_world
    a, b = world.process(), world.process()
    a.raise_()
    b.raise_(2)
    world.advance(0.2)  # b's two counts are in the store
    a.raise_(3)  # counted here, not added yet
    path = a.link.store.uri.removeprefix("sqlite://")
    with Lock(path):
        world.advance(WINDOW + GRACE + 0.2)
        # a could not add its three: they leave as its own digest at the window's end
        assert [x.occurrences for x in a.digests] == [3]
        assert b.digests == []  # the store could not be claimed
    world.advance(30 + GRACE)  # the store is back: the stored window is claimed
    assert sorted(x.occurrences for x in world.sent() if x.is_digest) == [2, 3]
    assert occurrences(world.sent()) == 1 + 2 + 3


def test_the_request_path_decides_without_the_store(sqlite_world: World) -> None:
    world = sqlite_world
    a = world.process()
    a.raise_()
    path = a.link.store.uri.removeprefix("sqlite://")
    with Lock(path):
        assert a.dispatcher.would_only_count("fp")  # a dictionary lookup
        a.dispatcher.dispatch_pending(PendingAlert(None, "fp", a.now(), logged=True))
        assert a.throttle.pending() == {"fp": 1}
