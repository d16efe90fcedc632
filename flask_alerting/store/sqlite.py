"""``sqlite:///absolute/path.sqlite3``: one file shared by the processes of a host.

The standard library's :mod:`sqlite3` in WAL mode: readers never wait, writers wait at
most ``timeout`` for each other (SQLite's busy handler), and every operation that must be
atomic is one ``BEGIN IMMEDIATE`` transaction (the write lock is taken up front, so two
transactions never deadlock). A process killed in the middle of one leaves nothing
behind: SQLite rolls it back.

The file is checked before SQLite opens it, as are its ``-wal`` and ``-shm`` companions
(see :func:`~flask_alerting.store._files.check_private_file`): a file another user owns is
refused. Failures (locked past the timeout, disk full, a corrupt file, no permission)
raise :class:`~flask_alerting.store.StoreError`; the connection is dropped and opened again
on the next operation. After a fork the child opens its own connection and never touches
its parent's (closing it could remove the parent's WAL).

A fork waits for the operations under way on another thread (the dispatch thread of a
pipeline, say, while the application starts its ``multiprocessing`` workers): SQLite's
mutexes and the state of its file locks would be copied into the child as they were in
the middle of one, and the child's first operation could then hang for good. Past
:data:`FORK_WAIT` the fork goes on, and the child never uses SQLite: its operations raise
:class:`~flask_alerting.store.StoreError` (the pipeline then throttles on its own).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import urllib.parse
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from .. import _lifecycle
from .._files import UnsafeFileError, open_private, private_directory
from .base import (
    Limits,
    Store,
    added,
    check_limit,
    dead_owners,
    make_digest,
    owner_alive,
    record_number,
)
from .codec import decode_or_none, encode_alert
from .errors import ForeignFileError, StoreError
from .model import (
    Added,
    Claim,
    Count,
    Digest,
    NewWindow,
    Opened,
    Outgoing,
    ProcessInfo,
    Put,
    Record,
    WindowInfo,
)
from .process import ProcessId

#: Default bound of one wait for another process's write lock, in seconds.
TIMEOUT = 0.05
SCHEMA_VERSION = 1
#: Connections inherited over a fork: kept referenced, never closed (see module doc).
_ABANDONED: list[sqlite3.Connection] = []
#: Seconds a fork waits, at most, for the operations under way on the stores (each
#: statement waits at most its store's timeout for another process's lock).
FORK_WAIT = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    fp TEXT PRIMARY KEY, start REAL NOT NULL, "end" REAL NOT NULL, length REAL NOT NULL,
    owner TEXT NOT NULL, template TEXT NOT NULL, count INTEGER NOT NULL DEFAULT 0,
    first REAL, last REAL, nv INTEGER NOT NULL DEFAULT 0, total REAL NOT NULL DEFAULT 0,
    high REAL, low REAL);
CREATE INDEX IF NOT EXISTS windows_end ON windows ("end", fp);
CREATE TABLE IF NOT EXISTS processes (name TEXT PRIMARY KEY, deadline REAL NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, created REAL NOT NULL,
    notifiers TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL, recovered_from TEXT);
CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created, id);
CREATE INDEX IF NOT EXISTS outbox_owner ON outbox (owner);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_WINDOW = 'fp, start, "end", length, owner, template, count, first, last, nv, total, high, low'
_RECORD = "id, owner, created, notifiers, kind, payload, recovered_from"


def _explain(exc: BaseException, path: str, timeout: float) -> str:
    text = str(exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return f"{path} stayed locked by another process for more than {timeout} s"
    if "full" in lowered:
        return f"{path}: the database or the disk is full ({text})"
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return f"{path} is not a valid SQLite database ({text}); remove it to start afresh"
    return f"{path}: {text}"


class SQLiteStore(Store):
    """The SQLite store (see the module docstring).

    :param path: absolute path of the database file.
    :param timeout: the most one operation waits for another process's lock, in seconds.
    :param private_dir: create the file's directory (``0700``) when it is missing, and
        refuse it when it is not this user's alone (the default store's directory, see
        :func:`~flask_alerting._files.private_directory`).
    """

    scheme = "sqlite"

    def __init__(
        self,
        path: str,
        *,
        timeout: float = TIMEOUT,
        limits: Limits | None = None,
        private_dir: bool = False,
    ):
        if not os.path.isabs(path):
            raise ValueError(f"the SQLite store needs an absolute path, got {path!r}")
        path = os.path.normpath("/" + path.lstrip("/"))
        super().__init__("sqlite://" + path, limits)
        self.path = path
        self.timeout = timeout
        self.private_dir = private_dir
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._conn: sqlite3.Connection | None = None
        _stores.add(self)

    # -- connection and transactions ---------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.private_dir:
            _check_private_directory(os.path.dirname(self.path))
        _check_private_file(self.path)
        for suffix in ("-wal", "-shm"):
            _check_private_file(self.path + suffix)
        uri = "file:" + urllib.parse.quote(self.path) + "?mode=rw"
        conn = sqlite3.connect(
            uri, uri=True, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._use_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer flask-alerting (schema {version})"
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Put the file in WAL mode (it stays so: then this reads the mode and returns).

        The processes that open a new file at once (the workers of a server starting on
        a fresh runtime directory) race for the switch, and SQLite answers "locked" at
        once, without its busy timeout, to one that asks while another sets the file up:
        it asks again until the timeout has passed, as the busy timeout would have.
        """
        deadline = time.monotonic() + self.timeout
        pause = 0.001
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                left = deadline - time.monotonic()
                if left <= 0 or ("locked" not in str(exc) and "busy" not in str(exc)):
                    raise
            time.sleep(min(pause, left))
            pause = min(2 * pause, 0.05)

    @contextlib.contextmanager
    def _tx(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction (``BEGIN IMMEDIATE`` when ``write``); errors as StoreError."""
        if self._pid != os.getpid():  # forked: never use nor close the parent's connection
            if self._conn is not None:
                _ABANDONED.append(self._conn)
            self._conn, self._pid, self._lock = None, os.getpid(), threading.Lock()
        if _forked_mid_operation == self._pid:
            raise StoreError(
                f"{self.path} is not used by this process: it was forked while another "
                f"thread of its parent was still in a store operation after {FORK_WAIT:g} s"
            )
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                conn = self._conn
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
            except StoreError:
                self._drop()
                raise
            except (sqlite3.Error, OSError, MemoryError) as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    self._drop()
                raise StoreError(_explain(exc, self.path, self.timeout)) from exc

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        if self._pid == os.getpid():
            with self._lock:
                self._drop()

    def __del__(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is None:
            return
        if self._pid == os.getpid():
            with contextlib.suppress(Exception):
                conn.close()
        else:  # a forked child never closes its parent's connection
            _ABANDONED.append(conn)

    def may_hold_records(self) -> bool:
        return os.path.lexists(self.path)

    def ping(self) -> None:
        with self._tx() as conn:
            conn.execute("SELECT count(*) FROM windows").fetchone()

    # -- windows -----------------------------------------------------------------------

    def open_windows(
        self, items: Sequence[NewWindow], *, now: float, owner: ProcessId
    ) -> list[Opened]:
        templates = [encode_alert(item.template) for item in items]
        out = []
        with self._tx() as conn:
            size: int | None = None  # counted once, and only when a window is new
            for item, template in zip(items, templates, strict=True):
                row = conn.execute(
                    'SELECT "end", count FROM windows WHERE fp = ?', (item.fingerprint,)
                ).fetchone()
                if row is not None and (row[0] > now or row[1]):
                    out.append(Opened(item.fingerprint, False, row[0]))
                    continue
                if row is None:
                    if size is None:
                        size = conn.execute("SELECT count(*) FROM windows").fetchone()[0]
                    if size >= self.limits.max_windows:
                        out.append(Opened(item.fingerprint, True, None))
                        continue
                    size += 1
                end = now + item.window
                conn.execute(
                    'INSERT OR REPLACE INTO windows (fp, start, "end", length, owner, template)'
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (item.fingerprint, now, end, item.window, str(owner), template),
                )
                out.append(Opened(item.fingerprint, True, end))
        return out

    def add_counts(self, counts: Sequence[Count], *, now: float) -> list[Added]:
        templates = [encode_alert(c.template) if c.template else None for c in counts]
        fps = sorted({c.fingerprint for c in counts})
        ends: dict[str, float] = {}
        with self._tx() as conn:
            for i in range(0, len(fps), 500):
                chunk = fps[i : i + 500]
                marks = ", ".join("?" * len(chunk))
                ends.update(conn.execute(
                    f'SELECT fp, "end" FROM windows WHERE fp IN ({marks})', chunk
                ).fetchall())
            conn.executemany(
                "UPDATE windows SET count = count + ?, first = min(coalesce(first, ?), ?),"
                " last = max(coalesce(last, ?), ?), nv = nv + ?, total = total + ?,"
                " high = CASE WHEN ? IS NULL THEN high ELSE max(coalesce(high, ?), ?) END,"
                " low = CASE WHEN ? IS NULL THEN low ELSE min(coalesce(low, ?), ?) END,"
                " template = coalesce(?, template) WHERE fp = ?",
                [
                    (c.count, c.first_seen, c.first_seen, c.last_seen, c.last_seen, c.values,
                     c.total, c.high, c.high, c.high, c.low, c.low, c.low, template,
                     c.fingerprint)
                    for c, template in zip(counts, templates, strict=True)
                    if c.fingerprint in ends
                ],
            )
        return [added(c, ends.get(c.fingerprint)) for c in counts]

    def _claim(
        self, conn: sqlite3.Connection, row: Any, now: float, owner: str,
        notifiers: Sequence[str], reopen: bool,
    ) -> Digest | None:
        fields = dict(zip(_WINDOW.replace('"', "").split(", "), row, strict=True))
        fp = fields["fp"]
        next_end = now + fields["length"] if reopen else None
        if reopen:
            conn.execute(
                'UPDATE windows SET start = ?, "end" = ?, owner = ?, count = 0, first = NULL,'
                " last = NULL, nv = 0, total = 0, high = NULL, low = NULL WHERE fp = ?",
                (now, next_end, owner, fp),
            )
        else:
            conn.execute("DELETE FROM windows WHERE fp = ?", (fp,))
        if not fields["count"]:
            return None
        payload = {k: v for k, v in fields.items() if k not in ("owner", "length")}
        payload["next_end"] = next_end
        record = conn.execute(
            "INSERT INTO outbox (owner, created, notifiers, kind, payload) VALUES (?, ?, ?, ?, ?)",
            (owner, now, json.dumps(list(notifiers)), "digest", json.dumps(payload)),
        ).lastrowid
        return make_digest(fields, decode_or_none(fields["template"]), str(record), next_end)

    def claim_due(
        self, *, now: float, owner: ProcessId, limit: int = 100, notifiers: Sequence[str] = ()
    ) -> Claim:
        check_limit(limit)
        cutoff = now - self.limits.grace
        digests = []
        with self._tx() as conn:
            rows = conn.execute(
                f'SELECT {_WINDOW} FROM windows WHERE "end" <= ? ORDER BY "end", fp LIMIT ?',
                (cutoff, limit),
            ).fetchall()
            for row in rows:
                digest = self._claim(conn, row, now, str(owner), notifiers, bool(row[6]))
                if digest is not None:
                    digests.append(digest)
            if digests:
                self._prune(conn, now)
            more = conn.execute('SELECT 1 FROM windows WHERE "end" <= ?', (cutoff,)).fetchone()
            next_due = conn.execute('SELECT min("end") FROM windows').fetchone()[0]
        return Claim(tuple(digests), next_due, more is not None)

    def drain(
        self, *, now: float, owner: ProcessId, notifiers: Sequence[str] = ()
    ) -> list[Digest]:
        with self._tx() as conn:
            rows = conn.execute(f'SELECT {_WINDOW} FROM windows ORDER BY "end", fp').fetchall()
            found = [self._claim(conn, row, now, str(owner), notifiers, False) for row in rows]
            self._prune(conn, now)
        return [d for d in found if d is not None]

    def windows(self, *, now: float) -> list[WindowInfo]:
        with self._tx(write=False) as conn:
            rows = conn.execute(
                'SELECT fp, start, "end", count, owner FROM windows ORDER BY "end", fp'
            ).fetchall()
        return [WindowInfo(*row) for row in rows]

    # -- processes ---------------------------------------------------------------------

    def register(self, process: ProcessId, *, now: float, lease: float) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO processes (name, deadline) VALUES (?, ?)",
                (str(process), now + lease),
            )
            conn.execute(
                "DELETE FROM processes WHERE deadline < ?", (now - self.limits.retention,)
            )

    def deregister(self, process: ProcessId, *, now: float) -> bool:
        with self._tx() as conn:
            conn.execute("DELETE FROM processes WHERE name = ?", (str(process),))
            procs = dict(conn.execute("SELECT name, deadline FROM processes").fetchall())
            dead = dead_owners(procs, procs, now, str(process))
            conn.executemany("DELETE FROM processes WHERE name = ?", [(d,) for d in dead])
        return len(procs) == len(dead)

    def processes(self, *, now: float) -> list[ProcessInfo]:
        with self._tx(write=False) as conn:
            procs = dict(conn.execute("SELECT name, deadline FROM processes ORDER BY name"))
        return [
            ProcessInfo(ProcessId.parse(name), deadline, owner_alive(name, procs, now))
            for name, deadline in procs.items()
        ]

    # -- outbox ------------------------------------------------------------------------

    def _prune(self, conn: sqlite3.Connection, now: float, room: int = 0) -> None:
        old = conn.execute(
            "DELETE FROM outbox WHERE created < ?", (now - self.limits.max_age,)
        ).rowcount
        excess = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        excess += room - self.limits.max_records
        if excess > 0:
            old += conn.execute(
                "DELETE FROM outbox WHERE id IN"
                " (SELECT id FROM outbox ORDER BY created, id LIMIT ?)",
                (excess,),
            ).rowcount
        if old:
            conn.execute(
                "INSERT INTO counters (name, value) VALUES ('dropped', ?) ON CONFLICT (name)"
                " DO UPDATE SET value = value + excluded.value",
                (old,),
            )

    def _take_dropped(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        if not row or not row[0]:
            return 0
        conn.execute("UPDATE counters SET value = 0 WHERE name = 'dropped'")
        return int(row[0])

    def outbox_put(self, items: Sequence[Outgoing], *, owner: ProcessId, now: float) -> Put:
        payloads = [encode_alert(item.alert) for item in items]
        ids = []
        with self._tx() as conn:
            self._prune(conn, now, room=len(items))
            for item, payload in zip(items, payloads, strict=True):
                cursor = conn.execute(
                    "INSERT INTO outbox (owner, created, notifiers, kind, payload)"
                    " VALUES (?, ?, ?, 'alert', ?)",
                    (str(owner), now, json.dumps(list(item.notifiers)), payload),
                )
                ids.append(str(cursor.lastrowid))
            self._prune(conn, now)
            dropped = self._take_dropped(conn)
        return Put(tuple(ids), dropped)

    def outbox_owe(self, record: str, notifiers: Sequence[str]) -> bool:
        with self._tx() as conn:
            if notifiers:
                cursor = conn.execute(
                    "UPDATE outbox SET notifiers = ? WHERE id = ?",
                    (json.dumps(list(notifiers)), record_number(record)),
                )
            else:
                cursor = conn.execute("DELETE FROM outbox WHERE id = ?", (record_number(record),))
            return cursor.rowcount > 0

    def outbox_delete(self, records: Sequence[str]) -> int:
        with self._tx() as conn:
            return sum(
                conn.execute("DELETE FROM outbox WHERE id = ?", (record_number(r),)).rowcount
                for r in records
            )

    def outbox_claim(self, *, owner: ProcessId, now: float, limit: int = 100) -> list[Record]:
        check_limit(limit)
        me = str(owner)
        with self._tx() as conn:
            self._prune(conn, now)
            owners = [r[0] for r in conn.execute("SELECT DISTINCT owner FROM outbox")]
            procs = dict(conn.execute("SELECT name, deadline FROM processes").fetchall())
            dead = dead_owners(owners, procs, now, me)
            if not dead:
                return []
            marks = ", ".join("?" * len(dead))
            ids = [
                row[0]
                for row in conn.execute(
                    f"SELECT id FROM outbox WHERE owner IN ({marks}) ORDER BY created, id LIMIT ?",
                    (*dead, limit),
                )
            ]
            chosen = ", ".join("?" * len(ids))
            conn.execute(
                f"UPDATE outbox SET recovered_from = owner, owner = ? WHERE id IN ({chosen})",
                (me, *ids),
            )
            rows = conn.execute(
                f"SELECT {_RECORD} FROM outbox WHERE id IN ({chosen}) ORDER BY created, id", ids
            ).fetchall()
        return [_record(row) for row in rows]

    def outbox_prune(self, *, now: float) -> int:
        with self._tx() as conn:
            self._prune(conn, now)
            return self._take_dropped(conn)

    def outbox_records(self) -> list[Record]:
        with self._tx(write=False) as conn:
            rows = conn.execute(f"SELECT {_RECORD} FROM outbox ORDER BY created, id").fetchall()
        return [_record(row) for row in rows]


def _record(row: Any) -> Record:
    rid, owner, created, notifiers, kind, payload, recovered = row
    try:
        owed = tuple(json.loads(notifiers))
    except ValueError:
        owed = ()
    alert = digest = None
    if kind == "alert":
        alert = decode_or_none(payload)
    else:
        try:
            fields = json.loads(payload)
            digest = make_digest(fields, decode_or_none(fields.get("template")), str(rid),
                                 fields.get("next_end"))
        except (ValueError, KeyError, TypeError):
            digest = None
    return Record(str(rid), owner, created, owed, alert, digest, recovered)


# -- fork ------------------------------------------------------------------------------

#: The SQLite stores of this process, whose operations a fork waits for.
_stores: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()
#: Their locks, taken by the thread that forks until the fork is done.
_held: list[threading.Lock] = []
#: Set before a fork when an operation was still under way: the child's copy says so.
_fork_unsafe = False
#: The pid of a child forked in the middle of an operation (it never uses SQLite).
_forked_mid_operation = 0


def _before_fork() -> None:
    """Wait for the operations under way (see the module docstring), holding every
    store's lock until the fork is done."""
    global _fork_unsafe
    deadline = time.monotonic() + FORK_WAIT
    for store in list(_stores):
        if store._pid != os.getpid():
            continue  # not used since this process was forked: nothing of it is under way
        if store._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            _held.append(store._lock)
        else:
            _fork_unsafe = True


def _after_fork_in_parent() -> None:
    global _fork_unsafe
    _fork_unsafe = False
    while _held:
        _held.pop().release()


def _after_fork_in_child() -> None:
    global _fork_unsafe, _forked_mid_operation
    _held.clear()  # copies: each store takes a lock of its own here (see _tx)
    if _fork_unsafe:
        _fork_unsafe = False
        _forked_mid_operation = os.getpid()


_lifecycle.around_fork("store", _before_fork, _after_fork_in_parent)
_lifecycle.after_fork("store", _after_fork_in_child)


def _check_private_directory(path: str) -> None:
    """Make sure ``path`` is a directory of this user's alone, creating it ``0700``.

    :raises ForeignFileError: it is a symbolic link, not a directory, or another user's.
    :raises StoreError: it cannot be created.
    """
    try:
        private_directory(path)
    except UnsafeFileError as exc:
        raise ForeignFileError(
            f"{exc.strerror}: it is never used. Remove it, or choose a path of your own "
            "(ALERTING_STORAGE_URI)"
        ) from exc
    except OSError as exc:
        raise StoreError(f"cannot create the directory {path}: {exc.strerror or exc}") from exc


def _check_private_file(path: str) -> None:
    """Make sure ``path`` is a regular file of this user's with one link, creating it
    ``0600``, as :func:`flask_alerting._files.open_private` says.

    :raises ForeignFileError: it is a symbolic link, not a regular file, another user's
        or another file's hard link: never used, never changed.
    :raises StoreError: it cannot be opened or created (missing directory, no permission).
    """
    try:
        fd = open_private(path)
    except UnsafeFileError as exc:
        raise ForeignFileError(
            f"{exc.strerror}: it is never used. Remove it, or choose a path of your own "
            "(ALERTING_STORAGE_URI)"
        ) from exc
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc.strerror or exc}") from exc
    os.close(fd)
