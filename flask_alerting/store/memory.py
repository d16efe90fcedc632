"""``memory://``: the store of one process, and the reference for the other backends.

Everything lives in dictionaries under one lock; nothing is shared with other processes and
nothing survives the process. The contract tests run the same assertions against this
backend, SQLite and Redis.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import threading
from collections.abc import Sequence

from ..alert import Alert
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


@dataclasses.dataclass
class _Window:
    seq: int
    start: float
    end: float
    length: float
    owner: str
    template: Alert
    count: int = 0
    first: float | None = None
    last: float | None = None
    nv: int = 0
    total: float = 0.0
    high: float | None = None
    low: float | None = None

    def add(self, c: Count) -> None:
        self.count += c.count
        self.first = c.first_seen if self.first is None else min(self.first, c.first_seen)
        self.last = c.last_seen if self.last is None else max(self.last, c.last_seen)
        if c.values:
            self.nv += c.values
            self.total += c.total
            assert c.high is not None and c.low is not None
            self.high = c.high if self.high is None else max(self.high, c.high)
            self.low = c.low if self.low is None else min(self.low, c.low)
        if c.template is not None:
            self.template = c.template


@dataclasses.dataclass
class _Record:
    seq: int
    owner: str
    created: float
    notifiers: tuple[str, ...]
    alert: Alert | None
    digest: Digest | None
    recovered_from: str | None = None

    def public(self) -> Record:
        return Record(
            str(self.seq),
            self.owner,
            self.created,
            self.notifiers,
            self.alert,
            self.digest,
            self.recovered_from,
        )


class MemoryStore(Store):
    """The ``memory://`` store: per process (see the module docstring)."""

    scheme = "memory"
    shared = False

    def __init__(self, uri: str = "memory://", limits: Limits | None = None) -> None:
        super().__init__(uri, limits)
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._windows: dict[str, _Window] = {}
        self._due: list[tuple[float, int, str]] = []  # (end, seq, fingerprint), lazy
        self._procs: dict[str, float] = {}
        self._records: dict[int, _Record] = {}
        self._oldest: list[tuple[float, int]] = []  # (created, seq), lazy: for the bounds
        self._unreported = 0

    # -- windows -----------------------------------------------------------------------

    def _open(self, fp: str, template: Alert, length: float, now: float, owner: str) -> float:
        seq = next(self._seq)
        end = now + length
        self._windows[fp] = _Window(seq, now, end, length, owner, template)
        heapq.heappush(self._due, (end, seq, fp))
        return end

    def open_windows(
        self, items: Sequence[NewWindow], *, now: float, owner: ProcessId
    ) -> list[Opened]:
        out = []
        with self._lock:
            for item in items:
                w = self._windows.get(item.fingerprint)
                if w is not None and (w.end > now or w.count):
                    out.append(Opened(item.fingerprint, False, w.end))
                elif w is None and len(self._windows) >= self.limits.max_windows:
                    out.append(Opened(item.fingerprint, True, None))
                else:
                    end = self._open(item.fingerprint, item.template, item.window, now, str(owner))
                    out.append(Opened(item.fingerprint, True, end))
        return out

    def add_counts(self, counts: Sequence[Count], *, now: float) -> list[Added]:
        out = []
        with self._lock:
            for c in counts:
                w = self._windows.get(c.fingerprint)
                if w is not None:
                    w.add(c)
                out.append(added(c, w.end if w is not None else None))
        return out

    def _claim(self, fp: str, w: _Window, now: float, owner: str, notifiers: Sequence[str],
               reopen: bool) -> Digest | None:
        del self._windows[fp]
        next_end = self._open(fp, w.template, w.length, now, owner) if reopen else None
        if not w.count:
            return None
        seq = next(self._seq)
        fields = dict(vars(w), fp=fp)
        digest = make_digest(fields, w.template, str(seq), next_end)
        self._add_record(_Record(seq, owner, now, tuple(notifiers), None, digest))
        return digest

    def _valid_top(self) -> tuple[float, int, str] | None:
        while self._due:
            end, seq, fp = self._due[0]
            w = self._windows.get(fp)
            if w is not None and w.seq == seq:
                return self._due[0]
            heapq.heappop(self._due)
        return None

    def claim_due(
        self, *, now: float, owner: ProcessId, limit: int = 100, notifiers: Sequence[str] = ()
    ) -> Claim:
        check_limit(limit)
        cutoff = now - self.limits.grace
        digests: list[Digest] = []
        handled = 0
        with self._lock:
            while handled < limit:
                top = self._valid_top()
                if top is None or top[0] > cutoff:
                    break
                heapq.heappop(self._due)
                w = self._windows[top[2]]
                digest = self._claim(top[2], w, now, str(owner), notifiers, reopen=bool(w.count))
                handled += 1
                if digest is not None:
                    digests.append(digest)
            if digests:
                self._prune(now)
            top = self._valid_top()
        more = top is not None and top[0] <= cutoff
        return Claim(tuple(digests), top[0] if top else None, more)

    def drain(
        self, *, now: float, owner: ProcessId, notifiers: Sequence[str] = ()
    ) -> list[Digest]:
        with self._lock:
            items = sorted(self._windows.items(), key=lambda item: (item[1].end, item[1].seq))
            found = [self._claim(fp, w, now, str(owner), notifiers, False) for fp, w in items]
            self._due.clear()
            self._prune(now)
        return [d for d in found if d is not None]

    def windows(self, *, now: float) -> list[WindowInfo]:
        with self._lock:
            return [
                WindowInfo(fp, w.start, w.end, w.count, w.owner)
                for fp, w in sorted(self._windows.items(), key=lambda i: (i[1].end, i[1].seq))
            ]

    # -- processes ---------------------------------------------------------------------

    def register(self, process: ProcessId, *, now: float, lease: float) -> None:
        with self._lock:
            self._procs[str(process)] = now + lease

    def deregister(self, process: ProcessId, *, now: float) -> bool:
        with self._lock:
            self._procs.pop(str(process), None)
            for name in dead_owners(self._procs, self._procs, now, str(process)):
                del self._procs[name]
            return not self._procs

    def processes(self, *, now: float) -> list[ProcessInfo]:
        with self._lock:
            procs = dict(self._procs)
        return [
            ProcessInfo(ProcessId.parse(name), deadline, owner_alive(name, procs, now))
            for name, deadline in sorted(procs.items())
        ]

    # -- outbox ------------------------------------------------------------------------

    def _add_record(self, record: _Record) -> None:
        self._records[record.seq] = record
        heapq.heappush(self._oldest, (record.created, record.seq))

    def _prune(self, now: float, room: int = 0) -> None:
        while self._oldest:
            created, seq = self._oldest[0]
            if seq not in self._records:
                heapq.heappop(self._oldest)  # deleted since
                continue
            too_many = len(self._records) + room > self.limits.max_records
            if not too_many and created >= now - self.limits.max_age:
                break
            heapq.heappop(self._oldest)
            del self._records[seq]
            self._unreported += 1

    def outbox_put(self, items: Sequence[Outgoing], *, owner: ProcessId, now: float) -> Put:
        with self._lock:
            self._prune(now, room=len(items))
            ids = []
            for item in items:
                seq = next(self._seq)
                self._add_record(_Record(seq, str(owner), now, item.notifiers, item.alert, None))
                ids.append(str(seq))
            self._prune(now)  # a batch bigger than the cap keeps its newest records
            dropped, self._unreported = self._unreported, 0
        return Put(tuple(ids), dropped)

    def outbox_owe(self, record: str, notifiers: Sequence[str]) -> bool:
        with self._lock:
            found = self._records.get(record_number(record))
            if found is None:
                return False
            if notifiers:
                found.notifiers = tuple(notifiers)
            else:
                del self._records[found.seq]
            return True

    def outbox_delete(self, records: Sequence[str]) -> int:
        with self._lock:
            return sum(self._records.pop(record_number(r), None) is not None for r in records)

    def outbox_claim(self, *, owner: ProcessId, now: float, limit: int = 100) -> list[Record]:
        check_limit(limit)
        with self._lock:
            self._prune(now)
            dead = set(dead_owners((r.owner for r in self._records.values()), self._procs,
                                   now, str(owner)))
            claimed: list[Record] = []
            for record in sorted(self._records.values(), key=lambda r: (r.created, r.seq)):
                if len(claimed) >= limit:
                    break
                if record.owner in dead:
                    record.recovered_from, record.owner = record.owner, str(owner)
                    claimed.append(record.public())
            return claimed

    def outbox_prune(self, *, now: float) -> int:
        with self._lock:
            self._prune(now)
            dropped, self._unreported = self._unreported, 0
            return dropped

    def outbox_records(self) -> list[Record]:
        with self._lock:
            ordered = sorted(self._records.values(), key=lambda r: (r.created, r.seq))
            return [r.public() for r in ordered]

    def ping(self) -> None:
        return None
