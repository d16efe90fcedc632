"""Cost of each store operation, per backend, against an in-memory dict in the same run.

Run: ``.venv/bin/python benchmarks/bench_store.py`` (about 20 s; ``--quick``: about 5 s).
Needs ``redis-server`` for the Redis column (skipped, with a note, without it).

Backends: ``memory://``, SQLite (a file in a temp dir, WAL), Redis (a real redis-server on
127.0.0.1, TCP and unix socket). The baseline does the same bookkeeping on plain dicts in
this process: what the per-process throttle costs today. Each operation is timed in
rounds interleaved across backends (load from other processes hits all alike) and the
minimum per operation is kept:

* ``open (new)``: open the window of a new fingerprint (the first alert of an incident);
* ``open (existing)``: the same for a fingerprint whose window is open;
* ``add 100 counts``: one batch of counts for 100 open windows (the dispatch thread's
  ~100 ms batch during a storm);
* ``claim``: claim one due window that counted something (digest + outbox record);
* ``outbox put+delete``: record one alert before delivery, delete it after.

For Redis it also prints the commands each operation sends (seen by ``MONITOR``, the
scripts' own calls left out): one ``EVALSHA`` per operation, whatever the batch size.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_alerting.alert import Alert  # noqa: E402
from flask_alerting.store import (  # noqa: E402
    Count,
    Limits,
    NewWindow,
    Outgoing,
    Store,
    current_process,
    parse_storage_uri,
)

ME = current_process()
NOW = 1_800_000_000.0
OPS = ("open (new)", "open (existing)", "add 100 counts", "claim", "outbox put+delete")
TEMPLATE = Alert(title="ZeroDivisionError: division by zero", kind="error",
                 labels={"app": "shop", "endpoint": "cart.pay"},
                 traceback="Traceback (most recent call last):\n" + "  frame\n" * 30,
                 details={"request": {"method": "POST", "url": "http://x/pay", "args": [1, 2]}})


class DictBaseline:
    """The same bookkeeping on plain dicts, in this process (today's per-process cost)."""

    def __init__(self) -> None:
        self.windows: dict[str, list[Any]] = {}
        self.outbox: dict[int, tuple[Alert, tuple[str, ...]]] = {}
        self.ids = itertools.count()

    def open(self, fp: str, now: float) -> bool:
        if fp in self.windows:
            return False
        self.windows[fp] = [now + 60, 0, None, None, TEMPLATE]
        return True

    def add(self, counts: list[Count]) -> None:
        for c in counts:
            w = self.windows.get(c.fingerprint)
            if w is not None:
                w[1] += c.count
                w[2] = c.first_seen if w[2] is None else min(w[2], c.first_seen)
                w[3] = c.last_seen if w[3] is None else max(w[3], c.last_seen)

    def claim(self, fp: str, now: float) -> None:
        w = self.windows.pop(fp)
        self.outbox[next(self.ids)] = (w[4], ())
        self.windows[fp] = [now + 60, 0, None, None, w[4]]

    def put_delete(self, alert: Alert) -> None:
        rid = next(self.ids)
        self.outbox[rid] = (alert, ("smtp",))
        del self.outbox[rid]


def store_ops(store: Store, tag: str) -> dict[str, Callable[[int], None]]:
    """One callable per operation, each doing ``n`` operations on fresh keys."""
    fresh = (f"{tag}-{i}" for i in itertools.count())
    hot = [f"{tag}-hot-{i}" for i in range(100)]
    store.open_windows([NewWindow(fp, TEMPLATE, 60) for fp in hot], now=NOW, owner=ME)
    batch = [Count(fp, 3, NOW + 1, NOW + 2) for fp in hot]

    def open_new(n: int) -> None:
        for _ in range(n):
            store.open_window(next(fresh), TEMPLATE, 60, now=NOW, owner=ME)

    def open_existing(n: int) -> None:
        for i in range(n):
            store.open_window(hot[i % 100], TEMPLATE, 60, now=NOW, owner=ME)

    def add(n: int) -> None:
        for _ in range(n):
            store.add_counts(batch, now=NOW + 2)

    def claim(n: int) -> None:
        # Due windows with counts, prepared outside the timed loop by prepare_claims.
        for _ in range(n):
            store.claim_due(now=NOW + 100, owner=ME, limit=1)

    def put_delete(n: int) -> None:
        for _ in range(n):
            store.outbox_delete(store.outbox_put([Outgoing(TEMPLATE, ("smtp",))], owner=ME,
                                                 now=NOW).ids)

    return {"open (new)": open_new, "open (existing)": open_existing, "add 100 counts": add,
            "claim": claim, "outbox put+delete": put_delete}


def prepare_claims(store: Store, n: int, tag: str) -> None:
    fps = [f"{tag}-due-{i}" for i in range(n)]
    store.open_windows([NewWindow(fp, TEMPLATE, 10) for fp in fps], now=NOW, owner=ME)
    store.add_counts([Count(fp, 2, NOW + 1, NOW + 1) for fp in fps], now=NOW + 1)


def dict_ops(base: DictBaseline) -> dict[str, Callable[[int], None]]:
    fresh = (f"d-{i}" for i in itertools.count())
    hot = [f"d-hot-{i}" for i in range(100)]
    for fp in hot:
        base.open(fp, NOW)
    batch = [Count(fp, 3, NOW + 1, NOW + 2) for fp in hot]
    return {
        "open (new)": lambda n: [base.open(next(fresh), NOW) for _ in range(n)] and None,
        "open (existing)": lambda n: [base.open(hot[i % 100], NOW) for i in range(n)] and None,
        "add 100 counts": lambda n: [base.add(batch) for _ in range(n)] and None,
        "claim": lambda n: [base.claim(hot[i % 100], NOW) for i in range(n)] and None,
        "outbox put+delete": lambda n: [base.put_delete(TEMPLATE) for _ in range(n)] and None,
    }


def start_redis(directory: Path) -> Any:
    from tests.servers import RedisServer

    try:
        return RedisServer(directory).start()
    except BaseException as exc:  # a missing binary skips (pytest's Skipped is a BaseException)
        print(f"(no Redis column: {exc})")
        return None


def round_trips(server: Any, ops: dict[str, Callable[[int], None]]) -> None:
    """Commands each operation sends to Redis (MONITOR; the scripts' own calls excluded)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
    seen = []
    for name in OPS:
        marker = f"bench-marker-{uuid.uuid4().hex}"
        with client.monitor() as monitor:
            ops[name](1)
            client.echo(marker)
            sent = []
            while True:
                entry = monitor.next_command()
                if marker in entry["command"]:
                    mine = entry.get("client_port")  # this measuring client's own commands
                    break
                if entry["client_type"] != "lua":
                    sent.append((entry.get("client_port"), entry["command"].split(" ", 1)[0]))
            sent = [command for port, command in sent if port != mine]
        seen.append(f"{name}: {len(sent)} ({', '.join(sorted(set(sent)))})")
    client.close()
    print("Redis round trips per operation: " + "; ".join(seen))


def _ping(store: Store, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        store.ping()
    return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 5 s)")
    args = parser.parse_args()
    rounds, per_round = (3, 50) if args.quick else (7, 200)

    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        directory = Path(tmp)
        server = start_redis(directory)
        limits = Limits(max_records=100_000, max_windows=1_000_000)
        stores: dict[str, Store] = {
            "memory": parse_storage_uri("memory://", limits=limits),
            "sqlite": parse_storage_uri(f"sqlite://{directory / 'bench.sqlite3'}", limits=limits,
                                        timeout=5.0),
        }
        if server is not None:
            ns = f"bench-{uuid.uuid4().hex[:8]}"
            stores["redis tcp"] = parse_storage_uri(server.url, namespace=ns, limits=limits,
                                                    timeout=5.0)
            stores["redis unix"] = parse_storage_uri(server.unix_url, namespace=ns + "u",
                                                     limits=limits, timeout=5.0)
        try:
            table = {name: dict_ops(DictBaseline())} if (name := "dict") else {}
            for name, store in stores.items():
                prepare_claims(store, rounds * per_round + 10, name)
                table[name] = store_ops(store, name)
            best: dict[tuple[str, str], float] = {}
            for _ in range(rounds):
                for op in OPS:
                    for name, ops in table.items():
                        started = time.perf_counter()
                        ops[op](per_round)
                        took = (time.perf_counter() - started) / per_round
                        best[name, op] = min(best.get((name, op), took), took)
            header = f"{'operation':<20}" + "".join(f"{n:>22}" for n in table)
            print(f"µs per operation (min of {rounds} rounds of {per_round}); x = / dict")
            print(header)
            for op in OPS:
                base = best["dict", op]
                cells = [f"{best[n, op] * 1e6:10.1f} ({best[n, op] / base:7.0f}x)"
                         if n != "dict" else f"{base * 1e6:18.2f}    " for n in table]
                print(f"{op:<20}" + "".join(f"{c:>22}" for c in cells))
            if server is not None:
                round_trips(server, table["redis tcp"])
                ping = min(_ping(stores["redis tcp"], per_round) for _ in range(rounds))
                print(f"(a bare Redis round trip, PING over TCP: {ping * 1e6:.1f} µs)")
        finally:
            for store in stores.values():
                store.close()
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
