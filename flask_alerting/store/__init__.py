"""Shared alert state: throttle windows, digest counts, a process registry and an outbox.

Every process that names the same store acts as one. Three backends behind one interface,
:class:`Store`: ``memory://`` (:class:`MemoryStore`, one process, the reference),
``sqlite:///path`` (:class:`SQLiteStore`, the processes of a host; the default is a
per-host file, :func:`default_sqlite_path`) and ``redis://`` / ``rediss://`` /
``unix://`` (:class:`RedisStore`, many hosts; the ``redis`` extra). Pick one with
:func:`parse_storage_uri`.

How a dispatch thread uses it (times are wall-clock epoch seconds, ``now`` from the caller;
``me = current_process()``)::

    store.register(me, now=now, lease=30)                  # then every ~10 s: a heartbeat
    opened = store.open_windows([NewWindow(fp, alert, 60)], now=now, owner=me)
    if opened[0].first: send(alert)                          # exactly one process per window
    else: count it locally until opened[0].end
    for a in store.add_counts(counts, now=now):              # batched, every ~100 ms
        if a.gone: open a new window for a.returned (it is sent as a new alert)
    claim = store.claim_due(now=now, owner=me, notifiers=names)   # any live process
    for digest in claim.digests: send(digest as an alert); store.outbox_delete([digest.record])
    ...                                                      # wake again at claim.next_due
    put = store.outbox_put([Outgoing(alert, names)], owner=me, now=now)   # before delivery
    store.outbox_delete(put.ids)                             # after delivery (or give-up)
    for record in store.outbox_claim(owner=me, now=now): deliver, marked recovered; delete
    if store.deregister(me, now=now):                        # the last one out
        for digest in store.drain(now=now, owner=me, notifiers=names): send, delete

Guarantees, per fingerprint, across every process of a store:

* **One first alert**: :meth:`Store.open_windows` is atomic; one caller gets ``first``.
* **Counts add up**: :meth:`Store.add_counts` adds one batch atomically; a count whose
  window is gone comes back to the caller (``Added.returned``), never dropped.
* **One digest per window period**: :meth:`Store.claim_due` claims due windows atomically
  (any process may; a dead owner's windows are claimed by whoever comes next) and records
  each digest in the claimer's outbox in the same step, so a claimer killed before it
  delivered leaves the digest to :meth:`Store.outbox_claim` of another process.
* **Exactly one last process**: :meth:`Store.deregister` is atomic.
* **Outbox**: records of dead processes are taken over atomically by one live process
  (claim, deliver, delete: a crash between delivery and delete repeats that one alert).
  Bounded by a cap and an age; what is dropped is counted and returned.

Liveness: on this host by the OS (pid and start time, :mod:`psutil`); on other hosts by a
lease renewed by :meth:`Store.register` (see :func:`is_alive`).

Clocks: windows end at the opener's ``now + window``, and are claimed when the claimer's
``now`` passes the end plus ``Limits.grace`` (1 s). A host whose clock runs ahead by ``d``
claims ``d`` early: counts of other processes that arrive after the claim go into the
reopened window (the next digest) or, if the window was removed, come back as
``Added.returned`` and are sent as a new alert. Skew moves counts between messages; it never
loses or doubles one. Leases compare the holder's ``now + lease`` with the reader's ``now``:
keep skew well below the lease (NTP gives milliseconds; leases are tens of seconds).

Failures: every operation is bounded (about 50 ms by default: ``timeout``) and raises
:class:`StoreError` (a file another user owns: :class:`ForeignFileError`), never hangs.
:class:`CircuitBreaker` tells the caller when to fall back to its own per-process throttle
and when to try the store again. Bad URIs raise :class:`InvalidStorageURI` at parse time.
Passwords never appear in a repr, a str or an error (:func:`mask_uri`).

Alerts are stored as JSON (:func:`encode_alert` / :func:`decode_alert`, bounded size).
"""

from __future__ import annotations

from .._urls import mask_uri
from .base import GRACE, MAX_AGE, MAX_RECORDS, MAX_WINDOWS, RETENTION, Limits, Store
from .breaker import BreakerOpen, CircuitBreaker
from .codec import CodecError, decode_alert, encode_alert
from .errors import ForeignFileError, InvalidStorageURI, StoreError
from .memory import MemoryStore
from .model import (
    Added,
    Claim,
    Count,
    Digest,
    NewWindow,
    Opened,
    Outgoing,
    ProcessInfo,
    Put,
    Record,
    WindowInfo,
)
from .process import ProcessId, current_process, is_alive
from .redis import RedisStore
from .sqlite import SQLiteStore
from .uri import default_namespace, default_sqlite_path, parse_storage_uri

__all__ = [
    "GRACE",
    "MAX_AGE",
    "MAX_RECORDS",
    "MAX_WINDOWS",
    "RETENTION",
    "Added",
    "BreakerOpen",
    "CircuitBreaker",
    "Claim",
    "CodecError",
    "Count",
    "Digest",
    "ForeignFileError",
    "InvalidStorageURI",
    "Limits",
    "MemoryStore",
    "NewWindow",
    "Opened",
    "Outgoing",
    "ProcessId",
    "ProcessInfo",
    "Put",
    "Record",
    "RedisStore",
    "SQLiteStore",
    "Store",
    "StoreError",
    "WindowInfo",
    "current_process",
    "decode_alert",
    "default_namespace",
    "default_sqlite_path",
    "encode_alert",
    "is_alive",
    "mask_uri",
    "parse_storage_uri",
]
