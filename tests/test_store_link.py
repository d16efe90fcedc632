"""The store plumbing: ALERTING_STORAGE_URI, one store per app, the dispatch thread's link
to it (registration, heartbeat, breaker, store tick), fork and shutdown.

Stores are real (SQLite files under tmp_path; a real redis-server where it matters);
failures are real ones (a path that cannot be opened); time is an injected clock.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from flask import Flask

from flask_alerting import ConfigurationError, FlaskAlerting, MemoryNotifier
from flask_alerting._state import get_state
from flask_alerting.delivery.store_link import HEARTBEAT, LEASE, StoreLink
from flask_alerting.store import (
    BreakerOpen,
    ForeignFileError,
    MemoryStore,
    SQLiteStore,
    Store,
    StoreError,
    current_process,
    default_sqlite_path,
    parse_storage_uri,
)
from tests.conftest import FakeClock
from tests.forking import wait_child
from tests.store_support import fork

ME = current_process()


def app_with(**config: Any) -> Flask:
    app = Flask("link-app")
    app.config.update(ALERTING_METRICS_ENABLED=False, PROPAGATE_EXCEPTIONS=False, **config)
    return app


# -- the configuration key --------------------------------------------------------------------


def test_the_default_store_is_a_sqlite_file_of_this_host_beside_the_lock_file(
    private_runtime_dir: Path,
) -> None:
    app = app_with()
    alerting = FlaskAlerting(app, notifiers=[MemoryNotifier()])
    try:
        state = get_state(app)
        assert isinstance(state.store, SQLiteStore) and state.store.shared
        assert state.store.path == default_sqlite_path("link-app")
        assert os.path.dirname(state.store.path) == os.path.dirname(state.sampler.lock_path)
        assert os.path.dirname(state.store.path) == str(private_runtime_dir)
        assert state.config.storage_uri is None
        assert state.pipeline.link is not None
        # The dispatch thread runs from init_app on (its store tick takes over what ended
        # processes left in the outbox), but a store file that does not exist holds
        # nothing: the first alert creates it and registers this process.
        link = state.pipeline.link
        alerting.alert("hello")
        assert alerting.flush(10)
        assert link.registered and os.path.exists(state.store.path)
    finally:
        alerting.shutdown()


def test_without_a_private_runtime_dir_the_default_directory_is_made_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    store = parse_storage_uri(None, app_name="link-app")
    assert isinstance(store, SQLiteStore)
    directory = tmp_path / f"flask-alerting-{os.geteuid()}"
    assert os.path.dirname(store.path) == str(directory) and not directory.exists()
    store.register(ME, now=1e9, lease=30)  # the first use makes the directory, 0700
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    store.close()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_a_default_directory_another_user_owns_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    directory = tmp_path / f"flask-alerting-{os.geteuid()}"
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)  # made first by another local user
    store = parse_storage_uri(None, app_name="link-app")
    with pytest.raises(ForeignFileError, match="owned by uid 65534"):
        store.register(ME, now=1e9, lease=30)
    assert list(directory.iterdir()) == []


def test_a_testing_app_keeps_to_itself() -> None:
    app = app_with(TESTING=True)
    alerting = FlaskAlerting(app, notifiers=[MemoryNotifier()])
    try:
        state = get_state(app)
        assert isinstance(state.store, MemoryStore) and not state.store.shared
        assert state.config.storage_uri == "memory://"
        assert state.pipeline.link is None  # the per-process path of 0.1, untouched
        assert alerting.stats()["store"] is None
    finally:
        alerting.shutdown()


def test_an_explicit_store_wins_over_testing(tmp_path: Path) -> None:
    path = tmp_path / "explicit.sqlite3"
    app = app_with(TESTING=True, ALERTING_STORAGE_URI=f"sqlite:///{path}")
    alerting = FlaskAlerting(app, notifiers=[MemoryNotifier()])
    try:
        store = get_state(app).store
        assert isinstance(store, SQLiteStore) and store.path == str(path)
    finally:
        alerting.shutdown()
    memory = app_with(ALERTING_STORAGE_URI=" memory:// ")
    other = FlaskAlerting(memory, storage_uri=None)  # the constructor wins: the default
    try:
        assert isinstance(get_state(memory).store, SQLiteStore)
    finally:
        other.shutdown()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ftp://example.com/x", "not a storage URI"),
        ("sqlite://relative/path.sqlite3", "absolute path"),
        ("memory://somewhere", "memory:// takes nothing after it"),
        ("redis://:s3cret-pw@localhost:6379/zero", "the database is a number"),
        (42, "None or a storage URI"),
        ("redis://host\n", "None or a storage URI"),
    ],
)
def test_a_bad_uri_is_a_configuration_error_naming_the_key(value: object, expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        FlaskAlerting(app_with(ALERTING_STORAGE_URI=value))
    assert info.value.key == "ALERTING_STORAGE_URI"
    text = str(info.value)
    assert text.startswith("ALERTING_STORAGE_URI: expected ") and expected in text
    assert "s3cret" not in text


def test_status_shows_the_default_store() -> None:
    app = app_with()
    alerting = FlaskAlerting(app, notifiers=[MemoryNotifier()])
    try:
        result = app.test_cli_runner().invoke(args=["alerting", "status"])
        (line,) = [ln for ln in result.output.splitlines() if "ALERTING_STORAGE_URI" in ln]
        default = f"sqlite://{default_sqlite_path('link-app')}"
        assert line.split(None, 1) == ["ALERTING_STORAGE_URI", f"None (default: {default})"]
    finally:
        alerting.shutdown()


def test_status_masks_a_redis_password() -> None:
    app = app_with(ALERTING_STORAGE_URI="redis://:s3cret-pw@127.0.0.1:1/0")
    alerting = FlaskAlerting(app, notifiers=[MemoryNotifier()])
    try:
        output = app.test_cli_runner().invoke(args=["alerting", "status"]).output
        assert "redis://:***@127.0.0.1:1/0" in output and "s3cret" not in output
    finally:
        alerting.shutdown()


# -- one store per app, used by the dispatch thread only ---------------------------------------


def open_files(path: str) -> bool:
    return any(f.path == path for f in psutil.Process().open_files())


def test_the_dispatch_thread_registers_and_shutdown_deregisters_and_closes(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "s.sqlite3")
    app = app_with(ALERTING_STORAGE_URI=f"sqlite:///{path}")
    memory = MemoryNotifier()
    alerting = FlaskAlerting(app, notifiers=[memory])
    reader = SQLiteStore(path)
    try:
        alerting.alert("hello")  # starts the dispatch thread
        assert alerting.flush(10)
        (info,) = reader.processes(now=reader_now())
        assert info.process == ME and info.alive
        assert info.deadline == pytest.approx(reader_now() + LEASE, abs=5)
        assert open_files(path)
        stats = alerting.stats()["store"]
        assert stats == {"uri": f"sqlite://{path}", "state": "closed", "registered": True,
                         "failures": 0}
        assert alerting.shutdown(10)
        assert reader.processes(now=reader_now()) == []
        reader.close()
        assert not open_files(path)
    finally:
        reader.close()
        alerting.shutdown()


def test_a_process_that_never_used_its_store_leaves_it_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    app = app_with(ALERTING_STORAGE_URI=f"sqlite:///{path}")
    alerting = FlaskAlerting(app, notifiers=[MemoryNotifier()])
    assert alerting.flush(10) and alerting.shutdown(10)  # nothing raised: nothing to do
    assert not path.exists()


def created(path: str) -> str:
    """``path``, once a store there exists (as another process that used it made it)."""
    store = SQLiteStore(path)
    store.ping()
    store.close()
    return path


def reader_now() -> float:
    import time

    return time.time()


def test_store_operations_run_on_the_dispatch_thread_only(tmp_path: Path) -> None:
    """Every store operation (and SQLite connection), seen by a profiler on every
    thread: the outbox's records (written before delivery, settled after it) included.
    Closing a store is no operation: a freed app's may be closed anywhere."""
    app = app_with(ALERTING_STORAGE_URI=f"sqlite:///{tmp_path / 's.sqlite3'}")

    @app.route("/fail")
    def fail() -> str:
        raise ValueError("boom")

    store_dir = os.path.dirname(sys.modules["flask_alerting.store"].__file__ or "")
    operations = set(Store.__abstractmethods__) | {"_connect", "_tx"}
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def profile(frame: Any, event: str, arg: Any) -> None:
        code = frame.f_code
        if event == "call" and code.co_name in operations and code.co_filename.startswith(
            store_dir
        ):
            name = threading.current_thread().name
            with lock:
                seen[name] = seen.get(name, 0) + 1

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        # init_app starts the dispatch thread (to take over what ended processes left).
        alerting = FlaskAlerting(app, notifiers=[MemoryNotifier(), MemoryNotifier()])
        client = app.test_client()
        for n in range(20):
            assert client.get("/fail").status_code == 500
            if n < 10:
                alerting.alert(f"distinct {n}")  # each one recorded, delivered, settled
        assert alerting.flush(10)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    try:
        outbox = alerting.stats()["outbox"]
        assert outbox["recorded"] == 11 and outbox["in_flight"] == 0
        assert get_state(app).store.outbox_records() == []
    finally:
        alerting.shutdown()
    assert seen, "the store was never used"
    assert set(seen) == {"flask-alerting-link-app-dispatch"}, seen


# -- the link: registration, heartbeat, breaker, store tick (an injected clock) -----------------


@pytest.fixture
def make_link(clock: FakeClock) -> Iterator[Callable[..., StoreLink]]:
    made: list[StoreLink] = []

    def make(path: str, **kwargs: Any) -> StoreLink:
        link = StoreLink(SQLiteStore(path), name="app", clock=clock, **kwargs)
        made.append(link)
        return link

    yield make
    for link in made:
        link.close()


def test_the_first_tick_registers_and_heartbeats_renew_the_lease(
    tmp_path: Path, clock: FakeClock, make_link: Callable[..., StoreLink]
) -> None:
    path = str(tmp_path / "s.sqlite3")
    link = make_link(path)
    assert link.tick() is not None and not link.registered  # no store yet: left uncreated
    assert not os.path.exists(path)
    created(path)  # another process used the store
    assert not link.registered
    due = link.tick()
    assert link.registered
    (first,) = link.store.processes(now=link.now())
    assert first.deadline == pytest.approx(link.now() + LEASE)
    assert due == clock.now + HEARTBEAT  # no store-tick hook: nothing else to wake for
    link.on_tick(lambda now: None)
    assert link.tick() == clock.now + 1.0  # the next store tick
    clock.advance(HEARTBEAT - 0.5)
    link.tick()
    assert link.store.processes(now=link.now())[0].deadline == first.deadline  # not yet
    clock.advance(0.5)
    link.tick()
    (renewed,) = link.store.processes(now=link.now())
    assert renewed.deadline == pytest.approx(first.deadline + HEARTBEAT)
    assert link.leave() is True  # the only process of the store
    assert link.store.processes(now=link.now()) == []
    assert link.tick() is None and link.leave() is True  # once left, nothing more
    assert link.store.processes(now=link.now()) == []


def test_a_failing_store_is_logged_once_tried_again_and_its_return_logged(
    tmp_path: Path,
    clock: FakeClock,
    make_link: Callable[..., StoreLink],
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the store's directory should be")
    link = make_link(str(blocker / "s.sqlite3"), retry_after=30.0)
    caplog.set_level(logging.WARNING, logger="flask_alerting")

    link.ensure_registered()  # the first write: registering fails, the breaker opens
    assert not link.registered and link.state == "open" and not link.available
    (failed,) = [r for r in caplog.records if "failed while registering" in r.getMessage()]
    text = failed.getMessage()
    assert f"the alert store sqlite://{blocker}/s.sqlite3 of app 'app'" in text
    assert "cannot open" in text and "throttles on its own" in text
    assert "retrying every 30 s" in text
    with pytest.raises(BreakerOpen):
        link.call("opening windows", lambda: pytest.fail("never tried while open"))
    for _ in range(3):  # trials that fail again: not logged again
        clock.advance(30.0)
        assert link.tick() == clock.now + 30.0
        assert not link.registered
    assert len([r for r in caplog.records if "failed" in r.getMessage()]) == 1
    assert link.failures == 4

    blocker.unlink()
    blocker.mkdir()  # the store can be opened now
    clock.advance(29.0)
    link.tick()
    assert not link.registered  # not tried before its time
    clock.advance(1.0)
    link.tick()
    assert link.registered and link.available
    (back,) = [r for r in caplog.records if "answers again;" in r.getMessage()]
    assert f"sqlite://{blocker}/s.sqlite3 of app 'app' answers again" in back.getMessage()
    assert [p.process for p in link.store.processes(now=link.now())] == [ME]


def test_a_store_that_comes_back_through_another_call_is_registered_again(
    tmp_path: Path, clock: FakeClock, make_link: Callable[..., StoreLink]
) -> None:
    path = tmp_path / "s.sqlite3"
    link = make_link(str(path))
    link.tick()
    link.store.deregister(ME, now=link.now())  # as a restarted Redis would forget it
    path.unlink()
    (tmp_path / "s.sqlite3-wal").unlink(missing_ok=True)
    os.mkdir(path)  # now it cannot be opened
    link.store.close()
    with pytest.raises(StoreError):
        link.call("counting", link.store.ping)
    os.rmdir(path)
    clock.advance(30.0)
    link.call("opening windows", link.store.ping)  # the trial succeeds here
    assert link.available
    link.tick()  # registers again at once
    assert [p.process for p in link.store.processes(now=link.now())] == [ME]


def test_an_unexpected_exception_of_a_store_counts_as_a_failure(
    tmp_path: Path, make_link: Callable[..., StoreLink], caplog: pytest.LogCaptureFixture
) -> None:
    link = make_link(str(tmp_path / "s.sqlite3"))
    with pytest.raises(StoreError, match="unexpected ValueError: limit must be >= 1"):
        # A bug of the caller: the store refuses it with ValueError.
        link.call("claiming", lambda: link.store.claim_due(now=link.now(), owner=ME, limit=0))
    assert link.state == "open"
    assert any(r.exc_info for r in caplog.records if "failed while claiming" in r.getMessage())


def test_store_tick_hooks_run_while_the_store_answers(
    tmp_path: Path,
    clock: FakeClock,
    make_link: Callable[..., StoreLink],
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    link = make_link(created(str(blocker / "s.sqlite3")))
    ticks: list[float] = []
    link.on_tick(ticks.append)
    link.on_tick(lambda now: 1 / 0)  # a broken hook never stops the others
    link.tick()
    link.tick()
    assert ticks == [pytest.approx(link.now())]
    clock.advance(1.0)
    link.tick()
    assert len(ticks) == 2 and ticks[1] - ticks[0] == pytest.approx(1.0)
    assert "internal error while running a store tick" in caplog.text

    link.store.close()
    shutil.rmtree(blocker)
    blocker.write_text("now the store cannot be opened")
    clock.advance(HEARTBEAT)
    link.tick()  # the heartbeat fails: no hook runs while the store is down
    clock.advance(1.0)
    link.tick()
    assert len(ticks) == 2


# -- fork ------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_registers_as_a_process_of_its_own(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite3")
    app = app_with(ALERTING_STORAGE_URI=f"sqlite:///{path}")
    alerting = FlaskAlerting(app, notifiers=[MemoryNotifier()])
    try:
        alerting.alert("parent")
        assert alerting.flush(10)
        parent_link = get_state(app).pipeline.link
        pid = fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit code
            code = 1
            try:
                alerting.alert("child")
                ok = alerting.flush(10)
                link = get_state(app).pipeline.link
                names = {p.process.pid for p in SQLiteStore(path).processes(now=reader_now())}
                if ok and link is not parent_link and link is not None and link.registered:
                    code = 0 if names == {os.getppid(), os.getpid()} else 3
                else:
                    code = 2
            finally:
                os._exit(code)
        assert wait_child(pid, timeout=30) == 0
        processes = SQLiteStore(path).processes(now=reader_now())
        assert {p.process.pid: p.alive for p in processes} == {os.getpid(): True, pid: False}
        assert alerting.flush(10)
        assert get_state(app).pipeline.link is parent_link and parent_link.available
    finally:
        alerting.shutdown()
