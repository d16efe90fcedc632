"""Real processes hammering one store (a SQLite file, a real redis-server): one first alert
per window, counts that add up, one claim per window, and processes killed with SIGKILL
(a claimer, a window owner) whose work another process takes over."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flask_alerting.store import Count, NewWindow, Store, current_process, parse_storage_uri
from tests.store_support import NOW, TEST_TIMEOUT, alert

ROOT = Path(__file__).resolve().parent.parent
ME = current_process()
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")


@pytest.fixture(params=["sqlite", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Settings naming one shared store, for this process and its workers."""
    if request.param == "sqlite":
        uri = f"sqlite://{tmp_path / 'shared.sqlite3'}"
    else:
        uri = request.getfixturevalue("redis_server").url
    yield {"uri": uri, "namespace": f"c-{uuid.uuid4().hex[:10]}", "timeout": TEST_TIMEOUT}


def handle(cfg: dict[str, Any]) -> Store:
    return parse_storage_uri(cfg["uri"], namespace=cfg["namespace"], timeout=cfg["timeout"])


class Workers:
    """``python -m tests.store_hammer`` processes, started together, always reaped."""

    def __init__(self, mode: str, configs: list[dict[str, Any]]) -> None:
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.store_hammer", mode, json.dumps(cfg)],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            for cfg in configs
        ]

    def wait_for(self, word: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
            assert ready, f"a worker did not say {word!r} in time"
            assert proc.stdout.readline().strip() == word

    def go(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()

    def results(self, timeout: float = 300.0) -> list[dict[str, Any]]:
        out = []
        for proc in self.procs:
            stdout, _ = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, stdout
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        return out

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


def run(mode: str, configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    workers = Workers(mode, configs)
    try:
        workers.wait_for("ready")
        workers.go()
        return workers.results()
    finally:
        workers.kill()


def test_exactly_one_process_opens_each_window(shared: dict[str, Any]) -> None:
    fps = [f"fp{i}" for i in range(150)]
    configs = []
    for seed in range(4):
        order = fps[:]
        random.Random(seed).shuffle(order)
        configs.append({**shared, "fps": order, "now": NOW})
    results = run("open", configs)
    firsts = Counter(fp for result in results for fp in result["firsts"])
    assert firsts == Counter(fps)  # each fingerprint opened once, by one of the processes


def test_a_storm_over_processes_adds_up(shared: dict[str, Any]) -> None:
    fps = ["a", "b", "c", "d", "e"]
    cfg = {**shared, "fps": fps, "occurrences": 400, "batch": 7, "window": 0.1, "burst": 50,
           "limit": 2, "start": time.time(), "step": 0.005, "grace": 0.02}
    results = run("storm", [cfg] * 4)
    if os.environ.get("STORE_STORM_STATS"):
        print({k: [len(r["digests"]) if k == "digests" else r[k] for r in results]
               for k in ("raised", "carried", "digests", "last")})
    digests = [row for result in results for row in result["digests"]]
    sent = sum(r["carried"] for r in results) + sum(count for _, _, count, _ in digests)
    # No count lost, none counted twice: a window period claimed twice would count its
    # occurrences twice. (Workers' clocks differ, so two periods may share a start time.)
    assert sent == sum(r["raised"] for r in results) == 4 * 1000
    assert len({record for *_, record in digests}) == len(digests)
    assert len(digests) > len(fps)  # windows were claimed and reopened along the way
    assert sum(r["last"] for r in results) == 1
    store = handle(shared)
    assert store.windows(now=time.time()) == [] and store.outbox_records() == []
    assert store.processes(now=time.time()) == []


def _windows_with_counts(store: Store, n: int) -> dict[str, int]:
    fps = {f"fp{i:03d}": i % 7 + 1 for i in range(n)}
    store.open_windows([NewWindow(fp, alert(fp), 10) for fp in fps], now=NOW, owner=ME)
    store.add_counts([Count(fp, c, NOW + 1, NOW + 2) for fp, c in fps.items()], now=NOW + 2)
    return fps


def _until(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        select.select([], [], [], 0.01)


def test_a_claimer_killed_mid_way_loses_no_digest(shared: dict[str, Any]) -> None:
    store = handle(shared)
    expected = _windows_with_counts(store, 300)
    workers = Workers("claim-forever", [{**shared, "now": NOW + 11, "sync": False}])
    try:
        workers.wait_for("claiming")
        _until(lambda: len(store.outbox_records()) >= 10)
        workers.procs[0].send_signal(signal.SIGKILL)
        workers.procs[0].wait(timeout=30)
    finally:
        workers.kill()
    records = store.outbox_records()
    taken = {r.digest.fingerprint: r.digest.count for r in records if r.digest}
    (claimer,) = {r.owner for r in records}
    assert 10 <= len(taken) <= 300 and claimer != str(ME)
    # This process claims what is left, then the dead claimer's undelivered digests.
    rest: dict[str, int] = {}
    while True:
        claim = store.claim_due(now=NOW + 11, owner=ME, limit=50)
        rest.update({d.fingerprint: d.count for d in claim.digests})
        if not claim.more:
            break
    recovered = store.outbox_claim(owner=ME, now=NOW + 12, limit=1000)
    assert {(r.owner, r.recovered_from) for r in recovered} == {(str(ME), claimer)}
    got = {r.digest.fingerprint: r.digest.count for r in recovered if r.digest}
    assert got == taken and not set(got) & set(rest)
    assert {**got, **rest} == expected  # every window's digest exactly once, counts exact


def test_a_killed_owners_windows_and_records_are_taken_over(shared: dict[str, Any]) -> None:
    store = handle(shared)
    fps = [f"fp{i}" for i in range(20)]
    owner = Workers("own", [{**shared, "fps": fps, "records": 30, "now": NOW, "sync": False}])
    try:
        owner.wait_for("owning")
        put = [r.id for r in store.outbox_records()]
        pid = owner.procs[0].pid
        owner.procs[0].send_signal(signal.SIGKILL)
        owner.procs[0].wait(timeout=30)
    finally:
        owner.kill()
    (info,) = store.processes(now=time.time())  # registered, with a lease still running
    assert info.process.pid == pid and info.deadline > time.time() and not info.alive
    claim = store.claim_due(now=NOW + 11, owner=ME)
    assert sorted((d.fingerprint, d.count) for d in claim.digests) == sorted((fp, 3) for fp in fps)
    store.outbox_delete([d.record for d in claim.digests])
    results = run("claim-orphans", [{**shared, "now": time.time()}] * 3)
    claimed = [rid for result in results for rid in result["ids"]]
    assert sorted(claimed) == sorted(put) and len(put) == 30  # each record once, in all
    assert store.outbox_records() == []


def test_exactly_one_of_the_processes_stopping_together_is_last(shared: dict[str, Any]) -> None:
    results = run("deregister", [shared] * 6)
    assert sorted(r["last"] for r in results) == [False] * 5 + [True]
