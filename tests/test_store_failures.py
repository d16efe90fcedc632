"""Every store operation fails fast with StoreError, never hangs nor raises anything else:
Redis stopped, frozen or absent, wrong password; SQLite locked, unwritable, corrupt, full,
or a file another user owns. And the breaker opens and closes around a real outage."""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from flask_alerting.store import (
    CircuitBreaker,
    Count,
    ForeignFileError,
    NewWindow,
    Outgoing,
    SQLiteStore,
    Store,
    StoreError,
    current_process,
    parse_storage_uri,
)
from flask_alerting.store import sqlite as sqlite_store
from tests.conftest import FakeClock
from tests.forking import wait_child
from tests.servers import RedisServer
from tests.store_support import NOW, alert, fork, remote_process

ME = current_process()
#: Far above the 50 ms bound of an operation: only a hang (or a retry loop) reaches it.
HANG = 2.0


def operations(store: Store) -> Iterator[tuple[str, Callable[[], object]]]:
    """Every operation of the interface, with valid arguments."""
    yield "ping", store.ping
    yield "open", lambda: store.open_windows([NewWindow("f", alert("f"), 10)], now=NOW, owner=ME)
    yield "add", lambda: store.add_counts([Count("f", 1, NOW, NOW)], now=NOW)
    yield "claim", lambda: store.claim_due(now=NOW + 20, owner=ME)
    yield "drain", lambda: store.drain(now=NOW, owner=ME)
    yield "windows", lambda: store.windows(now=NOW)
    yield "register", lambda: store.register(ME, now=NOW, lease=30)
    yield "deregister", lambda: store.deregister(ME, now=NOW)
    yield "processes", lambda: store.processes(now=NOW)
    yield "put", lambda: store.outbox_put([Outgoing(alert())], owner=ME, now=NOW)
    yield "owe", lambda: store.outbox_owe("1", ["smtp"])
    yield "delete", lambda: store.outbox_delete(["1"])
    yield "claim records", lambda: store.outbox_claim(owner=ME, now=NOW)
    yield "prune", lambda: store.outbox_prune(now=NOW)
    yield "records", store.outbox_records


def assert_all_fail_fast(store: Store, error: type[StoreError] = StoreError,
                         match: str | None = None) -> None:
    for name, operation in operations(store):
        started = time.monotonic()
        with pytest.raises(error, match=match):
            operation()
        assert time.monotonic() - started < HANG, f"{name} took too long"


def assert_all_work(store: Store) -> None:
    for _name, operation in operations(store):
        operation()


def redis_store(url: str, timeout: float | None = None, namespace: str | None = None) -> Store:
    namespace = namespace or f"f-{uuid.uuid4().hex[:8]}"
    return parse_storage_uri(url, namespace=namespace, timeout=timeout)


# -- Redis -----------------------------------------------------------------------------------


def test_redis_stopped_mid_run_then_restarted(own_redis: RedisServer) -> None:
    store = redis_store(own_redis.url)
    assert_all_work(store)
    own_redis.stop()
    assert_all_fail_fast(store)
    own_redis.start(port=own_redis.port)  # the same address, empty, scripts forgotten
    assert_all_work(store)
    assert store.open_window("g", alert("g"), 10, now=NOW, owner=ME).first


def test_a_frozen_redis_times_out(own_redis: RedisServer) -> None:
    store = redis_store(own_redis.url)
    assert_all_work(store)
    own_redis.pause()
    try:
        assert_all_fail_fast(store, match="[Tt]imeout|timed out")
    finally:
        own_redis.resume()
    assert_all_work(store)


def test_a_uri_where_nothing_listens() -> None:
    with socket.socket() as reserved:  # bound, never listening: the port stays unused
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        assert_all_fail_fast(redis_store(f"redis://:hunter2@127.0.0.1:{port}/0"))
        try:
            redis_store(f"redis://:hunter2@127.0.0.1:{port}/0").ping()
        except StoreError as exc:
            assert "hunter2" not in str(exc) and "***" in str(exc)


def test_a_unix_socket_that_does_not_exist(tmp_path: Path) -> None:
    assert_all_fail_fast(redis_store(f"unix://{tmp_path}/nothing.sock?db=0"))


def test_the_unix_socket_of_a_real_server(own_redis: RedisServer) -> None:
    store = redis_store(own_redis.unix_url, namespace="unix")
    assert_all_work(store)
    assert store.open_window("u", alert("u"), 10, now=NOW, owner=ME).first
    tcp = redis_store(own_redis.url, namespace="unix")
    assert not tcp.open_window("u", alert("u"), 10, now=NOW, owner=ME).first


def test_a_wrong_password_is_a_store_error_that_never_shows_it(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start(password="right-pass")
    try:
        good = redis_store(f"redis://:right-pass@127.0.0.1:{server.port}/0")
        assert_all_work(good)
        bad = redis_store(f"redis://:wrong-pass@127.0.0.1:{server.port}/0")
        for name, operation in operations(bad):
            with pytest.raises(StoreError) as info:
                operation()
            assert "wrong-pass" not in str(info.value), name
            assert "wrong-pass" not in repr(bad)
    finally:
        server.stop()


def test_rediss_verifies_the_servers_certificate(tmp_path: Path, ca: trustme.CA) -> None:
    cert, key, ca_file = (str(tmp_path / name) for name in ("cert.pem", "key.pem", "ca.pem"))
    issued = ca.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(cert)
    issued.private_key_pem.write_to_path(key)
    ca.cert_pem.write_to_path(ca_file)
    server = RedisServer(tmp_path).start(tls=(cert, key, ca_file))
    try:
        url = f"rediss://127.0.0.1:{server.port}/0"
        assert_all_work(redis_store(f"{url}?ssl_ca_certs={ca_file}", timeout=5.0))
        # A client that does not trust the server's CA refuses it, fast.
        assert_all_fail_fast(redis_store(url), match="CERTIFICATE_VERIFY_FAILED|certificate")
    finally:
        server.stop()


def test_the_breaker_leaves_a_dead_store_and_comes_back(own_redis: RedisServer) -> None:
    clock = FakeClock()
    store, breaker = redis_store(own_redis.url), CircuitBreaker(retry_after=30, clock=clock)
    assert breaker.call(lambda: store.claim_due(now=NOW, owner=ME)).digests == ()
    own_redis.stop()
    with pytest.raises(StoreError):
        breaker.call(store.ping)
    assert breaker.state == "open" and not breaker.allow()
    own_redis.start(port=own_redis.port)
    assert not breaker.allow()  # not before its time, even though the store is back
    clock.advance(30)
    assert breaker.call(store.ping) is None and breaker.state == "closed"


# -- SQLite ----------------------------------------------------------------------------------


def test_sqlite_paths_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir.sqlite3").mkdir()
    for path in (tmp_path / "missing" / "s.sqlite3", tmp_path / "a-file" / "s.sqlite3",
                 tmp_path / "a-dir.sqlite3", Path("/proc/flask-alerting-test.sqlite3")):
        assert_all_fail_fast(SQLiteStore(str(path)), match="cannot open")


def test_a_sqlite_directory_without_write_permission(tmp_path: Path) -> None:
    """Root writes anywhere: as root, a child that gave up root (uid 65534) uses the store,
    for which the path cannot be written (nor, under pytest's private temp dir, reached)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)

    def check() -> None:
        assert_all_fail_fast(SQLiteStore(str(locked / "s.sqlite3")), match="cannot open")

    try:
        if os.geteuid() == 0:
            _as_nobody(tmp_path, check)
        else:
            check()
    finally:
        locked.chmod(0o700)


def test_a_corrupt_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"this is not a database, " * 200)
    path.chmod(0o600)
    assert_all_fail_fast(SQLiteStore(str(path)), match="not a valid SQLite database")


def test_a_sqlite_file_corrupted_while_in_use(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(str(path))
    assert_all_work(store)
    store.outbox_put([Outgoing(alert())] * 50, owner=ME, now=NOW)
    store.close()
    with open(path, "r+b") as file:  # noqa: PTH123 - bytes in place
        file.write(b"\xde\xad\xbe\xef" * 4096)
    assert_all_fail_fast(store, match="not a valid SQLite database")


def test_a_sqlite_file_locked_by_another_process(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite3")
    store = SQLiteStore(path)
    assert_all_work(store)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for name, operation in operations(store):
            if name in ("ping", "windows", "processes", "records"):
                continue  # readers are never blocked in WAL mode
            started = time.monotonic()
            with pytest.raises(StoreError, match="locked"):
                operation()
            assert time.monotonic() - started < HANG
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_all_work(store)


def test_a_new_file_that_another_process_is_setting_up_is_waited_for(tmp_path: Path) -> None:
    """The workers of a server that start on a fresh runtime directory open the new store
    together: while one sets the file up, SQLite answers the others' switch to WAL mode
    "locked" at once, whatever the busy timeout (the message then claimed the file had
    stayed locked past it). They wait their turn instead of falling back."""
    path = tmp_path / "s.sqlite3"
    path.touch(mode=0o600)  # as the store creates it: empty, ours
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another process setting the new file up
    release = threading.Timer(0.2, holder.execute, args=("COMMIT",))
    release.start()
    try:
        store = SQLiteStore(str(path), timeout=30)
        store.register(ME, now=NOW, lease=30)
        assert [p.process for p in store.processes(now=NOW)] == [ME]
    finally:
        release.join()
        holder.close()


def test_a_full_disk(tmp_path: Path) -> None:
    """A child whose file size limit stands for a full disk: writes fail, as StoreError."""
    import resource
    import signal

    path = str(tmp_path / "s.sqlite3")
    SQLiteStore(path).ping()  # created at its small initial size
    pid = fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            limit = os.path.getsize(path) + 64 * 1024
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            store = SQLiteStore(path)
            big = alert(message="x" * 30_000)
            for i in range(100):
                store.outbox_put([Outgoing(big)], owner=ME, now=NOW + i)
        except StoreError as exc:
            code = 0 if ("full" in str(exc) or "I/O" in str(exc)) else 3
        except BaseException:
            code = 2
        os._exit(code)
    assert wait_child(pid, timeout=60) == 0


# -- files of other users --------------------------------------------------------------------


def _as_nobody(directory: Path, action: Callable[[], None]) -> None:
    """Run ``action`` in a child that became uid/gid 65534, inside ``directory``."""
    pid = fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        try:
            os.chdir(directory)  # while still root: the parents may be closed to nobody
            os.setgid(65534)
            os.setuid(65534)
            action()
            os._exit(0)
        except BaseException:
            os._exit(1)
    assert wait_child(pid, timeout=30) == 0


root_only = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to create another "
    "user's file (setuid 65534)"
)


@root_only
@pytest.mark.parametrize("suffix", ["", "-wal", "-shm"])
def test_a_file_another_user_owns_is_refused(tmp_path: Path, suffix: str) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    path = str(shared / "s.sqlite3")
    if suffix:  # the database is ours; a companion file is not
        store = SQLiteStore(path)
        store.ping()
        store.close()
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    name = "s.sqlite3" + suffix
    _as_nobody(shared, lambda: os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o666)))
    assert os.stat(path + suffix).st_uid == 65534
    assert_all_fail_fast(SQLiteStore(path), ForeignFileError, match="owned by uid 65534")


def test_a_symbolic_link_or_a_fifo_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "real.sqlite3"
    SQLiteStore(str(target)).ping()
    os.symlink(target, tmp_path / "link.sqlite3")
    assert_all_fail_fast(SQLiteStore(str(tmp_path / "link.sqlite3")), ForeignFileError,
                         match="symbolic link")
    os.mkfifo(tmp_path / "fifo.sqlite3")
    assert_all_fail_fast(SQLiteStore(str(tmp_path / "fifo.sqlite3")), ForeignFileError,
                         match="not a regular file")


def test_files_are_created_private(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite3")
    store = SQLiteStore(path)
    store.outbox_put([Outgoing(alert())], owner=ME, now=NOW)
    for name in (path, path + "-wal", path + "-shm"):
        info = os.stat(name)
        assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()


def test_a_forked_child_uses_its_own_connection(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.sqlite3"))
    store.register(remote_process(), now=NOW, lease=60)
    pid = fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        try:
            store.outbox_put([Outgoing(alert("child"))], owner=ME, now=NOW)
            os._exit(0 if len(store.processes(now=NOW)) == 1 else 1)
        except BaseException:
            os._exit(2)
    assert wait_child(pid, timeout=30) == 0
    assert [r.alert.title for r in store.outbox_records() if r.alert] == ["boom"]
    assert store.windows(now=NOW) == [] and sys.platform != "win32"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_fork_waits_for_the_operation_another_thread_has_under_way(tmp_path: Path) -> None:
    """The dispatch thread is in the middle of an operation (here waiting for another
    connection's write) when the application forks: SQLite's mutexes and locks would be
    copied into the child as they are then, and its first operation could hang for good.
    The fork waits until the operation is over: the child sees it written, and its own
    operations work."""
    path = str(tmp_path / "s.sqlite3")
    store = SQLiteStore(path, timeout=30)
    store.ping()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    thread = threading.Thread(
        target=lambda: store.outbox_put([Outgoing(alert(title="waited"))], owner=ME, now=NOW)
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not store._lock.locked():  # the operation is under way
        assert time.monotonic() < deadline
        threading.Event().wait(0.01)
    release = threading.Timer(0.3, holder.execute, args=("ROLLBACK",))
    release.start()
    pid = fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        try:
            store.timeout = 2.0
            store.outbox_put([Outgoing(alert(title="child"))], owner=ME, now=NOW)
            titles = [r.alert.title for r in store.outbox_records() if r.alert]
            os._exit(0 if titles == ["waited", "child"] else 1)
        except BaseException:
            os._exit(2)
    try:
        assert wait_child(pid, timeout=30) == 0
    finally:
        release.join()
        thread.join(30)
        holder.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_past_the_wait_never_uses_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operation still under way after FORK_WAIT: the fork goes on, and the child's
    operations fail fast with StoreError (its pipeline throttles on its own) rather
    than run on SQLite's state copied in the middle of that operation."""
    monkeypatch.setattr(sqlite_store, "FORK_WAIT", 0.05)
    path = str(tmp_path / "s.sqlite3")
    store = SQLiteStore(path, timeout=30)
    store.ping()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    thread = threading.Thread(
        target=lambda: store.outbox_put([Outgoing(alert())], owner=ME, now=NOW)
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not store._lock.locked():  # the operation is under way
            assert time.monotonic() < deadline
            threading.Event().wait(0.01)
        pid = fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit code
            code = 1
            try:
                store.ping()
            except StoreError as exc:
                code = 0 if "forked while another thread" in str(exc) else 3
            except BaseException:
                code = 2
            os._exit(code)
        assert wait_child(pid, timeout=30) == 0
    finally:
        holder.execute("ROLLBACK")
        thread.join(30)
        holder.close()
    assert len(store.outbox_records()) == 1  # the parent's store works on
