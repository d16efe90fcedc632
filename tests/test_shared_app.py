"""The extension on a shared store, in one process: its real threads, a real SMTP server,
a SQLite file. Several processes are in tests/test_shared_processes.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

from flask_alerting import FlaskAlerting, MemoryNotifier
from flask_alerting._state import get_state
from flask_alerting.delivery.shared_throttle import SharedThrottle
from flask_alerting.dispatch import Throttle
from flask_alerting.store import SQLiteStore
from tests.smtp_server import SMTPServer

Make = Callable[..., FlaskAlerting]


def shared_app(path: Path, **config: Any) -> Flask:
    app = Flask("shared-app")
    app.config.update(
        {
            "PROPAGATE_EXCEPTIONS": False,
            "ALERTING_METRICS_ENABLED": False,
            "ALERTING_STORAGE_URI": f"sqlite:///{path}",
            **config,
        }
    )

    @app.route("/fail")
    def fail() -> str:
        raise KeyError("no such order")

    return app


def test_a_shared_store_gets_the_shared_throttle_and_memory_keeps_its_own(
    tmp_path: Path, make_alerting: Make
) -> None:
    shared = shared_app(tmp_path / "s.sqlite3")
    make_alerting(shared, notifiers=[MemoryNotifier()])
    assert isinstance(get_state(shared).pipeline.dispatcher.throttle, SharedThrottle)
    alone = shared_app(tmp_path / "x", ALERTING_STORAGE_URI="memory://")
    make_alerting(alone, notifiers=[MemoryNotifier()])
    assert isinstance(get_state(alone).pipeline.dispatcher.throttle, Throttle)
    off = shared_app(tmp_path / "s.sqlite3", ALERTING_THROTTLE_SECONDS=0)
    make_alerting(off, notifiers=[MemoryNotifier()])
    assert isinstance(get_state(off).pipeline.dispatcher.throttle, Throttle)


def test_two_apps_of_one_store_send_one_alert_and_one_digest(
    tmp_path: Path, make_alerting: Make
) -> None:
    """Two instances of one app in one process: their real threads share the store as
    two workers would (to the store's registry they are one process, so the first to
    stop sends the pending digest)."""
    path = tmp_path / "s.sqlite3"
    memory_one, memory_two = MemoryNotifier(), MemoryNotifier()
    one, two = shared_app(path), shared_app(path)
    alerting_one = make_alerting(one, notifiers=[memory_one])
    alerting_two = make_alerting(two, notifiers=[memory_two])
    one.test_client().get("/fail")
    assert alerting_one.flush(10)
    for app, times in ((two, 3), (one, 2)):
        client = app.test_client()
        for _ in range(times):
            assert client.get("/fail").status_code == 500
    assert alerting_one.flush(10) and alerting_two.flush(10)
    assert len(memory_one.alerts) == 1 and memory_two.alerts == []
    assert alerting_two.stats()["suppressed"] == 3
    assert alerting_one.stats()["suppressed"] == 2
    assert alerting_two.shutdown(10) and alerting_one.shutdown(10)
    first, digest = memory_one.alerts + memory_two.alerts
    assert digest.is_digest and digest.occurrences == 5
    assert digest.fingerprint == first.fingerprint


def test_a_storm_on_the_store_is_counted_not_dropped(tmp_path: Path, make_alerting: Make) -> None:
    """The first alert of a storm is known to the request path before the store's first
    (slow: a connection, a GIL shared with the storm) answer; windows this process
    claims stay known: every occurrence is counted, none is lost to a full queue."""
    app = shared_app(tmp_path / "s.sqlite3", ALERTING_THROTTLE_SECONDS=1.0)
    memory = MemoryNotifier()
    alerting = make_alerting(app, notifiers=[memory])
    client = app.test_client()
    for _ in range(3000):
        client.get("/fail")
    assert alerting.shutdown(30)
    stats = alerting.stats()
    assert stats["dropped"] == 0 and stats["raised"] == 3000
    assert sum(a.occurrences for a in memory.alerts) == 3000


def test_the_test_command_always_sends_whatever_the_store_holds(
    tmp_path: Path, smtp_server: SMTPServer, smtp_config: dict[str, Any], make_alerting: Make
) -> None:
    # make_alerting after smtp_server: the extension's shutdown (its digest of 1) comes
    # before the server stops, instead of retrying into it for the shutdown's 2 s.
    app = shared_app(tmp_path / "s.sqlite3", **smtp_config)
    alerting = make_alerting(app)
    labels = dict(get_state(app).labels)
    with app.app_context():  # the very alert the command sends: its window opens
        for _ in range(2):
            alerting.alert("Test alert from flask-alerting", severity="info", labels=labels)
    assert alerting.flush(10)
    (opened,) = smtp_server.wait_for(1)
    assert opened["Subject"].endswith("Test alert from flask-alerting")
    store = SQLiteStore(str(tmp_path / "s.sqlite3"))
    try:
        (window,) = store.windows(now=time.time())
        assert window.fingerprint == opened["X-Alert-Fingerprint"] and window.count == 1
        for _ in range(2):
            result = app.test_cli_runner().invoke(args=["alerting", "test"])
            assert result.exit_code == 0, result.output
        messages = smtp_server.wait_for(3)
        assert [m["X-Alert-Fingerprint"] for m in messages] == [window.fingerprint] * 3
        assert store.windows(now=time.time()) == [window]  # and the store is as it was
    finally:
        store.close()


def test_status_shows_the_stores_windows_and_processes(
    tmp_path: Path, make_alerting: Make
) -> None:
    app = shared_app(tmp_path / "s.sqlite3")
    memory = MemoryNotifier()
    alerting = make_alerting(app, notifiers=[memory])
    client = app.test_client()
    for _ in range(4):
        client.get("/fail")
    assert alerting.flush(10)  # which also adds the counts to the store
    (first,) = memory.alerts
    output = app.test_cli_runner().invoke(args=["alerting", "status"]).output
    lines = output.splitlines()
    start = lines.index(
        f"Throttle store (shared by the processes that open this file): "
        f"sqlite://{tmp_path / 's.sqlite3'}"
    )
    assert lines[start + 1] == "  open windows: 1; processes registered: 1 (1 alive)"
    assert lines[start + 2].split() == ["FINGERPRINT", "COUNTED", "ENDS", "IN"]
    fingerprint, counted, ends_in = lines[start + 3].split(None, 2)
    assert (fingerprint, counted) == (first.fingerprint, "3")
    assert ends_in in ("5 min 0 s", "4 min 59 s", "4 min 58 s")


def test_status_says_when_the_store_does_not_answer(tmp_path: Path, make_alerting: Make) -> None:
    (tmp_path / "blocker").write_text("not a directory")
    app = shared_app(tmp_path / "blocker" / "s.sqlite3")
    make_alerting(app, notifiers=[MemoryNotifier()])
    lines = app.test_cli_runner().invoke(args=["alerting", "status"]).output.splitlines()
    start = [i for i, line in enumerate(lines) if line.startswith("Throttle store")][0]
    assert lines[start + 1].startswith("  does not answer: cannot open ")
    assert lines[start + 1].endswith("(each process throttles on its own)")
