"""The durable outbox at the extension level: recorded before delivery (one write per
dispatch batch), settled per notifier after it, recovered from ended processes (marked),
bounded by a cap and an age (injected clock), and never at an alert's cost.

Stores are real (SQLite files under tmp_path, the session's redis-server); ended processes
are real ones (started and reaped, or a forked child). Processes killed for real, gunicorn
and two recovering processes: tests/test_outbox_processes.py.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_alerting import Alert, FlaskAlerting, MemoryNotifier, Notifier, alert_sent
from flask_alerting._state import get_state
from flask_alerting.delivery import outbox as outbox_module
from flask_alerting.delivery import store_link
from flask_alerting.delivery.outbox import describe_process, notifier_keys
from flask_alerting.notifiers.base import TransientError
from flask_alerting.render import subject, text_body
from flask_alerting.signals import alert_recorded
from flask_alerting.store import (
    Count,
    NewWindow,
    Outgoing,
    ProcessId,
    Put,
    SQLiteStore,
    current_process,
    parse_storage_uri,
)
from flask_alerting.store.process import host_name
from tests.conftest import FakeClock
from tests.forking import wait_child
from tests.recorder import Recorder
from tests.servers import RedisServer, wait_until
from tests.store_support import dead_local_process, fork, remote_process

HOST = host_name()
ME = f"pid {os.getpid()} on {HOST}"


class Gate(MemoryNotifier):
    """Holds every send until :attr:`gate` is set."""

    def __init__(self, name: str = "gate") -> None:
        super().__init__()
        self.name = name
        self.gate = threading.Event()
        self.entered = threading.Event()

    def send(self, alert: Alert) -> None:
        self.entered.set()
        if not self.gate.wait(30):
            raise RuntimeError("the gate never opened")
        super().send(alert)


class Refusing(Notifier):
    """A notifier whose server is down: every send fails, transiently (retried)."""

    name = "smtp"

    def __init__(self) -> None:
        self.attempts = threading.Event()

    def send(self, alert: Alert) -> None:
        self.attempts.set()
        raise ConnectionRefusedError(111, "Connection refused")


@pytest.fixture
def make_app(
    tmp_path: Path, make_alerting: Callable[..., FlaskAlerting]
) -> Iterator[Callable[..., tuple[Flask, FlaskAlerting]]]:
    """``make_app(notifiers, **options)``: an app with a shared store (default: a SQLite
    file under tmp_path), its extension shut down in teardown; recorders disconnected."""
    recorders: list[Recorder] = []

    def make(
        notifiers: list[Any], *, name: str = "outbox-test", **options: Any
    ) -> tuple[Flask, FlaskAlerting]:
        app = Flask(name)
        app.config.update(ALERTING_METRICS_ENABLED=False, PROPAGATE_EXCEPTIONS=False)
        options.setdefault("storage_uri", f"sqlite:///{tmp_path / 'store.sqlite3'}")
        return app, make_alerting(app, notifiers=notifiers, **options)

    yield make
    for recorder in recorders:
        recorder.disconnect()


@pytest.fixture
def quick_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Store ticks every 0.1 s and recovery rounds every 0.2 s (production: 1 s and 2 s),
    for a test that waits for the next one; taken by the apps made after it."""
    monkeypatch.setattr(store_link, "TICK", 0.1)
    monkeypatch.setattr(outbox_module, "RECOVER_EVERY", 0.2)


def sent(app: Flask) -> Recorder:
    return Recorder(alert_sent, app)


def reader(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(str(tmp_path / "store.sqlite3"), timeout=10.0)


def create_store(tmp_path: Path) -> None:
    """Create the store of ``make_app`` (as a process that used it before would have)."""
    store = reader(tmp_path)
    store.ping()
    store.close()


def stored(alert: Alert, app: str = "outbox-test") -> Alert:
    return alert.replace(labels={"app": app, "host": HOST, **alert.labels})


# -- recorded before delivery, settled after ------------------------------------------------


def test_each_batch_is_recorded_in_one_write_before_any_notifier_gets_it(
    tmp_path: Path, make_app: Callable[..., tuple[Flask, FlaskAlerting]], quick_ticks: None
) -> None:
    store = reader(tmp_path)
    seen: list[tuple[str, tuple[str, ...]]] = []

    class Checking(MemoryNotifier):
        """Looks, from its send, at what the store holds for the alert it is sending."""

        def send(self, alert: Alert) -> None:
            (record,) = [r for r in store.outbox_records() if r.alert == alert]
            seen.append((alert.title, record.notifiers))
            super().send(alert)

    notifier = Checking()
    app, alerting = make_app([notifier])
    state = get_state(app)
    link = state.pipeline.link
    assert link is not None
    create_store(tmp_path)  # it exists: the first store tick registers
    wait_until(lambda: link.registered, 10, "the dispatch thread's first store tick")
    puts: list[int] = []
    put = link.store.outbox_put

    def counted(items: Any, **kwargs: Any) -> Put:
        puts.append(len(items))
        return put(items, **kwargs)

    link.store.outbox_put = counted  # type: ignore[method-assign]
    # Hold the dispatch thread on a first item, queue five alerts behind it: they are
    # taken in one batch.
    held = threading.Event()

    def slow_build() -> Alert:
        assert held.wait(10)
        return Alert(title="first", labels=state.labels)

    state.submit(slow_build)
    for n in range(5):
        alerting.alert(f"alert {n}")
    held.set()
    assert alerting.flush(10)
    assert puts == [1, 5]
    assert sorted(seen) == sorted(
        [("first", ("memory",))] + [(f"alert {n}", ("memory",)) for n in range(5)]
    )
    assert store.outbox_records() == []  # each one deleted once delivered
    stats = alerting.stats()["outbox"]
    assert stats["recorded"] == 6 and stats["unrecorded"] == 0 and stats["in_flight"] == 0
    store.close()


def test_a_recorded_alert_is_announced_between_its_record_and_its_delivery(
    tmp_path: Path, make_app: Callable[..., tuple[Flask, FlaskAlerting]]
) -> None:
    """``alert_recorded`` (internal: the metrics sampler counts on it, see
    flask_alerting/metrics/notices.py) comes once the store holds the record, so that a
    receiver may count on the alert whatever becomes of this process, and before any
    notifier has the alert."""
    store = reader(tmp_path)
    announced: list[tuple[str, bool]] = []
    seen: list[tuple[str, list[str]]] = []

    def receive(sender: Flask, alert: Alert) -> None:
        held = any(r.alert == alert for r in store.outbox_records())
        announced.append((alert.title, held))

    class Checking(MemoryNotifier):
        def send(self, alert: Alert) -> None:
            seen.append((alert.title, [title for title, _ in announced]))
            super().send(alert)

    app, alerting = make_app([Checking()])
    with alert_recorded.connected_to(receive, app):
        alerting.alert("disk full")
        assert alerting.flush(10)
    assert announced == [("disk full", True)]
    assert seen == [("disk full", ["disk full"])]
    store.close()


@pytest.mark.parametrize("store", ["memory", "unusable"])
def test_an_alert_delivered_without_a_record_is_not_announced(
    tmp_path: Path, make_app: Callable[..., tuple[Flask, FlaskAlerting]], store: str
) -> None:
    """``memory://`` has no outbox; a store that fails delivers without a record: nobody
    may count on such an alert outliving this process."""
    uri = (
        "memory://"
        if store == "memory"
        else f"sqlite:///{tmp_path / 'no such directory' / 'store.sqlite3'}"
    )
    memory = MemoryNotifier()
    app, alerting = make_app([memory], storage_uri=uri)
    announced: list[Alert] = []
    with alert_recorded.connected_to(lambda sender, alert: announced.append(alert), app):
        alerting.alert("not recorded")
        assert alerting.flush(10)
    assert [a.title for a in memory.alerts] == ["not recorded"] and announced == []


def test_a_record_owes_each_notifier_until_it_delivered(
    tmp_path: Path, make_app: Callable[..., tuple[Flask, FlaskAlerting]]
) -> None:
    store = reader(tmp_path)
    gate = Gate()
    fast, second = MemoryNotifier(), MemoryNotifier()
    app, alerting = make_app([gate, fast, second])
    assert notifier_keys(get_state(app).notifiers) == ("gate", "memory", "memory#2")
    recorder = sent(app)
    try:
        alerting.alert("disk full")
        recorder.wait_for(2)  # both memory notifiers; the gate holds its send
        assert gate.entered.wait(10)

        def owed() -> tuple[str, ...] | None:
            records = store.outbox_records()
            return records[0].notifiers if records else None

        wait_until(lambda: owed() == ("gate",), 10, "the record to owe the gate only")
        gate.gate.set()
        assert alerting.flush(10)
        assert store.outbox_records() == []
        assert [a.title for a in gate.alerts] == ["disk full"]
    finally:
        gate.gate.set()
        recorder.disconnect()
        store.close()


def test_a_claimed_digest_leaves_from_the_record_its_claim_made(
    tmp_path: Path, make_app: Callable[..., tuple[Flask, FlaskAlerting]], clock: FakeClock
) -> None:
    """The store records a digest in the claimer's outbox as it claims it (atomically):
    that record is the one delivery settles. Neither a second record (the digest twice
    after a crash) nor a delete at the hand-over (the digest lost in a crash)."""
    store = reader(tmp_path)
    gate = Gate()
    gate.gate.set()
    memory = MemoryNotifier()
    app, alerting = make_app([gate, memory], clock=clock, throttle_seconds=10)
    try:
        for _ in range(3):
            alerting.alert("disk full")
        assert alerting.flush(10)
        assert [a.title for a in memory.alerts] == ["disk full"]
        assert store.outbox_records() == []
        gate.gate.clear()
        gate.entered.clear()
        clock.advance(10 + store.limits.grace + 1)
        alerting.flush(0.5)  # wakes the dispatch thread: it claims the digest
        assert gate.entered.wait(10), "the digest never reached the gate"
        wait_until(lambda: len(memory.alerts) == 2, 10, "the digest")
        assert memory.alerts[1].occurrences == 2
        # One record: the claim's, owing the gate alone once memory delivered it.
        wait_until(
            lambda: [r.notifiers for r in store.outbox_records()] == [("gate",)], 10,
            f"the claim's record to owe the gate only: {store.outbox_records()}",
        )
        (record,) = store.outbox_records()
        assert record.digest is not None and record.digest.count == 2
        gate.gate.set()
        assert alerting.flush(10)
        assert store.outbox_records() == []
        assert [a.occurrences for a in gate.alerts] == [1, 2]
    finally:
        gate.gate.set()
        store.close()


def test_an_alert_given_up_is_settled_too(
    tmp_path: Path, make_app: Callable[..., tuple[Flask, FlaskAlerting]]
) -> None:
    class Permanent(Notifier):
        name = "strict"

        def send(self, alert: Alert) -> None:
            raise ValueError("refused for good")

    app, alerting = make_app([Permanent()])
    alerting.alert("refused")
    assert alerting.flush(10)
    assert reader(tmp_path).outbox_records() == []
    assert alerting.stats()["outbox"]["recorded"] == 1


def test_alerts_a_shutdown_could_not_deliver_stay_in_the_outbox(
    tmp_path: Path,
    make_app: Callable[..., tuple[Flask, FlaskAlerting]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusing = Refusing()
    app, alerting = make_app([refusing], shutdown_timeout=0.3)
    dropped: list[Alert] = []
    alerting.alert("first")
    alerting.alert("second")
    assert refusing.attempts.wait(10)
    from flask_alerting import alert_dropped

    with alert_dropped.connected_to(lambda sender, alert, reason: dropped.append(alert), app):
        assert alerting.shutdown() is False
    records = reader(tmp_path).outbox_records()
    assert sorted(r.alert.title for r in records if r.alert) == ["first", "second"]
    assert {r.owner for r in records} == {str(current_process())}
    assert dropped == []  # not lost: the next process of the store delivers them
    kept = [r.getMessage() for r in caplog.records if "stay in the outbox" in r.getMessage()]
    assert len(kept) == 1 and kept[0].startswith("flask-alerting: 2 alert(s)")


def test_a_send_that_fails_while_the_shutdown_stops_its_worker_is_kept_not_given_up(
    tmp_path: Path,
    make_app: Callable[..., tuple[Flask, FlaskAlerting]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    class FailsWhenReleased(Notifier):
        name = "smtp"

        def __init__(self) -> None:
            self.entered, self.gate = threading.Event(), threading.Event()

        def send(self, alert: Alert) -> None:
            self.entered.set()
            self.gate.wait(30)
            raise ConnectionResetError(104, "Connection reset by peer")  # transient

    notifier = FailsWhenReleased()
    app, alerting = make_app([notifier], shutdown_timeout=0.3)
    worker = get_state(app).pipeline.workers[0]
    alerting.alert("in flight at shutdown")
    assert notifier.entered.wait(10)
    done: list[bool] = []
    stopping = threading.Thread(target=lambda: done.append(alerting.shutdown()))
    stopping.start()
    try:
        wait_until(lambda: worker._stopping, 10, "the shutdown to stop the worker")
    finally:
        notifier.gate.set()
        stopping.join(30)
    assert done == [False] and worker.failed == 0 and worker.kept == 1
    (record,) = reader(tmp_path).outbox_records()
    assert record.alert is not None and record.alert.title == "in flight at shutdown"
    assert any("1 alert(s) of app" in r.getMessage() and "stay in the outbox" in r.getMessage()
               for r in caplog.records)


# -- recovered from ended processes ---------------------------------------------------------


@pytest.fixture(params=["sqlite", "redis"])
def shared_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


def test_what_an_ended_process_left_is_delivered_within_seconds_of_init_app(
    shared_uri: str, make_app: Callable[..., tuple[Flask, FlaskAlerting]]
) -> None:
    name = f"recovery-{uuid.uuid4().hex[:8]}"  # a Redis namespace of its own
    other = parse_storage_uri(shared_uri, app_name=name, timeout=10.0)
    gone = dead_local_process()
    now = time.time()
    labels = {"app": name, "host": HOST}
    left = [
        Outgoing(Alert(title="disk full", labels=labels, pid=gone.pid), ("memory",)),
        Outgoing(Alert(title="owed by two", labels=labels), ("memory#2", "webhook")),
        Outgoing(Alert(title="owed by a stranger", labels=labels), ("apprise",)),
    ]
    other.outbox_put(left, owner=gone, now=now - 60)
    # A digest the ended process had claimed (recorded in its outbox by the claim).
    template = Alert(title="KeyError in cart", kind="error", severity="error", labels=labels)
    other.open_windows([NewWindow(template.fingerprint, template, 10.0)], now=now - 50,
                       owner=gone)
    other.add_counts([Count(template.fingerprint, 3, now - 49, now - 45)], now=now - 45)
    claim = other.claim_due(now=now - 30, owner=gone, notifiers=("memory",))
    assert len(claim.digests) == 1
    first, second = MemoryNotifier(), MemoryNotifier()
    app, alerting = make_app([first, second], name=name, storage_uri=shared_uri)
    recorder = sent(app)
    try:
        # Nothing raised here: the dispatch thread, started by init_app, takes them over.
        calls = recorder.wait_for(5, timeout=15)
        assert alerting.flush(10)
        assert other.outbox_records() == []
    finally:
        recorder.disconnect()
    by_notifier = {
        "memory": sorted(a.title for a in first.alerts),
        "memory#2": sorted(a.title for a in second.alerts),
    }
    assert by_notifier == {
        "memory": ["KeyError in cart", "disk full", "owed by a stranger"],
        # ... and what no notifier of this process owes goes through all of them.
        "memory#2": ["owed by a stranger", "owed by two"],
    }
    assert len(calls) == 5
    origin = f"pid {gone.pid} on {HOST}"
    for alert in first.alerts + second.alerts:
        assert alert.details["recovered"] == {"from": origin, "by": ME}
        assert subject(alert, None).startswith(f"[{name}] (recovered) ")
        assert text_body(alert).startswith(
            f"Recovered: {origin} ended before delivering this alert; {ME} delivered it "
            "from the outbox.\n"
        )
    (digest,) = [a for a in first.alerts if a.title == "KeyError in cart"]
    assert digest.occurrences == 3 and digest.is_digest
    assert subject(digest, None) == f"[{name}] (recovered) (3x) KeyError in cart"
    (disk,) = [a for a in first.alerts if a.title == "disk full"]
    assert f"Raised by: pid {gone.pid} on {HOST}" in text_body(disk)
    assert alerting.stats()["outbox"]["recovered"] == 4
    other.close()


def test_records_of_live_processes_are_left_to_them(
    tmp_path: Path, make_app: Callable[..., tuple[Flask, FlaskAlerting]]
) -> None:
    other = reader(tmp_path)
    alive_elsewhere = remote_process()
    now = time.time()
    other.register(alive_elsewhere, now=now, lease=3600)
    other.outbox_put([Outgoing(Alert(title="theirs"), ("memory",))], owner=alive_elsewhere,
                     now=now)
    memory = MemoryNotifier()
    app, alerting = make_app([memory])
    outbox = get_state(app).pipeline.outbox
    assert outbox is not None
    wait_until(lambda: outbox.rounds >= 1, 10, "a recovery round")
    assert alerting.flush(10)
    assert memory.alerts == [] and len(other.outbox_records()) == 1
    other.close()


def test_a_bare_fork_child_that_os_exits_leaves_its_alerts_to_the_parent(
    tmp_path: Path, make_app: Callable[..., tuple[Flask, FlaskAlerting]], quick_ticks: None
) -> None:
    parent = os.getpid()

    class ParentOnly(MemoryNotifier):
        """Cannot deliver in the child (as if its server were unreachable from there)."""

        def send(self, alert: Alert) -> None:
            if os.getpid() != parent:
                raise TransientError("not from the child")
            super().send(alert)

    notifier = ParentOnly()
    app, alerting = make_app([notifier])
    link = get_state(app).pipeline.link
    assert link is not None
    create_store(tmp_path)  # it exists: the first store tick registers
    wait_until(lambda: link.registered, 10, "the parent's dispatch thread")
    recorder = sent(app)
    try:
        pid = fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                alerting.alert("from the child")
                # What a child must do before os._exit(): flush. It cannot deliver here,
                # but once the flush went through the dispatch thread, the alert is
                # recorded, and the parent (or the next process) delivers it.
                alerting.flush(0.5)
            finally:
                os._exit(0)
        assert wait_child(pid, 30) == 0
        recorder.wait_for(1, timeout=15)
    finally:
        recorder.disconnect()
    (alert,) = notifier.alerts
    assert alert.title == "from the child" and alert.pid == pid
    assert alert.details["recovered"]["from"] == f"pid {pid} on {HOST}"


# -- bounded ------------------------------------------------------------------------------------


def live_records(path: Path, count: int, now: float) -> tuple[SQLiteStore, ProcessId]:
    """``count`` records of a live process of another host (never taken over)."""
    store = SQLiteStore(str(path), timeout=10.0)
    owner = remote_process()
    store.register(owner, now=now, lease=10**6)
    items = [Outgoing(Alert(title=f"old {n}"), ("memory",)) for n in range(count)]
    store.outbox_put(items, owner=owner, now=now)
    return store, owner


def test_the_cap_drops_the_oldest_records_and_the_next_message_says_so(
    tmp_path: Path,
    make_app: Callable[..., tuple[Flask, FlaskAlerting]],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    other, _ = live_records(tmp_path / "store.sqlite3", 5, time.time())
    memory = MemoryNotifier()
    app, alerting = make_app([memory], clock=clock, outbox_max_records=3)
    alerting.alert("new")  # 5 + 1 records, at most 3: the 3 oldest go
    assert alerting.flush(10)
    (alert,) = memory.alerts
    assert alert.title == "new" and alert.dropped == 3
    assert "Note: 3 earlier alert(s) were dropped" in text_body(alert)
    assert sorted(r.alert.title for r in other.outbox_records() if r.alert) == ["old 3", "old 4"]
    logs = [r.getMessage() for r in caplog.records if "dropped 3 undelivered" in r.getMessage()]
    assert len(logs) == 1 and "ALERTING_OUTBOX_MAX_RECORDS (3)" in logs[0]
    alerting.alert("next")
    assert alerting.flush(10)
    assert [a.dropped for a in memory.alerts] == [3, 0]  # told once
    other.close()


def test_records_past_the_age_limit_are_dropped_and_told(
    tmp_path: Path,
    make_app: Callable[..., tuple[Flask, FlaskAlerting]],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    quick_ticks: None,
) -> None:
    other, owner = live_records(tmp_path / "store.sqlite3", 4, time.time())
    memory = MemoryNotifier()
    app, alerting = make_app([memory], clock=clock, outbox_max_age=60)
    outbox = get_state(app).pipeline.outbox
    assert outbox is not None
    wait_until(lambda: outbox.rounds >= 1, 10, "the first store tick")
    alerting.alert("young")
    assert alerting.flush(10)
    assert memory.alerts[0].dropped == 0  # 4 records, none older than 60 s
    # A minute later, nothing raised: the periodic prune drops them (the records' time is
    # the store's, which moves with the injected clock), and says so.
    clock.advance(61)
    wait_until(lambda: outbox.dropped == 4, 10, "the periodic prune")
    assert other.outbox_records() == []
    logs = [r.getMessage() for r in caplog.records if "dropped 4 undelivered" in r.getMessage()]
    assert len(logs) == 1 and "ALERTING_OUTBOX_MAX_AGE (60 s)" in logs[0]
    alerting.alert("later")
    assert alerting.flush(10)
    assert [(a.title, a.dropped) for a in memory.alerts] == [("young", 0), ("later", 4)]
    # A record older than the limit also goes when the next alert is recorded.
    other.outbox_put([Outgoing(Alert(title="stale"))], owner=owner, now=time.time() - 3600)
    alerting.alert("last")
    assert alerting.flush(10)
    assert memory.alerts[-1].dropped == 1
    other.close()


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("ALERTING_OUTBOX_MAX_AGE", 0, "a number of seconds > 0"),
        ("ALERTING_OUTBOX_MAX_AGE", "a day", "expected a number"),
        ("ALERTING_OUTBOX_MAX_RECORDS", 0, "an integer >= 1"),
        ("ALERTING_OUTBOX_MAX_RECORDS", 2.5, "an integer >= 1"),
    ],
)
def test_bad_bounds_are_configuration_errors_naming_the_key(
    key: str, value: object, expected: str
) -> None:
    from flask_alerting import ConfigurationError

    app = Flask("bounds")
    app.config.update({key: value, "ALERTING_METRICS_ENABLED": False})
    with pytest.raises(ConfigurationError, match=key) as info:
        FlaskAlerting(app)
    assert expected in str(info.value)


def test_the_bounds_reach_the_store(make_app: Callable[..., tuple[Flask, FlaskAlerting]]) -> None:
    app, _ = make_app([MemoryNotifier()], outbox_max_age=120, outbox_max_records=50)
    limits = get_state(app).store.limits
    assert (limits.max_age, limits.max_records) == (120.0, 50)
    default, _ = make_app([MemoryNotifier()], name="defaults")
    limits = get_state(default).store.limits
    assert (limits.max_age, limits.max_records) == (86_400.0, 10_000)


# -- never at an alert's cost -------------------------------------------------------------------


def test_a_store_that_cannot_be_opened_costs_no_alert(
    tmp_path: Path,
    make_app: Callable[..., tuple[Flask, FlaskAlerting]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    memory = MemoryNotifier()
    missing = tmp_path / "no such directory" / "store.sqlite3"
    app, alerting = make_app([memory], storage_uri=f"sqlite:///{missing}")
    for n in range(3):
        alerting.alert(f"alert {n}")
        assert alerting.flush(10)
    assert [a.title for a in memory.alerts] == ["alert 0", "alert 1", "alert 2"]
    stats = alerting.stats()["outbox"]
    assert stats["recorded"] == 0 and stats["unrecorded"] == 3
    failed = [r for r in caplog.records if "failed while" in r.getMessage()]
    assert len(failed) == 1  # the breaker opened once, logged once


def test_a_redis_that_goes_away_costs_no_alert(
    own_redis: RedisServer, make_app: Callable[..., tuple[Flask, FlaskAlerting]]
) -> None:
    memory = MemoryNotifier()
    app, alerting = make_app([memory], storage_uri=own_redis.url)
    alerting.alert("while it answers")
    assert alerting.flush(10)
    own_redis.stop()
    for n in range(3):
        alerting.alert(f"without it {n}")
        assert alerting.flush(10)
    assert [a.title for a in memory.alerts] == [
        "while it answers", "without it 0", "without it 1", "without it 2"
    ]
    stats = alerting.stats()["outbox"]
    assert stats["recorded"] == 1 and stats["unrecorded"] == 3


def test_a_settlement_the_store_refused_is_written_when_it_answers_again(
    tmp_path: Path,
    make_app: Callable[..., tuple[Flask, FlaskAlerting]],
    clock: FakeClock,
) -> None:
    path = tmp_path / "store.sqlite3"
    gate = Gate()
    app, alerting = make_app([gate], clock=clock)
    link = get_state(app).pipeline.link
    assert link is not None
    recorder = sent(app)
    locker = None
    try:
        alerting.alert("recorded, then the store locks")
        assert gate.entered.wait(10)
        assert len(reader(tmp_path).outbox_records()) == 1
        # Another process holds the SQLite file's write lock past the store's bound.
        locker = sqlite3.connect(str(path), timeout=10.0, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        gate.gate.set()
        recorder.wait_for(1)
        wait_until(lambda: link.state != "closed", 10, "the breaker to open")
        alerting.alert("while it is locked")  # delivered, without a record
        recorder.wait_for(2)
        locker.execute("ROLLBACK")
        assert len(reader(tmp_path).outbox_records()) == 1  # the delivered one's record
        clock.advance(31)  # the breaker's trial is due: the store answers, the write is done
        assert alerting.flush(10)  # (wakes the dispatch thread, which waits on the clock)
        wait_until(lambda: not reader(tmp_path).outbox_records(), 10, "the retried delete")
        assert [a.title for a in gate.alerts] == [
            "recorded, then the store locks", "while it is locked"
        ]
        stats = alerting.stats()["outbox"]
        assert stats["unrecorded"] == 1 and stats["unsettled"] == 0
    finally:
        gate.gate.set()
        recorder.disconnect()
        if locker is not None:
            locker.close()


# -- helpers ------------------------------------------------------------------------------------


def test_notifier_keys_and_process_names() -> None:
    class Named(MemoryNotifier):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    notifiers = [Named("smtp"), Named("webhook"), Named("smtp"), Named("smtp")]
    assert notifier_keys(notifiers) == ("smtp", "webhook", "smtp#2", "smtp#3")
    assert describe_process(str(ProcessId("web-1", 1234, 1.5))) == "pid 1234 on web-1"
    assert describe_process(None) == "an unknown process"
    assert describe_process("garbage") == "garbage"


def test_memory_stores_have_no_outbox(make_app: Callable[..., tuple[Flask, FlaskAlerting]]) -> None:
    memory = MemoryNotifier()
    app, alerting = make_app([memory], storage_uri="memory://")
    assert get_state(app).pipeline.outbox is None
    alerting.alert("as in 0.1")
    assert alerting.flush(10)
    assert alerting.stats()["outbox"] is None and len(memory.alerts) == 1


def test_a_disabled_app_starts_nothing(
    make_app: Callable[..., tuple[Flask, FlaskAlerting]],
) -> None:
    app, _ = make_app([MemoryNotifier()], enabled=False)
    assert not get_state(app).pipeline._running
