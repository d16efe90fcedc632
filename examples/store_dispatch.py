"""How a dispatch thread uses the shared alert store (the integration's shape)."""

from __future__ import annotations

from datetime import datetime, timezone

from flask_alerting.alert import Alert
from flask_alerting.store import Count, Outgoing, ProcessId, Store

WINDOW = 60.0  # seconds, as ALERTING_THROTTLE_SECONDS


def deliver(alert: Alert, outbox: list[Alert]) -> None:
    outbox.append(alert)  # stands for the notifiers


def raise_storm(store: Store, me: ProcessId, alert: Alert, times: int, now: float,
                outbox: list[Alert]) -> None:
    """``times`` occurrences of ``alert`` in this process: the first one of all the
    processes leaves at once; the others are counted and added in one batch."""
    opened = store.open_window(alert.fingerprint, alert, WINDOW, now=now, owner=me)
    counted = times
    if opened.first:
        put = store.outbox_put([Outgoing(alert, ("smtp",))], owner=me, now=now)
        deliver(alert, outbox)
        store.outbox_delete(put.ids)
        counted -= 1
    if counted:
        batch = [Count(alert.fingerprint, counted, now, now)]
        for result in store.add_counts(batch, now=now):
            if result.gone:  # the window closed meanwhile: a new incident
                raise_storm(store, me, alert, counted, now, outbox)


def tick(store: Store, me: ProcessId, now: float, outbox: list[Alert]) -> float | None:
    """Send the digests of the windows that ended; when to tick again."""
    claim = store.claim_due(now=now, owner=me, notifiers=["smtp"])
    for digest in claim.digests:
        alert = digest.to_alert(datetime.fromtimestamp(now, timezone.utc))
        if alert is not None:
            deliver(alert, outbox)
        store.outbox_delete([digest.record])
    return claim.next_due


def stop(store: Store, me: ProcessId, now: float, outbox: list[Alert]) -> None:
    """At exit: the last process of the store sends every pending digest."""
    if store.deregister(me, now=now):
        for digest in store.drain(now=now, owner=me, notifiers=["smtp"]):
            alert = digest.to_alert(datetime.fromtimestamp(now, timezone.utc))
            if alert is not None:
                deliver(alert, outbox)
            store.outbox_delete([digest.record])
