"""Storms: occurrences that the throttle only counts are never built.

The request path looks at the throttle (a lock-free membership test); an occurrence of a
fingerprint whose window is open, already logged by Flask, with nobody listening to the
signals and no log file to write, is submitted as a count-only item. The dispatcher counts
it without building anything.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from flask import Flask

from flask_alerting import Alert, FlaskAlerting, MemoryNotifier, alert_dropped, alert_raised
from flask_alerting.alert import PendingAlert
from flask_alerting.dispatch import Dispatcher, Throttle
from tests.conftest import FakeClock

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def pending(fingerprint: str, title: str, built: list[str], logged: bool = True) -> PendingAlert:
    def build() -> Alert:
        built.append(title)
        return Alert(title=title, kind="error", severity="error", fingerprint=fingerprint)

    return PendingAlert(build, fingerprint, T0, logged=logged)


def make_dispatcher(window: float, **kw: Any) -> tuple[Dispatcher, FakeClock, list[Alert]]:
    clock = FakeClock()
    sent: list[Alert] = []
    throttle = Throttle(window, clock)
    dispatcher = Dispatcher(
        sender=object(), throttle=throttle, deliver=sent.append, log=lambda a: None, **kw
    )
    return dispatcher, clock, sent


def test_suppressed_logged_occurrences_are_counted_without_being_built() -> None:
    dispatcher, clock, sent = make_dispatcher(60)
    built: list[str] = []
    dispatcher.dispatch_pending(pending("fp", "first", built))
    for n in range(10):
        dispatcher.dispatch_pending(pending("fp", f"dup {n}", built))
    dispatcher.dispatch_pending(PendingAlert(None, "fp", T0, logged=True))
    assert built == ["first"]
    assert [a.title for a in sent] == ["first"]
    assert (dispatcher.raised, dispatcher.suppressed) == (12, 11)

    clock.advance(60)
    dispatcher.tick()
    digest = sent[-1]
    assert digest.occurrences == 11
    # Only the digest's shown occurrence is built: the latest kept in full.
    assert built == ["first", "dup 9"] and digest.title == "dup 9"


def test_count_only_occurrences_show_the_alert_that_opened_the_window() -> None:
    dispatcher, clock, sent = make_dispatcher(60)
    built: list[str] = []
    dispatcher.dispatch_pending(pending("fp", "first", built))
    for _ in range(5):
        dispatcher.dispatch_pending(PendingAlert(None, "fp", T0, logged=True))
    clock.advance(60)
    dispatcher.tick()
    assert [(a.title, a.occurrences) for a in sent] == [("first", 1), ("first", 5)]
    # The next window starts with that alert as its template too.
    dispatcher.dispatch_pending(PendingAlert(None, "fp", T0, logged=True))
    clock.advance(60)
    dispatcher.tick()
    assert [(a.title, a.occurrences) for a in sent[2:]] == [("first", 1)]
    assert built == ["first"]


def test_an_occurrence_arriving_after_its_window_closed_is_sent_not_lost() -> None:
    dispatcher, clock, sent = make_dispatcher(60)
    built: list[str] = []
    dispatcher.dispatch_pending(pending("fp", "first", built))
    clock.advance(60)
    dispatcher.tick()  # the window ends empty and is forgotten
    assert not dispatcher.throttle.suppresses("fp")
    # Its source saw the window open just before: a count-only item arrives late.
    late = datetime(2026, 1, 1, 0, 5, tzinfo=timezone.utc)
    dispatcher.dispatch_pending(PendingAlert(None, "fp", late, logged=True))
    assert [(a.title, a.occurrences) for a in sent] == [("first", 1), ("first", 1)]
    assert sent[1].timestamp == late
    assert dispatcher.throttle.suppresses("fp")  # and it opened a new window


def test_listeners_unlogged_alerts_and_a_log_file_get_every_occurrence_built() -> None:
    built: list[str] = []
    # Not logged by its source: the alert log must write each one.
    dispatcher, _, _ = make_dispatcher(60)
    for n in range(3):
        dispatcher.dispatch_pending(pending("a", f"a{n}", built, logged=False))
    # A log file to write.
    dispatcher, _, _ = make_dispatcher(60, log_logged=lambda a: None)
    for n in range(3):
        dispatcher.dispatch_pending(pending("b", f"b{n}", built))
    # A receiver of alert_raised.
    dispatcher, _, _ = make_dispatcher(60)
    with alert_raised.connected_to(lambda sender, alert: None):
        assert not dispatcher.counts_only()
        for n in range(3):
            dispatcher.dispatch_pending(pending("c", f"c{n}", built))
    assert built == ["a0", "a1", "a2", "b0", "b1", "b2", "c0", "c1", "c2"]


def test_request_storm_captures_in_full_only_until_the_window_is_seen_open(
    app: Flask, make_alerting: Callable[..., FlaskAlerting], clock: FakeClock
) -> None:
    memory = MemoryNotifier()
    alerting = make_alerting(app, notifiers=[memory], throttle_seconds=60, clock=clock)

    @app.route("/fail/<int:n>")
    def fail(n: int) -> str:
        raise ValueError(f"failure {n}")

    submitted: list[Any] = []
    state = app.extensions["alerting"]
    pipeline_submit = state.pipeline.submit

    def spy(item: Any) -> None:
        submitted.append(item)
        pipeline_submit(item)

    state.pipeline.submit = spy
    client = app.test_client()
    client.get("/fail/0")
    assert alerting.flush(5)  # the window is open now
    for n in range(1, 101):
        assert client.get(f"/fail/{n}").status_code == 500
    assert alerting.flush(5)

    full = [i for i in submitted if i.build is not None]
    count_only = [i for i in submitted if i.build is None]
    assert len(full) == 1 and len(count_only) == 100
    assert {i.fingerprint for i in submitted} == {full[0].fingerprint}
    clock.advance(60)
    assert alerting.flush(5)
    assert [(a.title, a.occurrences) for a in memory.alerts] == [
        ("ValueError: failure 0 in fail", 1),
        ("ValueError: failure 0 in fail", 100),
    ]
    assert alerting.stats()["raised"] == 101


def test_request_storm_with_a_listener_builds_every_occurrence(
    app: Flask, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    alerting = make_alerting(app, notifiers=[MemoryNotifier()], throttle_seconds=60)

    @app.route("/fail/<int:n>")
    def fail(n: int) -> str:
        raise ValueError(f"failure {n}")

    seen: list[str] = []
    with alert_raised.connected_to(lambda sender, alert: seen.append(alert.title), app):
        client = app.test_client()
        for n in range(20):
            client.get(f"/fail/{n}")
        assert alerting.flush(5)
    assert seen == [f"ValueError: failure {n} in fail" for n in range(20)]


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_flask_logged_errors_reach_flask_alerting_handlers_but_not_root_twice(
    app: Flask, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    """Handlers on the flask_alerting loggers see every error alert (so each storm
    occurrence is captured for them); the root logger only has Flask's own record."""
    ours, root = ListHandler(), ListHandler()
    library_logger = logging.getLogger("flask_alerting")
    library_logger.addHandler(ours)
    logging.getLogger().addHandler(root)
    try:
        alerting = make_alerting(app, notifiers=[MemoryNotifier()], throttle_seconds=60)

        @app.route("/fail/<int:n>")
        def fail(n: int) -> str:
            raise ValueError(f"failure {n}")

        client = app.test_client()
        for n in range(3):
            client.get(f"/fail/{n}")
        assert alerting.flush(5)
    finally:
        library_logger.removeHandler(ours)
        logging.getLogger().removeHandler(root)
    alert_lines = [r.getMessage() for r in ours.records if r.name.startswith("flask_alerting.")]
    assert [line.splitlines()[0] for line in alert_lines] == [
        f"ValueError: failure {n} in fail" for n in range(3)
    ]
    assert all("Traceback (most recent call last):" in line for line in alert_lines)
    on_root = [r for r in root.records if "failure" in str(r.exc_info and r.exc_info[1])]
    assert [r.name for r in on_root] == [app.logger.name] * 3
    assert not [r for r in root.records if r.name.startswith("flask_alerting.alerts")]


def test_a_storm_that_overflows_the_queue_is_still_counted_in_full(
    app: Flask, make_alerting: Callable[..., FlaskAlerting], clock: FakeClock
) -> None:
    """Count-only occurrences that find the inbound queue full are kept as numbers and
    merged into the digest: first + digests = all, nothing reported as dropped."""
    memory = MemoryNotifier()
    alerting = make_alerting(
        app, notifiers=[memory], throttle_seconds=60, queue_size=5, clock=clock
    )

    @app.route("/fail/<int:n>")
    def fail(n: int) -> str:
        raise ValueError(f"failure {n}")

    client = app.test_client()
    client.get("/fail/0")
    assert alerting.flush(5)  # the window is open
    # Hold the dispatch thread so that the queue (5) fills up.
    gate, holding = threading.Event(), threading.Event()

    def hold() -> None:
        holding.set()
        gate.wait(10)

    state = app.extensions["alerting"]
    state.submit(hold)
    assert holding.wait(5)
    dropped: list[Any] = []
    with alert_dropped.connected_to(lambda sender, **kw: dropped.append(kw), app):
        for n in range(1, 51):
            assert client.get(f"/fail/{n}").status_code == 500
        assert len(state.pipeline.overflow.counts) == 1  # the queue did overflow
        gate.set()
        assert alerting.flush(5)
    clock.advance(60)
    assert alerting.flush(5)
    assert [a.occurrences for a in memory.alerts] == [1, 50]
    assert dropped == [] and alerting.stats()["dropped"] == 0
    assert memory.alerts[1].dropped == 0


def test_counts_kept_by_a_full_queue_join_the_digests_of_a_shutdown(
    app: Flask, make_alerting: Callable[..., FlaskAlerting], clock: FakeClock
) -> None:
    """The drain of shutdown() comes after occurrences the full queue kept as counts:
    they are in its digest, not left in a window opened after it."""
    memory = MemoryNotifier()
    alerting = make_alerting(
        app, notifiers=[memory], throttle_seconds=60, queue_size=5, clock=clock
    )

    @app.route("/fail/<int:n>")
    def fail(n: int) -> str:
        raise ValueError(f"failure {n}")

    client = app.test_client()
    client.get("/fail/0")
    assert alerting.flush(5)
    gate, holding = threading.Event(), threading.Event()

    def hold() -> None:
        holding.set()
        gate.wait(10)

    state = app.extensions["alerting"]
    state.submit(hold)
    assert holding.wait(5)
    for n in range(1, 51):
        client.get(f"/fail/{n}")
    assert len(state.pipeline.overflow.counts) == 1
    # The drain marker waits in the queue behind the held batch, then the gate opens.
    stopping = threading.Thread(target=alerting.shutdown, args=(10,))
    stopping.start()
    wait = threading.Event()
    while state.pipeline._inbound.qsize() < 6 and stopping.is_alive():
        wait.wait(0.01)
    gate.set()
    stopping.join(10)
    assert [a.occurrences for a in memory.alerts] == [1, 50]


def test_alerts_dropped_by_a_full_queue_are_signalled_off_the_request_thread(
    app: Flask, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    memory = MemoryNotifier()
    alerting = make_alerting(app, notifiers=[memory], throttle_seconds=0, queue_size=2)
    gate, holding = threading.Event(), threading.Event()

    def hold() -> None:
        holding.set()
        gate.wait(10)

    state = app.extensions["alerting"]
    state.submit(hold)
    assert holding.wait(5)
    signalled: list[tuple[str, str, str]] = []

    def on_dropped(sender: Flask, alert: Alert, reason: str) -> None:
        signalled.append((alert.title, reason, threading.current_thread().name))

    with alert_dropped.connected_to(on_dropped, app), app.app_context():
        for n in range(5):
            alerting.alert(f"custom {n}")
        assert signalled == []  # not on the caller's thread
        gate.set()
        assert alerting.flush(5)
    assert [(title, reason) for title, reason, _ in signalled] == [
        ("custom 2", "queue full"),
        ("custom 3", "queue full"),
        ("custom 4", "queue full"),
    ]
    assert all(name.endswith("-dispatch") for _, _, name in signalled)
    assert [a.title for a in memory.alerts] == ["custom 0", "custom 1"]
    assert memory.alerts[0].dropped == 3  # the next message tells the loss
    assert alerting.stats()["dropped"] == 3


def test_without_threads_flush_and_shutdown_deliver_on_the_callers_thread(
    app: Flask, make_alerting: Callable[..., FlaskAlerting], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python refuses new threads at interpreter exit (3.12); an alert raised then (an
    atexit handler, the exit hook's own flush) must still be delivered."""
    memory = MemoryNotifier()
    alerting = make_alerting(app, notifiers=[memory])

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    with app.app_context():
        alerting.alert("raised at exit")  # never raises into the caller
    assert memory.alerts == []
    assert alerting.flush(5)
    assert [a.title for a in memory.alerts] == ["raised at exit"]
    with app.app_context():
        alerting.alert("raised during shutdown")
    assert alerting.shutdown(5)
    assert [a.title for a in memory.alerts] == ["raised at exit", "raised during shutdown"]
