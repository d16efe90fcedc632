"""Throttle and dispatcher: pure logic driven by a FakeClock, no threads, no sleeps."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from flask_alerting import Alert, alert_raised, alert_suppressed
from flask_alerting.dispatch import Dispatcher, Throttle
from tests.conftest import FakeClock

T0 = datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


class WallClock:
    """Aware UTC time that follows a FakeClock (for timestamps of alerts and digests)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.start = clock()

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=self.clock() - self.start)


def make_alert(wall: WallClock, title: str = "Disk full", **kw: Any) -> Alert:
    kw["labels"] = {"app": "demo", **kw.get("labels", {})}
    return Alert(title=title, timestamp=wall(), **kw)


class Harness:
    """A Dispatcher wired to lists, with a FakeClock; ``raise_`` mimics the dispatch loop."""

    def __init__(self, window: float, **throttle_kw: Any) -> None:
        self.clock = FakeClock()
        self.wall = WallClock(self.clock)
        self.throttle = Throttle(window, self.clock, wall_clock=self.wall, **throttle_kw)
        self.sent: list[Alert] = []
        self.logged: list[Alert] = []
        self.sender = object()
        self.dispatcher = Dispatcher(
            sender=self.sender,
            throttle=self.throttle,
            deliver=self.sent.append,
            log=self.logged.append,
        )

    def raise_(self, title: str = "Disk full", **kw: Any) -> None:
        self.dispatcher.dispatch(make_alert(self.wall, title, **kw))

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.dispatcher.tick()


# -- Throttle ---------------------------------------------------------------------------------


def test_first_alert_is_sent_at_once_the_rest_counted_into_one_digest() -> None:
    h = Harness(60)
    h.raise_()
    assert len(h.sent) == 1
    assert h.sent[0].occurrences == 1 and not h.sent[0].is_digest
    for _ in range(4):
        h.advance(10)
        h.raise_()
    assert len(h.sent) == 1  # counted, not sent
    assert h.throttle.pending() == {h.sent[0].fingerprint: 4}
    assert h.throttle.next_due() == 1060.0

    h.advance(19.9)  # t = 1059.9: window still open
    assert len(h.sent) == 1
    h.advance(0.1)  # t = 1060: window ends, one digest
    assert len(h.sent) == 2
    digest = h.sent[1]
    assert digest.is_digest
    assert digest.occurrences == 4
    assert digest.fingerprint == h.sent[0].fingerprint
    assert digest.first_seen == T0 + timedelta(seconds=10)
    assert digest.last_seen == T0 + timedelta(seconds=40)
    assert digest.timestamp == T0 + timedelta(seconds=60)
    assert digest.details["digest"] == {"count": 4}
    # first + digests = all
    assert sum(a.occurrences for a in h.sent) == 5
    assert h.dispatcher.raised == 5 and h.dispatcher.suppressed == 4
    assert h.dispatcher.digests == 1


def test_digest_of_valued_alerts_has_mean_max_min() -> None:
    h = Harness(60)
    h.raise_("Slow call", value=3.0)
    for value in (2.5, 4.0, 6.5):
        h.advance(1)
        h.raise_("Slow call", value=value)
    h.advance(60)
    digest = h.sent[-1]
    assert digest.occurrences == 3
    assert digest.details["digest"] == {"count": 3, "mean": 13.0 / 3, "max": 6.5, "min": 2.5}
    assert digest.value == 6.5  # the worst value of the window


def test_fingerprints_are_throttled_independently() -> None:
    h = Harness(60)
    h.raise_("A")
    h.raise_("B")
    h.raise_("A")
    h.raise_("B")
    h.raise_("B")
    assert [a.title for a in h.sent] == ["A", "B"]
    h.advance(60)
    digests = {a.title: a.occurrences for a in h.sent[2:]}
    assert digests == {"A": 1, "B": 2}


def test_continuous_storm_gives_exactly_one_message_per_window() -> None:
    h = Harness(60)
    window_of: list[int] = []  # for each message sent, the index of the window it left in
    total = 0
    for second in range(600):  # one alert a second for 10 windows
        before = len(h.sent)
        h.clock.now = 1000.0 + second
        h.dispatcher.tick()
        h.raise_()
        total += 1
        window_of += [second // 60] * (len(h.sent) - before)
    h.clock.now = 1000.0 + 600
    h.dispatcher.tick()
    window_of += [10] * (len(h.sent) - len(window_of))
    # One message in each of the 10 windows (the first alert, then one digest each time a
    # window closes), plus the digest of the last window.
    assert window_of == list(range(11))
    assert all(a.is_digest and a.occurrences == 60 for a in h.sent[2:])
    assert h.sent[1].occurrences == 59  # the first window's first alert was sent alone
    assert sum(a.occurrences for a in h.sent) == total == 600


def test_throttle_zero_disables_throttling() -> None:
    h = Harness(0)
    for _ in range(5):
        h.raise_()
    assert len(h.sent) == 5
    assert all(a.occurrences == 1 for a in h.sent)
    assert len(h.throttle) == 0
    assert h.throttle.next_due() is None
    assert h.dispatcher.suppressed == 0


def test_negative_window_is_refused() -> None:
    with pytest.raises(ValueError):
        Throttle(-1, FakeClock())


def test_old_windows_expire() -> None:
    h = Harness(60)
    for i in range(100):
        h.raise_(f"alert {i}")
    h.raise_("alert 0")  # one repeat: that window ends with a digest and reopens
    assert len(h.throttle) == 100
    h.advance(60)
    assert len(h.throttle) == 1  # only the reopened window of "alert 0" remains
    assert h.sent[-1].title == "alert 0" and h.sent[-1].occurrences == 1
    h.advance(60)
    assert len(h.throttle) == 0
    assert h.throttle.next_due() is None
    # After expiry, the next alert goes out at once again.
    h.raise_("alert 5")
    assert h.sent[-1].title == "alert 5" and h.sent[-1].occurrences == 1


def test_quiet_window_is_forgotten_and_next_alert_leaves_at_once() -> None:
    h = Harness(60)
    h.raise_()
    h.advance(61)
    assert len(h.throttle) == 0
    h.raise_()
    assert len(h.sent) == 2 and h.sent[1].occurrences == 1


def test_fingerprint_cap_evicts_the_oldest_window_never_drops() -> None:
    # Until 0.2 fingerprints past the cap went out untracked, every one of them: a table
    # filled by distinct alerts stopped throttling altogether (issue 10; see also
    # tests/test_hostile.py). Now the oldest window makes room.
    h = Harness(60, max_fingerprints=3)
    for title in ("A", "B", "C"):
        h.raise_(title)
    h.raise_("A")  # counted in A's window
    assert len(h.throttle) == 3
    for _ in range(3):
        h.raise_("D")  # past the cap: A's window closes early, D's opens
    # A's digest leaves at once, before D's first alert; D's repeats are counted.
    assert [(a.title, a.occurrences) for a in h.sent] == [
        ("A", 1),
        ("B", 1),
        ("C", 1),
        ("A", 1),
        ("D", 1),
    ]
    assert h.sent[3].is_digest
    assert len(h.throttle) == 3  # memory stays bounded
    h.raise_("A")  # evicted: a first alert again (B's window, empty, made room)
    assert [a.title for a in h.sent[-1:]] == ["A"]
    h.advance(60)
    h.dispatcher.drain()
    for title in "ABCD":
        raised = {"A": 3, "B": 1, "C": 1, "D": 3}[title]
        assert sum(a.occurrences for a in h.sent if a.title == title) == raised


def test_drain_emits_every_pending_digest_now() -> None:
    h = Harness(300)
    h.raise_("A")
    h.raise_("A")
    h.raise_("A")
    h.raise_("B")
    h.raise_("C")
    h.raise_("C")
    h.dispatcher.drain()
    assert {a.title: a.occurrences for a in h.sent[3:]} == {"A": 2, "C": 1}
    assert all(a.is_digest for a in h.sent[3:])
    assert len(h.throttle) == 0


# -- Dispatcher -------------------------------------------------------------------------------


def test_metric_alerts_bypass_the_throttle() -> None:
    h = Harness(300)
    for value in (90.0, 91.0, 92.0):
        h.raise_("CPU high", kind="metric", value=value, labels={"metric": "cpu"})
    assert [a.value for a in h.sent] == [90.0, 91.0, 92.0]
    assert len(h.throttle) == 0


def test_resolved_alerts_are_never_held_back() -> None:
    h = Harness(300)
    fingerprint = "rule:queue-depth"
    h.raise_("Queue deep", kind="custom", fingerprint=fingerprint)
    h.raise_("Queue deep", kind="custom", fingerprint=fingerprint)
    h.raise_("Queue deep", kind="custom", fingerprint=fingerprint, status="resolved")
    h.raise_("CPU", kind="metric", fingerprint="cpu", value=90.0)
    h.raise_("CPU", kind="metric", fingerprint="cpu", value=70.0, status="resolved")
    assert [(a.title, a.status) for a in h.sent] == [
        ("Queue deep", "firing"),
        ("Queue deep", "resolved"),
        ("CPU", "firing"),
        ("CPU", "resolved"),
    ]


def test_every_alert_is_logged_and_signalled_before_the_throttle() -> None:
    h = Harness(300)
    raised: list[tuple[Any, Alert]] = []
    suppressed: list[tuple[Any, Alert]] = []

    def on_raised(sender: Any, alert: Alert) -> None:
        raised.append((sender, alert))

    def on_suppressed(sender: Any, alert: Alert) -> None:
        suppressed.append((sender, alert))

    with alert_raised.connected_to(on_raised), alert_suppressed.connected_to(on_suppressed):
        for _ in range(3):
            h.raise_()
    assert len(h.logged) == 3
    assert len(raised) == 3 and all(sender is h.sender for sender, _ in raised)
    assert len(suppressed) == 2 and all(sender is h.sender for sender, _ in suppressed)
    assert [a for _, a in suppressed] == h.logged[1:]
