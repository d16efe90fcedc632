"""The outbox of every backend: put before delivery, delete after, dead owners' records
claimed once, bounded by a cap and an age (injected clock)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flask_alerting.store import Outgoing, Store, current_process
from tests.store_support import NOW, alert, dead_local_process, remote_process

ME = current_process()


def test_put_records_alerts_until_they_are_deleted(store: Store) -> None:
    items = [Outgoing(alert("a"), ("smtp",)), Outgoing(alert("b", details={"n": 1}), ())]
    put = store.outbox_put(items, owner=ME, now=NOW)
    assert len(put.ids) == 2 and len(set(put.ids)) == 2 and put.dropped == 0
    records = store.outbox_records()
    assert [r.id for r in records] == list(put.ids)
    assert [(r.alert, r.notifiers, r.owner, r.created) for r in records] == [
        (alert("a"), ("smtp",), str(ME), NOW),
        (alert("b", details={"n": 1}), (), str(ME), NOW),
    ]
    assert all(r.digest is None and r.recovered_from is None for r in records)
    assert store.outbox_delete(put.ids) == 2
    assert store.outbox_delete(put.ids) == 0
    assert store.outbox_records() == []


def test_the_notifiers_still_owing_a_record_change_until_none_is_left(store: Store) -> None:
    (rid,) = store.outbox_put([Outgoing(alert(), ("smtp", "log"))], owner=ME, now=NOW).ids
    assert store.outbox_owe(rid, ["log"]) is True
    assert store.outbox_records()[0].notifiers == ("log",)
    assert store.outbox_owe(rid, []) is True
    assert store.outbox_records() == []
    assert store.outbox_owe(rid, ["log"]) is False
    assert store.outbox_records() == []  # never recreated


@pytest.mark.parametrize("dead", ["local", "remote"])
def test_a_dead_owners_records_are_claimed_once(
    make_store: Callable[..., Store], dead: str
) -> None:
    one, two = make_store(), make_store()
    gone = dead_local_process() if dead == "local" else remote_process()
    one.register(gone, now=NOW, lease=10)
    put = one.outbox_put([Outgoing(alert("x"), ("smtp",)), Outgoing(alert("y"))], owner=gone,
                         now=NOW)
    mine = one.outbox_put([Outgoing(alert("mine"))], owner=ME, now=NOW).ids
    later = NOW + 11  # the remote lease ran out
    claimed = two.outbox_claim(owner=ME, now=later)
    assert [r.id for r in claimed] == list(put.ids)
    assert [(r.alert, r.owner, r.recovered_from) for r in claimed] == [
        (alert("x"), str(ME), str(gone)), (alert("y"), str(ME), str(gone))
    ]
    assert claimed[0].notifiers == ("smtp",)
    assert one.outbox_claim(owner=ME, now=later) == []
    assert two.outbox_delete([r.id for r in claimed]) == 2
    assert [r.id for r in one.outbox_records()] == list(mine)


def test_records_of_live_owners_are_never_claimed(store: Store) -> None:
    other = remote_process()
    store.register(other, now=NOW, lease=60)
    theirs = store.outbox_put([Outgoing(alert())], owner=other, now=NOW).ids
    mine = store.outbox_put([Outgoing(alert())], owner=ME, now=NOW).ids
    assert store.outbox_claim(owner=ME, now=NOW + 30) == []  # its lease runs
    # Once its lease ran out, its record is taken; never this process's own, whose
    # lease does not matter on its own host.
    claimed = store.outbox_claim(owner=ME, now=NOW + 7200)
    assert [r.id for r in claimed] == list(theirs)
    assert {r.id for r in store.outbox_records()} == {*theirs, *mine}
    assert {r.owner for r in store.outbox_records()} == {str(ME)}


def test_claims_take_the_oldest_first_within_the_limit(store: Store) -> None:
    gone = remote_process()
    ids = [store.outbox_put([Outgoing(alert(f"a{i}"))], owner=gone, now=NOW + i).ids[0]
           for i in range(5)]
    first = store.outbox_claim(owner=ME, now=NOW + 10, limit=2)
    assert [r.id for r in first] == ids[:2]
    rest = store.outbox_claim(owner=ME, now=NOW + 10, limit=10)
    assert [r.id for r in rest] == ids[2:]


def test_a_claimed_digest_of_a_dead_claimer_is_claimed_again(
    make_store: Callable[..., Store],
) -> None:
    one, two = make_store(), make_store()
    claimer = dead_local_process()
    one.open_window("fp", alert("fp"), 10, now=NOW, owner=ME)
    from flask_alerting.store import Count

    one.add_counts([Count("fp", 6, NOW + 1, NOW + 2)], now=NOW + 2)
    (digest,) = one.claim_due(now=NOW + 11, owner=claimer, notifiers=["smtp"]).digests
    (record,) = two.outbox_claim(owner=ME, now=NOW + 12)
    assert record.digest is not None and record.digest.count == 6
    assert record.digest.record == digest.record == record.id
    assert record.recovered_from == str(claimer) and record.notifiers == ("smtp",)


def test_the_cap_drops_the_oldest_and_counts_them(make_store: Callable[..., Store]) -> None:
    store = make_store(max_records=3)
    first = store.outbox_put([Outgoing(alert(f"a{i}")) for i in range(2)], owner=ME, now=NOW)
    assert first.dropped == 0
    second = store.outbox_put([Outgoing(alert(f"b{i}")) for i in range(3)], owner=ME,
                              now=NOW + 1)
    assert second.dropped == 2
    assert [r.id for r in store.outbox_records()] == list(second.ids)
    # Told once: the next put reports only what it drops itself.
    assert store.outbox_put([Outgoing(alert("c"))], owner=ME, now=NOW + 2).dropped == 1
    assert store.outbox_prune(now=NOW + 3) == 0


def test_a_batch_bigger_than_the_cap_keeps_its_newest(make_store: Callable[..., Store]) -> None:
    store = make_store(max_records=2)
    put = store.outbox_put([Outgoing(alert(f"a{i}")) for i in range(5)], owner=ME, now=NOW)
    assert put.dropped == 3
    assert [r.alert.title if r.alert else None for r in store.outbox_records()] == ["boom"] * 2
    assert [r.id for r in store.outbox_records()] == list(put.ids[3:])


def test_records_older_than_the_age_limit_are_dropped_and_counted(
    make_store: Callable[..., Store],
) -> None:
    store = make_store(max_age=3600)
    store.outbox_put([Outgoing(alert("old")) for _ in range(3)], owner=ME, now=NOW)
    young = store.outbox_put([Outgoing(alert("young"))], owner=ME, now=NOW + 1800).ids
    assert store.outbox_prune(now=NOW + 3600) == 0  # exactly max_age old: kept
    assert store.outbox_prune(now=NOW + 3601) == 3
    assert [r.id for r in store.outbox_records()] == list(young)
    store.outbox_put([Outgoing(alert("old2"))], owner=ME, now=NOW + 1801)
    put = store.outbox_put([Outgoing(alert("new"))], owner=ME, now=NOW + 1801 + 3601)
    assert put.dropped == 2 and [r.id for r in store.outbox_records()] == list(put.ids)


def test_dropped_counts_are_told_to_the_next_caller_of_any_process(
    make_store: Callable[..., Store],
) -> None:
    one, two = make_store(max_age=10), make_store(max_age=10)
    one.outbox_put([Outgoing(alert())], owner=ME, now=NOW)
    # A claim prunes too; what it dropped is told by the next put, in another handle.
    assert one.outbox_claim(owner=ME, now=NOW + 11) == []
    assert two.outbox_put([Outgoing(alert())], owner=ME, now=NOW + 11).dropped == 1
