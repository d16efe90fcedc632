"""The throttle shared by every process of a store: one incident, one message.

:class:`SharedThrottle` has the interface of the per-process
:class:`~flask_alerting.dispatch.Throttle`, so the
:class:`~flask_alerting.dispatch.Dispatcher` uses either, but keeps its windows in the
app's store, where every process that names the same store (the workers of a host, the
hosts of a Redis) finds them. It runs on the dispatch thread only, and talks to the store
through the pipeline's :class:`~.store_link.StoreLink`.

Per fingerprint and window, across the processes of a store:

* **One first alert.** The first occurrence a process sees of a fingerprint asks the
  store to open its window (:meth:`~flask_alerting.store.Store.open_windows`, atomic):
  exactly one process is told it opened it and sends the alert at once; the others learn
  that it is open and until when, and count.
* **Counted locally, added in batches.** Then the process knows the window: further
  occurrences are counted in memory (on the request path, the decision "count only" is
  a dictionary lookup, :meth:`SharedThrottle.suppresses`, with no store at all) and
  added to the store every :data:`FLUSH_EVERY` seconds, many fingerprints in one round
  trip (:meth:`~flask_alerting.store.Store.add_counts`). A count whose window was gone
  meanwhile comes back and leaves as a digest of its own (``(Nx)``): never lost.
* **One digest, whoever sends it.** Every process claims the windows that are due
  (:meth:`~flask_alerting.store.Store.claim_due`, atomic, at a window's end plus the
  store's grace of 1 s, and every :data:`CLAIM_EVERY` seconds): whichever comes first
  sends the one digest of that window, whose count is the sum of every process's
  occurrences, and the window starts again; so a window whose opener died is closed by
  another process.
* **The last one out sends what is pending.** At shutdown a process adds its counts and
  leaves the store; the last live process drains it
  (:meth:`~flask_alerting.store.Store.drain`): every window's digest leaves now.

When the store fails (or the breaker is open), nothing waits for it and nothing is lost:
a fingerprint the store cannot open gets a window of this process alone (the per-process
throttle: first alert now, a digest at its end), and counts that cannot be added stay
here until they can, or until their window ends: then they leave as this process's own
digest. Once the store answers again, each per-process window runs to its end and its
fingerprint goes back to the store. So with the store down every process throttles on
its own, as in 0.1 (one first alert and one digest per process and window).

An alert that is not built yet (the flood guard folded it, see
:meth:`~flask_alerting.dispatch.Dispatcher.dispatch_pending`) opens a window of this
process only: the store keeps the alert a digest shows, and building it is what the
flood guard saves.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import logging
from collections.abc import Sequence
from datetime import datetime, timezone

from ..alert import Alert, PendingAlert
from ..dispatch import MAX_FINGERPRINTS, RECENT_TEMPLATES, Clock, Window
from ..store import Count, Digest, StoreError
from .store_link import StoreLink

logger = logging.getLogger("flask_alerting")

#: Seconds between two batches of counts added to the store (while there are some).
FLUSH_EVERY = 0.1
#: Seconds between two claims of due windows when none is known to be due sooner (a
#: window opened by another process that died is claimed within this).
CLAIM_EVERY = 1.0


@dataclasses.dataclass
class _Entry:
    """What this process knows of one fingerprint's window.

    :param window: ``end`` (the store's time, epoch seconds) and the occurrences counted
        here and not yet added to the store (for a shared window), or counted in this
        process's own window.
    :param shared: the window lives in the store; False: this process's own (fallback).
    :param fresh: ``window.last`` is a built alert the store has not seen yet.
    """

    window: Window
    shared: bool
    fresh: bool = False


class SharedThrottle:
    """A throttle whose windows live in a store (see the module docstring).

    :param link: the dispatch thread's link to the store.
    :param window: seconds (> 0).
    :param clock: monotonic seconds (the pipeline's clock); the store's time is
        ``link.wall``.
    :param notifiers: names of the notifiers, recorded with claimed digests.
    :param labels: ``app`` and ``host``, for a digest whose stored alert cannot be read.
    :param max_fingerprints: windows this process tracks at once; past it the one that
        ends first is closed early here (its counts leave as a digest now).
    """

    def __init__(
        self,
        link: StoreLink,
        window: float,
        clock: Clock,
        *,
        notifiers: Sequence[str] = (),
        labels: dict[str, str] | None = None,
        max_fingerprints: int = MAX_FINGERPRINTS,
    ) -> None:
        if window <= 0:
            raise ValueError("a shared throttle needs a window > 0")
        self.link = link
        self.store = link.store
        self.window = window
        self.clock = clock
        self.wall = link.wall
        self.notifiers = tuple(notifiers)
        self.labels = dict(labels or {})
        self.max_fingerprints = max_fingerprints
        self.grace = self.store.limits.grace
        self._entries: dict[str, _Entry] = {}
        self._ends: list[tuple[float, str]] = []  # (end, fingerprint), lazy: for expiry
        self._dirty: set[str] = set()  # shared windows with counts not yet added
        self._recent: collections.OrderedDict[str, Alert | PendingAlert] = (
            collections.OrderedDict()
        )
        self._evicted: list[Alert] = []
        # Outbox records of claimed digests: handed over with their digest (by id, with
        # the digest kept so that the id stays its own) until delivery takes them over
        # (record_of) or the flood guard folds them (discard); then to delete.
        self._handed: dict[int, tuple[Alert, str]] = {}
        self._to_delete: list[str] = []
        self._next_flush = clock()
        # Not before the first alert is handled: the store's first answer may be slow.
        self._next_claim = clock() + CLAIM_EVERY
        #: Windows closed early because the table was full.
        self.evictions = 0
        #: Windows this process opened in the store (it sent their first alert).
        self.opened = 0
        #: Occurrences whose window another process had opened.
        self.joined = 0
        #: Windows of this process alone, opened while the store failed.
        self.local_windows = 0

    def __len__(self) -> int:
        return len(self._entries)

    # -- times ---------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), timezone.utc)

    def _monotonic(self, wall: float) -> float:
        """The ``clock`` time at which the store's time will be ``wall``."""
        return self.clock() + (wall - self.wall())

    # -- the Throttle interface ----------------------------------------------------------

    def offer(self, alert: Alert | PendingAlert) -> bool:
        """Record ``alert``; True when this process sends it now (it opened the window),
        False when it is counted. Asks the store only for a fingerprint it does not know.
        """
        fp = alert.fingerprint
        entry = self._entries.get(fp)
        if entry is not None:
            self._count(fp, entry, alert)
            return False
        self._make_room()
        now = self.wall()
        # Known at once, before the store answers: meanwhile the request path counts the
        # next occurrences instead of capturing each in full (a store's first answer
        # may take a while on a busy host: a connection, a GIL shared with the storm).
        entry = self._add(fp, _Entry(Window(end=now + self.window, last=alert), shared=False))
        if isinstance(alert, Alert):
            self.link.ensure_registered()
            try:
                opened = self.link.call(
                    "opening a throttle window",
                    lambda: self.store.open_window(
                        fp, alert, self.window, now=now, owner=self.link.process
                    ),
                )
            except StoreError:
                pass  # this process's own window
            else:
                if opened.end is None:  # the store tracks no more windows: send, count nothing
                    self._forget(fp, entry)
                    return True
                entry.shared = True
                if opened.end != entry.window.end:
                    entry.window.end = opened.end
                    heapq.heappush(self._ends, (opened.end, fp))
                if opened.first:
                    self.opened += 1
                    return True
                self.joined += 1
                self._count(fp, entry, alert)
                return False
        self.local_windows += 1
        return True

    def _add(self, fp: str, entry: _Entry) -> _Entry:
        self._entries[fp] = entry
        heapq.heappush(self._ends, (entry.window.end, fp))
        return entry

    def _count(self, fp: str, entry: _Entry, item: Alert | PendingAlert) -> None:
        entry.window.add(item)
        if entry.window.last is item and isinstance(item, Alert):
            entry.fresh = True
        if entry.shared:
            if not self._dirty:  # the first count of a batch: the batch leaves in a while
                self._next_flush = self.clock() + FLUSH_EVERY
            self._dirty.add(fp)

    def suppresses(self, fingerprint: str) -> bool:
        """Whether an alert of ``fingerprint`` would be counted, not sent: this process
        knows its window is open. A dictionary lookup, safe from any thread."""
        return fingerprint in self._entries

    def count(self, item: PendingAlert) -> None:
        """Count an occurrence that :meth:`suppresses`, without building it."""
        self._count(item.fingerprint, self._entries[item.fingerprint], item)

    def take_evicted(self) -> list[Alert]:
        """Digests of the windows closed early to make room (see the class)."""
        evicted, self._evicted = self._evicted, []
        return evicted

    def next_due(self) -> float | None:
        """``clock`` time at which :meth:`pop_due` has something to do."""
        due: float | None = None
        if self._claims():
            due = self._next_claim  # also when idle: another process's windows may be due
        if self._dirty:
            due = self._next_flush if due is None else min(due, self._next_flush)
        top = self._top()
        if top is not None:
            end = self._monotonic(top[0] + (self.grace if self._is_shared(top) else 0))
            due = end if due is None else min(due, end)
        return due

    def _is_shared(self, top: tuple[float, str]) -> bool:
        return self._entries[top[1]].shared

    def pop_due(self) -> list[Alert]:
        """Add counts, claim due digests, close ended windows; the digests to deliver.
        Does nothing (no store call) before one of these is due."""
        now = self.clock()
        out: list[Alert] = []
        if self._dirty and now >= self._next_flush:
            self._next_flush = now + FLUSH_EVERY
            self._flush(out)
        if self._claims() and (now >= self._next_claim or self._shared_window_ended()):
            # A window this process knows has ended: claim first, so that one reopened
            # by the claim stays known here (a storm goes on being counted cheaply).
            self._claim(out)
        self._expire(out)
        return out

    def _claims(self) -> bool:
        """Whether this process claims due windows: from its first use of the store (its
        first alert) until it leaves. One that never raised anything never touches it."""
        return self.link.used and not self.link.left

    def _shared_window_ended(self) -> bool:
        top = self._top()
        return top is not None and self._is_shared(top) and top[0] + self.grace <= self.wall()

    def template(self, fingerprint: str) -> Alert | None:
        """The last alert built for ``fingerprint`` (see
        :meth:`~flask_alerting.dispatch.Throttle.template`)."""
        entry = self._entries.get(fingerprint)
        last = entry.window.last if entry is not None else self._recent.get(fingerprint)
        if last is None or isinstance(last, Alert):
            return last
        return last()

    def drain(self) -> list[Alert]:
        """At shutdown: add this process's counts, leave the store, and when this was
        its last live process, claim every window now. The digests to deliver (this
        process's own windows' too); forgets every window."""
        out: list[Alert] = []
        self._flush(out, force=True)
        for fp, entry in list(self._entries.items()):
            if entry.window.count:  # could not be added: this process's own digest
                out.append(entry.window.digest(self._now()))
            self._forget(fp, entry)
        self._dirty.clear()
        if self.link.leave():
            now = self.wall()
            try:
                digests = self.link.call(
                    "sending the pending digests (the last process to stop)",
                    lambda: self.store.drain(
                        now=now, owner=self.link.process, notifiers=self.notifiers
                    ),
                    force=True,
                )
            except StoreError:
                digests = []
            out += self._hand_over(digests)
        self._delete_handed(force=True)
        return out

    def sync(self) -> None:
        """Make the counts not yet added due now (:meth:`pop_due` adds them): a flush of
        the pipeline leaves every occurrence delivered or counted in the store."""
        if self._dirty:
            self._next_flush = self.clock()

    def pending(self) -> dict[str, int]:
        """Fingerprint -> occurrences counted here and not yet added to the store (or
        counted in a window of this process alone), for status displays."""
        entries = list(self._entries.items())  # one step: read from other threads
        return {fp: e.window.count for fp, e in entries if e.window.count}

    # -- the store -----------------------------------------------------------------------

    def _flush(self, out: list[Alert], force: bool = False) -> None:
        """Add the counts of shared windows to the store, in one batch."""
        counts: list[Count] = []
        for fp in sorted(self._dirty):
            entry = self._entries.get(fp)
            if entry is not None and entry.shared and entry.window.count:
                counts.append(_as_count(fp, entry))
        if not counts:
            self._dirty.clear()
            return
        now = self.wall()
        try:
            answers = self.link.call(
                "adding counts", lambda: self.store.add_counts(counts, now=now), force=force
            )
        except StoreError:
            return  # kept here: added later, or sent as this process's digest at the end
        self._dirty.clear()
        for count, answer in zip(counts, answers, strict=True):
            entry = self._entries[count.fingerprint]
            last = entry.window.last
            if answer.gone:
                # Its window was claimed and removed meanwhile: these occurrences were
                # never counted anywhere, so they leave as a digest of their own.
                out.append(entry.window.digest(self._now()))
                self._forget(count.fingerprint, entry)
            else:
                assert answer.end is not None
                moved = answer.end != entry.window.end
                entry.window = Window(end=answer.end, last=last)
                entry.fresh = False
                if moved:
                    heapq.heappush(self._ends, (answer.end, count.fingerprint))

    def _claim(self, out: list[Alert]) -> None:
        """Claim the store's due windows (any process's): their digests go to ``out``."""
        # Those handed over before were delivered or folded since (in the same dispatch
        # step); one that is left here (an error in between) keeps its record.
        self._handed.clear()
        self._delete_handed()
        now = self.wall()
        try:
            claim = self.link.call(
                "claiming due digests",
                lambda: self.store.claim_due(
                    now=now, owner=self.link.process, notifiers=self.notifiers
                ),
            )
        except StoreError:
            self._next_claim = self.clock() + CLAIM_EVERY
            return
        out += self._hand_over(claim.digests)
        clock = self.clock()
        if claim.more:
            self._next_claim = clock
        else:
            self._next_claim = clock + CLAIM_EVERY
            if claim.next_due is not None:
                due = self._monotonic(claim.next_due + self.grace)
                self._next_claim = max(clock, min(self._next_claim, due))

    def _hand_over(self, digests: Sequence[Digest]) -> list[Alert]:
        """Claimed digests as alerts; a window reopened by the claim is known here."""
        out = []
        for digest in digests:
            entry = self._entries.get(digest.fingerprint)
            next_end = digest.next_end
            if entry is not None and entry.shared and next_end not in (None, entry.window.end):
                assert next_end is not None
                entry.window.end = next_end
                heapq.heappush(self._ends, (next_end, digest.fingerprint))
            alert = digest.to_alert(self._now())
            if alert is None:
                alert = self._unreadable(digest)
            out.append(alert)
            self._handed[id(alert)] = (alert, digest.record)
        return out

    def record_of(self, digest: Alert) -> str | None:
        """The outbox record the store made for ``digest`` when it was claimed (owed by
        the notifiers named at construction): its delivery settles that record, as any
        recorded alert's, so that a process killed before the digest left has it
        recovered by another, and none is recorded twice. None for an alert that is not
        a claimed digest."""
        handed = self._handed.pop(id(digest), None)
        if handed is None or handed[0] is not digest:
            return None
        return handed[1]

    def discard(self, digest: Alert) -> None:
        """``digest`` will not be delivered on its own (the flood guard folded it into
        its summary): its record goes."""
        record = self.record_of(digest)
        if record is not None:
            self._to_delete.append(record)
            if self.link.left:  # no claim follows: now
                self._delete_handed(force=True)

    def _unreadable(self, digest: Digest) -> Alert:
        """A digest whose stored alert cannot be read: shaped like this process's last
        alert of the fingerprint when it has one, else a plain one; its count is kept."""
        template = self.template(digest.fingerprint)
        info = {"count": digest.count}
        if template is not None:
            return template.replace(
                occurrences=digest.count, timestamp=self._now(),
                details={**template.details, "digest": info},
            )
        return Alert(
            title=f"{digest.count} more occurrence(s) of alert {digest.fingerprint}",
            message="The stored alert of this digest could not be read.",
            severity="warning",
            labels=self.labels,
            fingerprint=digest.fingerprint,
            occurrences=digest.count,
            timestamp=self._now(),
            details={"digest": info},
        )

    def _delete_handed(self, force: bool = False) -> None:
        """Delete the outbox records of digests that the flood guard folded (its summary
        counts them). A digest that was handed over and neither delivered nor folded
        (an error in between) keeps its record: the outbox of whoever takes over this
        process's records delivers it, rather than none."""
        records, self._to_delete = self._to_delete, []
        if not records:
            return
        try:
            self.link.call(
                "deleting delivered digests", lambda: self.store.outbox_delete(records),
                force=force,
            )
        except StoreError:
            if not force:
                self._to_delete += records  # tried again at the next claim

    # -- local bookkeeping ---------------------------------------------------------------

    def _top(self) -> tuple[float, str] | None:
        """The (end, fingerprint) of the window that ends first (stale heap items go)."""
        ends = self._ends
        while ends:
            end, fp = ends[0]
            entry = self._entries.get(fp)
            if entry is not None and entry.window.end == end:
                return ends[0]
            heapq.heappop(ends)
        return None

    def _expire(self, out: list[Alert]) -> None:
        """Close the windows that ended, as far as this process is concerned.

        A shared window is forgotten here once its end plus the grace passed with no
        count left to add (the store's claim sends its digest; the next occurrence asks
        the store again); one with counts the store could not take becomes this
        process's own: they leave as its digest now. A window of this process's own
        sends its digest at its end, then is opened again here while the store still
        fails, or left to the store once it answers.
        """
        now = self.wall()
        while True:
            top = self._top()
            if top is None:
                return
            end, fp = top
            entry = self._entries[fp]
            if entry.shared:
                if end + self.grace > now:
                    return
                if entry.window.count and self.link.available:
                    # Not added yet (the next flush adds it, and learns the new end).
                    heapq.heappop(self._ends)
                    heapq.heappush(self._ends, (end + self.grace, fp))
                    entry.window.end = end + self.grace
                    continue
            elif end > now:
                return
            heapq.heappop(self._ends)
            if not entry.window.count:
                self._forget(fp, entry)
                continue
            out.append(entry.window.digest(self._now()))
            self._dirty.discard(fp)
            if self.link.available:
                self._forget(fp, entry)  # back to the store for the next occurrence
            else:
                self.local_windows += 1
                self._add(fp, _Entry(Window(end=now + self.window, last=entry.window.last),
                                     shared=False))

    def _forget(self, fp: str, entry: _Entry) -> None:
        del self._entries[fp]
        self._dirty.discard(fp)
        last = entry.window.last
        if last is not None:
            self._recent[fp] = last
            self._recent.move_to_end(fp)
            while len(self._recent) > RECENT_TEMPLATES:
                self._recent.popitem(last=False)

    def _make_room(self) -> None:
        """Past ``max_fingerprints``, close the window that ends first, here (its counts
        leave now as this process's digest; the store's window carries on)."""
        while len(self._entries) >= self.max_fingerprints:
            top = self._top()
            assert top is not None
            fp = top[1]
            entry = self._entries[fp]
            heapq.heappop(self._ends)
            if entry.window.count:
                self._evicted.append(entry.window.digest(self._now()))
            self._forget(fp, entry)
            self.evictions += 1
            if self.evictions == 1:
                logger.warning(
                    "flask-alerting: %d fingerprints are throttled at once, the most kept; "
                    "from now on the window that ends first is closed early in this "
                    "process (its counts sent now) for each new fingerprint. A flood of "
                    "distinct alerts? (logged once; see ALERTING_RATE_LIMIT)",
                    self.max_fingerprints,
                )


def _as_count(fp: str, entry: _Entry) -> Count:
    """The occurrences counted in ``entry`` as a :class:`~flask_alerting.store.Count`."""
    w = entry.window
    assert w.first_seen is not None and w.last_seen is not None
    template = w.last if entry.fresh and isinstance(w.last, Alert) else None
    return Count(
        fp,
        w.count,
        w.first_seen.timestamp(),
        w.last_seen.timestamp(),
        w.values,
        w.total,
        w.high if w.values else None,
        w.low if w.values else None,
        template,
    )
