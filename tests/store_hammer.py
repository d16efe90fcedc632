"""Worker processes for the store concurrency tests: ``python -m tests.store_hammer MODE CONFIG``.

Each worker opens its own handle on the store named by CONFIG (JSON: ``uri``, ``namespace``
and the mode's settings), registers, prints ``ready``, waits for ``go`` on stdin (so that
all workers start together), does its part and prints one JSON line of results.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from flask_alerting.alert import Alert
from flask_alerting.store import (
    GRACE,
    Count,
    Limits,
    NewWindow,
    Outgoing,
    Store,
    current_process,
    parse_storage_uri,
)

ME = current_process()


def make_alert(fp: str, now: float) -> Alert:
    return Alert(title=f"storm {fp}", fingerprint=fp, kind="error",
                 timestamp=datetime.fromtimestamp(now, timezone.utc))


def ready() -> None:
    print("ready", flush=True)
    assert sys.stdin.readline().strip() == "go"


def digest_rows(digests: Any) -> list[list[Any]]:
    return [[d.fingerprint, d.start, d.count, d.record] for d in digests]


def open_race(store: Store, cfg: dict[str, Any]) -> dict[str, Any]:
    """Open the same windows as every other worker, one call each: which did I open?"""
    firsts = []
    for fp in cfg["fps"]:
        if store.open_window(fp, make_alert(fp, cfg["now"]), 60, now=cfg["now"], owner=ME).first:
            firsts.append(fp)
    return {"firsts": firsts}


def storm(store: Store, cfg: dict[str, Any]) -> dict[str, Any]:
    """Occurrences of every fingerprint: send firsts, count the rest in batches, claim due
    windows. Returns what this worker sent (first alerts and the occurrences each carried,
    digests) so the parent can check that they add up.

    Time is logical: occurrence ``i`` happens at ``start + i * step`` in every worker, and
    workers run at their own pace, so their clocks differ as hosts' clocks do: any
    interleaving must keep the sums right."""
    window, fps = cfg["window"], cfg["fps"]
    ends: dict[str, float] = {}
    pending: dict[str, int] = defaultdict(int)
    carried = 0
    digests: list[list[Any]] = []

    def send_first(fp: str, n: int, now: float) -> bool:
        nonlocal carried
        opened = store.open_window(fp, make_alert(fp, now), window, now=now, owner=ME)
        ends[fp] = opened.end if opened.end is not None else now
        if opened.first:
            carried += n
        return opened.first

    def flush(now: float) -> None:
        batch = [Count(fp, n, now, now) for fp, n in sorted(pending.items())]
        pending.clear()
        while batch:
            retry = []
            for result in store.add_counts(batch, now=now):
                if result.returned is not None:
                    if not send_first(result.fingerprint, result.returned.count, now):
                        retry.append(result.returned)
                else:
                    ends[result.fingerprint] = result.end or now
            batch = retry

    def claim(now: float) -> None:
        more = True
        while more:
            got = store.claim_due(now=now, owner=ME, limit=cfg.get("limit", 50))
            digests.extend(digest_rows(got.digests))
            store.outbox_delete([d.record for d in got.digests])
            more = got.more

    raised = 0
    for i in range(cfg["occurrences"]):
        now = cfg["start"] + i * cfg["step"]
        for k, fp in enumerate(fps):
            if (i // cfg["burst"] + k) % 2:
                continue  # this fingerprint is quiet now: its window ends empty
            raised += 1
            if ends.get(fp, 0.0) > now:
                pending[fp] += 1
            elif not send_first(fp, 1, now):
                pending[fp] += 1
        if i % cfg["batch"] == 0:
            flush(now)
            claim(now)
    now = cfg["start"] + cfg["occurrences"] * cfg["step"]
    flush(now)
    claim(now)
    last = store.deregister(ME, now=now)
    if last:
        drained = store.drain(now=now, owner=ME)
        digests.extend(digest_rows(drained))
        store.outbox_delete([d.record for d in drained])
    return {"raised": raised, "carried": carried, "digests": digests, "last": last}


def claim_forever(store: Store, cfg: dict[str, Any]) -> dict[str, Any]:
    """Claim due windows one at a time and never deliver (the parent kills this one)."""
    print("claiming", flush=True)
    while True:
        if not store.claim_due(now=cfg["now"], owner=ME, limit=1).digests:
            return {"done": True}


def own_and_wait(store: Store, cfg: dict[str, Any]) -> dict[str, Any]:
    """Open windows, count into them, put alerts in the outbox; then wait to be killed."""
    now = cfg["now"]
    store.open_windows([NewWindow(fp, make_alert(fp, now), 10) for fp in cfg["fps"]],
                       now=now, owner=ME)
    store.add_counts([Count(fp, 3, now + 1, now + 2) for fp in cfg["fps"]], now=now + 2)
    alerts = [Outgoing(make_alert(f"out{i}", now), ("smtp",)) for i in range(cfg["records"])]
    store.outbox_put(alerts, owner=ME, now=now)
    print("owning", flush=True)
    sys.stdin.readline()
    return {}


def claim_orphans(store: Store, cfg: dict[str, Any]) -> dict[str, Any]:
    """Claim dead processes' records, a few at a time, until none is left."""
    ids: list[str] = []
    while True:
        records = store.outbox_claim(owner=ME, now=cfg["now"], limit=3)
        if not records:
            return {"ids": ids}
        ids += [r.id for r in records]
        store.outbox_delete([r.id for r in records])


def deregister(store: Store, cfg: dict[str, Any]) -> dict[str, Any]:
    return {"last": store.deregister(ME, now=time.time())}


MODES = {
    "open": open_race,
    "storm": storm,
    "claim-forever": claim_forever,
    "own": own_and_wait,
    "claim-orphans": claim_orphans,
    "deregister": deregister,
}


def main() -> None:
    mode, cfg = sys.argv[1], json.loads(sys.argv[2])
    store = parse_storage_uri(cfg["uri"], namespace=cfg["namespace"], timeout=cfg["timeout"],
                              limits=Limits(grace=cfg.get("grace", GRACE)))
    store.register(ME, now=time.time(), lease=600)
    if cfg.get("sync", True):
        ready()
    result = MODES[mode](store, cfg)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
