"""``redis://``, ``rediss://``, ``unix://``: one Redis shared by processes on many hosts.

Built on redis-py directly (the ``redis`` extra); see ``docs/scaling.rst`` for why not the
``limits`` package. Each operation is one Lua script run with ``EVALSHA`` (atomic on the
server, one round trip whatever the batch size; a server that lost its scripts gets them
again transparently). Listing the processes before a deregistration or a claim of dead
owners' records costs one more round trip: liveness on this host is the OS's to tell.

Every key starts with ``flask-alerting:{<namespace>}:`` (one hash slot) and carries a TTL,
so a store nobody uses any more empties itself. Sockets time out after ``timeout`` (connect
and read) and redis-py's own retries are off: an operation is bounded by about twice the
timeout and fails with :class:`~flask_alerting.store.StoreError`. A write that timed out may
still have been applied by the server; callers keep what they could not confirm (a count
may then be counted twice, never lost).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from . import _lua
from .base import Limits, Store, added, check_limit, make_digest, owner_alive
from .codec import decode_or_none, encode_alert
from .errors import InvalidStorageURI, StoreError
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
from .process import ProcessId, host_name, local_alive

if TYPE_CHECKING:
    import redis as redis_py

#: Default bound of one connect and of one reply, in seconds.
TIMEOUT = 0.05
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def _num(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    return repr(float(value))


def _opt(value: float | None) -> str:
    return "" if value is None else _num(value)


class RedisStore(Store):
    """The Redis store (see the module docstring).

    :param uri: ``redis://``, ``rediss://`` or ``unix://`` URI, as redis-py reads it.
    :param namespace: prefix of every key (letters, digits, ``_.:-``).
    :param timeout: bound of a connect and of a reply, in seconds.
    """

    scheme = "redis"

    def __init__(
        self,
        uri: str,
        *,
        namespace: str = "flask",
        timeout: float | None = None,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(uri, limits)
        if not _NAMESPACE.match(namespace):
            raise InvalidStorageURI(
                f"a Redis namespace is 1-100 letters, digits or _.:- , got {namespace!r}"
            )
        import redis as redis_py
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.timeout = TIMEOUT if timeout is None else timeout
        self.namespace = namespace
        self.prefix = f"flask-alerting:{{{namespace}}}:"
        _check_db(uri, self.uri)
        try:
            self.client: redis_py.Redis = redis_py.Redis.from_url(
                uri,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                decode_responses=True,
                health_check_interval=0,
            )
        except (ValueError, TypeError) as exc:
            raise InvalidStorageURI(f"not a Redis URI: {self.uri!r} ({_scrub(exc, uri)})") from exc
        self._errors: tuple[type[BaseException], ...] = (redis_py.RedisError, OSError)
        self._scripts = {
            name: self.client.register_script(getattr(_lua, name))
            for name in ("OPEN", "ADD", "CLAIM", "WINDOWS", "REGISTER", "DEREGISTER", "PUT",
                         "PRUNE", "OWE", "CLAIM_ORPHANS", "RECORDS")
        }
        self._raw_uri = uri

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _run(self, script: str, keys: Sequence[str], args: Sequence[Any], now: float) -> Any:
        try:
            return self._scripts[script](
                keys=[self._key(k) for k in keys], args=[self.prefix, _num(now), *args]
            )
        except self._errors as exc:
            raise StoreError(f"{self.uri}: {_scrub(exc, self._raw_uri)}") from exc

    @contextlib.contextmanager
    def _reply(self) -> Iterator[None]:
        """Reading a reply: one that does not fit is a StoreError too."""
        try:
            yield
        except self._errors as exc:
            raise StoreError(f"{self.uri}: {_scrub(exc, self._raw_uri)}") from exc
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise StoreError(f"{self.uri}: unexpected reply ({exc})") from exc

    def ping(self) -> None:
        with self._reply():
            self.client.ping()

    def close(self) -> None:
        try:
            self.client.close()
        except self._errors:  # pragma: no cover - closing never needs the server
            pass

    # -- windows -----------------------------------------------------------------------

    def open_windows(
        self, items: Sequence[NewWindow], *, now: float, owner: ProcessId
    ) -> list[Opened]:
        args: list[Any] = [str(owner), self.limits.max_windows, _num(self.limits.retention)]
        for item in items:
            args += [item.fingerprint, _num(item.window), encode_alert(item.template)]
        replies = self._run("OPEN", ["due"], args, now) if items else []
        with self._reply():
            return [
                Opened(item.fingerprint, bool(first), float(end) if end else None)
                for item, (first, end) in zip(items, replies, strict=True)
            ]

    def add_counts(self, counts: Sequence[Count], *, now: float) -> list[Added]:
        if not counts:
            return []
        for c in counts:  # JSON cannot carry NaN or infinities: refuse them here
            for number in (c.total, c.high, c.low):
                if number is not None:
                    _num(number)
        items = [
            [c.fingerprint, c.count, c.first_seen, c.last_seen, c.values, c.total, c.high, c.low,
             encode_alert(c.template) if c.template is not None else None]
            for c in counts
        ]
        replies = self._run("ADD", [], [json.dumps(items, separators=(",", ":"))], now)
        with self._reply():
            return [
                added(c, float(end) if end else None)
                for c, end in zip(counts, replies, strict=True)
            ]

    def _claim(
        self, now: float, owner: ProcessId, limit: int, notifiers: Sequence[str], drain: bool
    ) -> Claim:
        args = [
            _num(now - self.limits.grace), limit, str(owner), json.dumps(list(notifiers)),
            _num(self.limits.retention), _num(self.limits.max_age), self.limits.max_records,
            "1" if drain else "0",
        ]
        reply = self._run("CLAIM", ["due", "obq", "seq", "owners", "dropped"], args, now)
        with self._reply():
            found, more, next_due = reply
            digests = tuple(_digest(_pairs(fields)) for fields in found)
            return Claim(digests, float(next_due) if next_due else None, bool(more))

    def claim_due(
        self, *, now: float, owner: ProcessId, limit: int = 100, notifiers: Sequence[str] = ()
    ) -> Claim:
        check_limit(limit)
        return self._claim(now, owner, limit, notifiers, drain=False)

    def drain(
        self, *, now: float, owner: ProcessId, notifiers: Sequence[str] = ()
    ) -> list[Digest]:
        return list(self._claim(now, owner, 1, notifiers, drain=True).digests)

    def windows(self, *, now: float) -> list[WindowInfo]:
        rows = self._run("WINDOWS", ["due"], [], now)
        with self._reply():
            return [
                WindowInfo(fp, float(start), float(end), int(count or 0), owner or "")
                for fp, start, end, count, owner in rows
            ]

    # -- processes ---------------------------------------------------------------------

    def register(self, process: ProcessId, *, now: float, lease: float) -> None:
        args = [str(process), _num(now + lease), _num(self.limits.retention)]
        self._run("REGISTER", ["procs"], args, now)

    def _deadlines(self) -> dict[str, float]:
        with self._reply():
            pairs: Any = self.client.zrange(self._key("procs"), 0, -1, withscores=True)
            return {str(name): float(score) for name, score in pairs}

    def deregister(self, process: ProcessId, *, now: float) -> bool:
        here = host_name()
        args: list[Any] = [str(process)]
        for name in self._deadlines():
            try:
                other = ProcessId.parse(name)
            except ValueError:
                continue
            if other.host == here and other != process:
                args += [name, "alive" if local_alive(other) else "dead"]
        return bool(self._run("DEREGISTER", ["procs"], args, now))

    def processes(self, *, now: float) -> list[ProcessInfo]:
        deadlines = self._deadlines()
        with self._reply():
            return [
                ProcessInfo(ProcessId.parse(name), deadline, owner_alive(name, deadlines, now))
                for name, deadline in sorted(deadlines.items())
            ]

    # -- outbox ------------------------------------------------------------------------

    def outbox_put(self, items: Sequence[Outgoing], *, owner: ProcessId, now: float) -> Put:
        args: list[Any] = [str(owner), _num(self.limits.max_age), self.limits.max_records,
                           _num(self.limits.retention)]
        for item in items:
            args += [encode_alert(item.alert), json.dumps(list(item.notifiers))]
        reply = self._run("PUT", ["obq", "seq", "owners", "dropped"], args, now)
        with self._reply():
            ids, dropped = reply
            return Put(tuple(str(i) for i in ids), int(dropped))

    def outbox_owe(self, record: str, notifiers: Sequence[str]) -> bool:
        owed = json.dumps(list(notifiers)) if notifiers else ""
        return bool(self._run("OWE", ["obq", "owners"], [owed, record], 0.0))

    def outbox_delete(self, records: Sequence[str]) -> int:
        if not records:
            return 0
        return int(self._run("OWE", ["obq", "owners"], ["", *records], 0.0))

    def outbox_claim(self, *, owner: ProcessId, now: float, limit: int = 100) -> list[Record]:
        check_limit(limit)
        me, here = str(owner), host_name()
        args: list[Any] = [me, limit, _num(self.limits.max_age), self.limits.max_records,
                           _num(self.limits.retention)]
        with self._reply():
            owners = sorted(str(o) for o in self.client.smembers(self._key("owners")))
        for name in owners:
            try:
                other = ProcessId.parse(name)
            except ValueError:
                args += [name, "1"]
                continue
            if name == me:
                continue
            if other.host == here:
                if not local_alive(other):
                    args += [name, "1"]
            else:
                args += [name, "0"]
        if len(args) == 5:
            return []
        rows = self._run("CLAIM_ORPHANS", ["procs", "obq", "owners", "dropped"], args, now)
        with self._reply():
            return [_record(_pairs(row)) for row in rows]

    def outbox_prune(self, *, now: float) -> int:
        args = [_num(self.limits.max_age), self.limits.max_records]
        reply = self._run("PRUNE", ["obq", "owners", "dropped"], args, now)
        with self._reply():
            return int(reply)

    def outbox_records(self) -> list[Record]:
        rows = self._run("RECORDS", ["obq"], [], 0.0)
        with self._reply():
            return [_record(_pairs(row)) for row in rows]


def _check_db(uri: str, masked: str) -> None:
    """redis-py reads a database that is not a number as 0: refuse it instead."""
    from urllib.parse import parse_qs, urlsplit

    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise InvalidStorageURI(f"not a Redis URI: {masked!r}") from exc
    dbs = parse_qs(parts.query).get("db", [])
    if parts.scheme != "unix" and parts.path.strip("/"):
        dbs.append(parts.path.strip("/"))
    for db in dbs:
        if not db.isdigit():
            raise InvalidStorageURI(f"not a Redis URI: {masked!r} (the database is a number)")


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _pairs(flat: Sequence[Any]) -> dict[str, Any]:
    return {str(k): v for k, v in _chunks(flat, 2)}


def _digest(fields: dict[str, Any]) -> Digest:
    next_end = float(fields["next_end"]) if fields.get("next_end") else None
    return make_digest(fields, decode_or_none(fields.get("tpl")), str(fields["id"]), next_end)


def _record(fields: dict[str, Any]) -> Record:
    try:
        owed = tuple(json.loads(fields.get("notifiers") or "[]"))
    except ValueError:
        owed = ()
    alert = digest = None
    if fields.get("kind") == "alert":
        alert = decode_or_none(fields.get("payload"))
    else:
        try:
            digest = _digest(fields)
        except (KeyError, ValueError, TypeError):
            digest = None
    return Record(
        str(fields["id"]), str(fields.get("owner", "")), float(fields.get("created") or 0.0),
        owed, alert, digest, fields.get("recovered_from") or None,
    )


def _scrub(exc: BaseException, uri: str) -> str:
    """The exception's text without the URI's password, if it crept in."""
    from urllib.parse import unquote, urlsplit

    text = str(exc) or type(exc).__name__
    try:
        password = urlsplit(uri).password
    except ValueError:
        password = None
    for secret in {password, unquote(password or "")} - {None, ""}:
        text = text.replace(str(secret), "***")
    return text
