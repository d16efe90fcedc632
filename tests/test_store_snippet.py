"""The store example of docs/scaling.rst runs and does what the page says: processes of
one store send one first alert and one digest whose count adds up."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from flask_alerting.alert import Alert
from flask_alerting.store import ProcessId, SQLiteStore
from tests.store_support import NOW, alert

SNIPPET = Path(__file__).resolve().parent.parent / "examples" / "store_dispatch.py"


def test_two_processes_send_one_first_alert_and_one_digest(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("snippet_store_dispatch", SNIPPET)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = example
    try:
        spec.loader.exec_module(example)
        path = str(tmp_path / "store.sqlite3")
        workers = [(SQLiteStore(path), ProcessId("host-a", pid, 1.0)) for pid in (1, 2)]
        for store, me in workers:  # two hosts' processes: alive while their lease runs
            store.register(me, now=NOW, lease=600)
        sent: list[Alert] = []
        error = alert("cart-pay", title="ZeroDivisionError")
        for store, me in workers:
            example.raise_storm(store, me, error, 100, NOW + 1, sent)
        assert sent == [error]
        (store_a, a), (store_b, b) = workers
        assert example.tick(store_b, b, NOW + 30, sent) == NOW + 61  # not due yet
        assert example.tick(store_b, b, NOW + 62, sent) == NOW + 122  # digest; reopened
        (digest,) = sent[1:]
        assert digest.occurrences == 199 and digest.details["digest"] == {"count": 199}
        assert example.tick(store_a, a, NOW + 123, sent) is None  # a quiet window: gone
        example.raise_storm(store_a, a, error, 5, NOW + 130, sent)
        assert len(sent) == 3 and sent[2] == error  # a new incident: a first alert again
        example.stop(store_a, a, NOW + 131, sent)
        assert len(sent) == 3  # not the last one
        example.stop(store_b, b, NOW + 132, sent)
        assert sent[3].occurrences == 4 and store_b.windows(now=NOW + 132) == []
        assert workers[1][0].outbox_records() == []
    finally:
        sys.modules.pop(spec.name, None)
