"""One contract, every backend: memory://, SQLite (a tmp file) and a real redis-server.

Times are injected (``NOW`` + offsets); the store never reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flask_alerting.store import (
    Count,
    NewWindow,
    Store,
    current_process,
)
from tests.store_support import NOW, alert

ME = current_process()


def count(fp: str, n: int, first: float, last: float | None = None, **kw: object) -> Count:
    return Count(fp, n, first, last if last is not None else first, **kw)  # type: ignore[arg-type]


def test_exactly_one_caller_opens_a_window(store: Store) -> None:
    first = store.open_window("fp-1", alert("fp-1"), 60, now=NOW, owner=ME)
    again = store.open_window("fp-1", alert("fp-1"), 60, now=NOW + 5, owner=ME)
    assert (first.first, first.end) == (True, NOW + 60)
    assert (again.first, again.end) == (False, NOW + 60)


def test_a_batch_opens_many_windows_and_sees_its_own_duplicates(store: Store) -> None:
    items = [NewWindow(fp, alert(fp), 30) for fp in ("a", "b", "a", "c")]
    opened = store.open_windows(items, now=NOW, owner=ME)
    assert [(o.fingerprint, o.first) for o in opened] == [
        ("a", True), ("b", True), ("a", False), ("c", True)
    ]
    assert {w.fingerprint for w in store.windows(now=NOW)} == {"a", "b", "c"}
    assert store.open_windows([], now=NOW, owner=ME) == []


def test_counts_add_up_and_a_claim_gives_one_digest(store: Store) -> None:
    store.open_window("fp-1", alert("fp-1"), 60, now=NOW, owner=ME)
    added = store.add_counts(
        [count("fp-1", 3, NOW + 1, NOW + 9), count("fp-1", 4, NOW + 2, NOW + 20)], now=NOW + 21
    )
    assert [(a.end, a.gone) for a in added] == [(NOW + 60, False), (NOW + 60, False)]
    # Not before the end plus the grace (1 s by default).
    early = store.claim_due(now=NOW + 60.5, owner=ME)
    assert early.digests == () and early.next_due == NOW + 60
    claim = store.claim_due(now=NOW + 61, owner=ME, notifiers=["smtp"])
    (digest,) = claim.digests
    assert (digest.fingerprint, digest.count) == ("fp-1", 7)
    assert (digest.first_seen, digest.last_seen) == (NOW + 1, NOW + 20)
    assert (digest.start, digest.end, digest.next_end) == (NOW, NOW + 60, NOW + 61 + 60)
    assert digest.template == alert("fp-1")
    assert claim.next_due == NOW + 121 and not claim.more
    # Claimed once: the reopened window is not due, and a second claimer gets nothing.
    assert store.claim_due(now=NOW + 61, owner=ME).digests == ()
    (info,) = store.windows(now=NOW + 61)
    assert (info.fingerprint, info.start, info.end, info.count) == ("fp-1", NOW + 61, NOW + 121, 0)


def test_a_count_for_a_reopened_window_goes_to_the_next_digest(store: Store) -> None:
    store.open_window("fp-1", alert("fp-1"), 10, now=NOW, owner=ME)
    store.add_counts([count("fp-1", 2, NOW + 1)], now=NOW + 1)
    assert store.claim_due(now=NOW + 11, owner=ME).digests[0].count == 2
    # A process that still thinks the first window is open: its count lands in the next.
    (late,) = store.add_counts([count("fp-1", 5, NOW + 9)], now=NOW + 12)
    assert late.end == NOW + 21 and not late.gone
    assert store.claim_due(now=NOW + 22, owner=ME).digests[0].count == 5


def test_a_window_that_counted_nothing_is_removed_and_its_counts_come_back(
    store: Store,
) -> None:
    store.open_window("fp-1", alert("fp-1"), 10, now=NOW, owner=ME)
    claim = store.claim_due(now=NOW + 11, owner=ME)
    assert claim.digests == () and claim.next_due is None
    assert store.windows(now=NOW + 11) == []
    (gone,) = store.add_counts([count("fp-1", 3, NOW + 9, NOW + 10)], now=NOW + 12)
    assert gone.gone and gone.end is None and gone.returned == count("fp-1", 3, NOW + 9, NOW + 10)
    assert store.open_window("fp-1", alert("fp-1"), 10, now=NOW + 12, owner=ME).first


def test_an_ended_quiet_window_opens_again_before_any_claim(store: Store) -> None:
    store.open_window("fp-1", alert("fp-1"), 10, now=NOW, owner=ME)
    reopened = store.open_window("fp-1", alert("fp-1"), 10, now=NOW + 10, owner=ME)
    assert (reopened.first, reopened.end) == (True, NOW + 20)


def test_an_ended_window_with_counts_waits_for_its_claim(store: Store) -> None:
    store.open_window("fp-1", alert("fp-1"), 10, now=NOW, owner=ME)
    store.add_counts([count("fp-1", 1, NOW + 5)], now=NOW + 5)
    opened = store.open_window("fp-1", alert("fp-1"), 10, now=NOW + 30, owner=ME)
    assert (opened.first, opened.end) == (False, NOW + 10)
    store.add_counts([count("fp-1", 1, NOW + 30)], now=NOW + 30)
    assert store.claim_due(now=NOW + 30, owner=ME).digests[0].count == 2


def test_values_give_the_digest_its_statistics(store: Store) -> None:
    store.open_window("t", alert("t"), 10, now=NOW, owner=ME)
    store.add_counts(
        [
            count("t", 2, NOW + 1, NOW + 2, values=2, total=3.5, high=2.5, low=1.0),
            count("t", 1, NOW + 3),
            count("t", 1, NOW + 4, values=1, total=4.25, high=4.25, low=4.25),
        ],
        now=NOW + 4,
    )
    (digest,) = store.claim_due(now=NOW + 20, owner=ME).digests
    assert (digest.count, digest.values, digest.high, digest.low) == (4, 3, 4.25, 1.0)
    assert digest.total == pytest.approx(7.75) and digest.mean == pytest.approx(7.75 / 3)


def test_a_newer_template_replaces_the_first_one(store: Store) -> None:
    store.open_window("fp", alert("fp", title="first"), 10, now=NOW, owner=ME)
    newer = alert("fp", title="newer", details={"request": {"path": "/x", "args": [1, 2]}})
    store.add_counts([count("fp", 1, NOW + 1, template=newer)], now=NOW + 1)
    store.add_counts([count("fp", 1, NOW + 2)], now=NOW + 2)
    (digest,) = store.claim_due(now=NOW + 11, owner=ME).digests
    assert digest.template == newer


def test_a_claimed_digest_waits_in_the_claimers_outbox(store: Store) -> None:
    store.open_window("fp", alert("fp"), 10, now=NOW, owner=ME)
    store.add_counts([count("fp", 3, NOW + 1)], now=NOW + 1)
    (digest,) = store.claim_due(now=NOW + 11, owner=ME, notifiers=["smtp", "log"]).digests
    (record,) = store.outbox_records()
    assert record.id == digest.record and record.owner == str(ME)
    assert record.notifiers == ("smtp", "log") and record.alert is None
    assert record.digest == digest
    assert store.outbox_delete([digest.record]) == 1
    assert store.outbox_records() == []


def test_claims_are_limited_and_say_when_more_are_due(store: Store) -> None:
    for i in range(5):
        store.open_window(f"fp{i}", alert(f"fp{i}"), 10 + i, now=NOW, owner=ME)
        store.add_counts([count(f"fp{i}", i + 1, NOW)], now=NOW)
    first = store.claim_due(now=NOW + 100, owner=ME, limit=2)
    assert [d.fingerprint for d in first.digests] == ["fp0", "fp1"] and first.more
    rest = store.claim_due(now=NOW + 100, owner=ME, limit=10)
    assert [d.count for d in rest.digests] == [3, 4, 5] and not rest.more
    assert rest.next_due == NOW + 110
    with pytest.raises(ValueError):
        store.claim_due(now=NOW, owner=ME, limit=0)


def test_drain_claims_every_window_and_removes_them(store: Store) -> None:
    for fp in ("a", "b", "c"):
        store.open_window(fp, alert(fp), 60, now=NOW, owner=ME)
    store.add_counts([count("a", 2, NOW + 1), count("c", 5, NOW + 2)], now=NOW + 2)
    digests = store.drain(now=NOW + 3, owner=ME)
    assert sorted((d.fingerprint, d.count, d.next_end) for d in digests) == [
        ("a", 2, None), ("c", 5, None)
    ]
    assert store.windows(now=NOW + 3) == []
    assert len(store.outbox_records()) == 2
    assert store.open_window("b", alert("b"), 60, now=NOW + 4, owner=ME).first


def test_past_its_window_bound_a_store_sends_untracked(make_store: Callable[..., Store]) -> None:
    store = make_store(max_windows=2)
    opened = store.open_windows([NewWindow(fp, alert(fp), 10) for fp in "abc"], now=NOW, owner=ME)
    assert [(o.first, o.end) for o in opened] == [(True, NOW + 10), (True, NOW + 10), (True, None)]
    assert store.open_window("c", alert("c"), 10, now=NOW, owner=ME).end is None
    # An existing window is still counted.
    assert not store.open_window("a", alert("a"), 10, now=NOW, owner=ME).first


def test_any_process_claims_a_window_another_opened(make_store: Callable[..., Store]) -> None:
    one, other = make_store(), make_store()
    opener = ME.__class__(ME.host, ME.pid, ME.started + 1)  # another process, gone
    one.open_window("fp", alert("fp"), 10, now=NOW, owner=opener)
    one.add_counts([count("fp", 4, NOW + 1)], now=NOW + 1)
    (digest,) = other.claim_due(now=NOW + 11, owner=ME).digests
    assert digest.count == 4
    (info,) = other.windows(now=NOW + 11)
    assert info.owner == str(ME)


def test_a_digest_becomes_the_alert_the_per_process_throttle_would_send(store: Store) -> None:
    from datetime import datetime, timezone

    from flask_alerting.dispatch import Throttle
    from tests.conftest import FakeClock

    def at(t: float) -> datetime:
        return datetime.fromtimestamp(t, timezone.utc)

    first = alert("t", details={"path": "/slow"}, timestamp=at(NOW), value=1.5)
    later = [first.replace(timestamp=at(NOW + i), value=v) for i, v in ((1, 2.0), (3, 0.5))]
    throttle = Throttle(60, FakeClock(0.0), wall_clock=lambda: at(NOW + 61))
    assert throttle.offer(first) and not any(throttle.offer(a) for a in later)
    throttle.clock.advance(60)  # type: ignore[attr-defined]
    (expected,) = throttle.pop_due()

    store.open_window("t", first, 60, now=NOW, owner=ME)
    store.add_counts(
        [count("t", 1, NOW + 1, values=1, total=2.0, high=2.0, low=2.0, template=later[0]),
         count("t", 1, NOW + 3, values=1, total=0.5, high=0.5, low=0.5, template=later[1])],
        now=NOW + 3,
    )
    (digest,) = store.claim_due(now=NOW + 61, owner=ME).digests
    assert digest.to_alert(at(NOW + 61)) == expected


def test_a_closed_store_reconnects_when_used_again(store: Store) -> None:
    store.open_window("fp", alert("fp"), 10, now=NOW, owner=ME)
    store.close()
    assert not store.open_window("fp", alert("fp"), 10, now=NOW, owner=ME).first
    store.close()
    store.close()
