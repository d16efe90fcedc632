"""Lost alerts: what the queues of the delivery engine do when they are full."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime

from .._lifecycle import guard
from ..alert import Alert, AlertItem, PendingAlert
from ..dispatch import Clock
from ..notifiers.base import Notifier
from ..signals import alert_dropped, send_safely
from .store_link import StoreLink

logger = logging.getLogger("flask_alerting")



class DropCounter:
    """Counts lost alerts; logs the first of a burst, then at most once a minute.

    :param where: names the queue in the log line (``"inbound queue"``).
    :param clock: monotonic seconds.
    """

    def __init__(self, where: str, clock: Clock) -> None:
        self.where = where
        self.clock = clock
        self.total = 0
        self._last_log: float | None = None
        self._unlogged = 0

    def add(self, alert: Alert | None, reason: str, sender: object) -> None:
        """Count one lost alert; signal ``alert_dropped`` for it when it is known."""
        self.total += 1
        self._unlogged += 1
        now = self.clock()
        if self._last_log is None or now - self._last_log >= 60.0:
            logger.warning(
                "flask-alerting: %d alert(s) dropped (%s, %s); the next delivered alert "
                "will say how many",
                self._unlogged,
                self.where,
                reason,
            )
            self._last_log = now
            self._unlogged = 0
        if alert is not None:
            send_safely(alert_dropped, sender, alert=alert, reason=reason)


#: Alerts dropped by a full inbound queue that are later sent as ``alert_dropped``; past
#: this many per batch they are only counted and logged.
MAX_DROPS_SIGNALLED = 100


class Overflow:
    """What a full inbound queue keeps of the items it cannot take.

    A storm's bare count (a :class:`~flask_alerting.alert.PendingAlert` that its source
    saw the throttle would only count) is kept as a number per fingerprint, merged into
    its digest later by the dispatch thread: first + digests = all, even when the queue is
    full. Any other item is lost: counted and logged at once (:attr:`drops`), and
    signalled (``alert_dropped``; built, for its receivers) later, on the dispatch thread,
    never on the request path (past :data:`MAX_DROPS_SIGNALLED` a batch, only counted).

    :param clock: monotonic seconds.
    :param sender: the signals' sender (see :func:`~flask_alerting.signals.weak_sender`).
    """

    def __init__(self, clock: Clock, sender: object) -> None:
        self.sender = sender
        self.drops = DropCounter("inbound queue", clock)
        #: Fingerprint -> (bare counts kept, time of the last).
        self.counts: dict[str, tuple[int, datetime]] = {}
        self._dropped: list[AlertItem] = []
        self._lock = threading.Lock()

    def keep(self, item: AlertItem) -> bool:
        """Take ``item`` that the queue refused: True when kept as a count, False when
        it is lost (the caller tells the notifiers' next messages)."""
        with self._lock:
            if isinstance(item, PendingAlert) and item.build is None:
                count, _ = self.counts.get(item.fingerprint, (0, item.timestamp))
                self.counts[item.fingerprint] = (count + 1, item.timestamp)
                return True
            self.drops.add(None, "queue full", self.sender)
            if len(self._dropped) < MAX_DROPS_SIGNALLED:
                self._dropped.append(item)
            return False

    def take(self) -> tuple[dict[str, tuple[int, datetime]], list[AlertItem]]:
        """The counts kept and the items lost since the last call (dispatch thread)."""
        with self._lock:
            counts, self.counts = self.counts, {}
            dropped, self._dropped = self._dropped, []
        return counts, dropped

    def signal(self, dropped: list[AlertItem]) -> None:
        """Send ``alert_dropped`` for items that :meth:`take` returned (dispatch thread)."""
        if not dropped or not alert_dropped.receivers:
            return
        for item in dropped:
            with guard("signalling a dropped alert"):
                alert = item if isinstance(item, Alert) else item()
                if alert is not None:
                    send_safely(alert_dropped, self.sender, alert=alert, reason="queue full")


def report_undelivered(lost: Sequence[tuple[Notifier, Alert]], sender: object) -> None:
    """Log (one line) and signal (``alert_dropped``, reason ``"shutdown"``) the alerts
    that a shutdown could not deliver, each with the notifier it was meant for."""
    logger.error(
        "flask-alerting: shutting down with %d alert(s) undelivered: %s",
        len(lost),
        "; ".join(f"{n.name}: {a.title!r}" for n, a in lost[:10]),
    )
    for _, alert in lost:
        send_safely(alert_dropped, sender, alert=alert, reason="shutdown")


def report_kept(kept: int, link: StoreLink) -> None:
    """Log the alerts a shutdown could not deliver that stay in the outbox of the link's
    store: never lost, the next process of the store delivers them."""
    if kept:
        logger.warning(
            "flask-alerting: %d alert(s) of app %r not delivered by its shutdown stay in the "
            "outbox of %s: the next process of that store delivers them, marked as recovered",
            kept,
            link.name,
            link.store.uri,
        )
