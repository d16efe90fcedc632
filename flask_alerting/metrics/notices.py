"""What became of a sampler's "firing" alerts: delivered, or lost before any delivery.

A "resolved" alert is only sent for a breach whose "firing" alert someone was told of:
the sampler hears from the delivery pipeline of its app (the ``alert_sent`` and
``alert_dropped`` signals, :meth:`Notices.listen`) what became of its "firing" alerts and
keeps it in the :attr:`~.machine.RuleMachine.notice` of the breach. Recorded in the lock
file (:mod:`.shared`), it tells the process that takes over whether to continue "firing"
(its alert was delivered) or only the breach.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..alert import Alert
from ..signals import alert_dropped, alert_sent
from .machine import RuleMachine


class NoticedMachine(RuleMachine):
    """A rule's state machine that knows which of the rule's alerts are its breach's."""

    #: The timestamp of the current breach's "firing" alert: deliveries of this rule's
    #: alerts from then on confirm it (an older breach's are no news).
    notice_at: datetime | None = None


class Notices:
    """The part of :class:`~.sampler.Sampler` that hears what became of its alerts.

    A mixin: it works on the sampler's machines, under the sampler's lock, and records
    what changed with the sampler's :meth:`_record`.
    """

    _lock: threading.Lock
    _machines: Sequence[NoticedMachine]

    def _record(self) -> None:
        """Write the states into the lock file (with :attr:`_lock` held)."""
        raise NotImplementedError

    def listen(self, sender: object) -> None:
        """Hear what becomes of this sampler's alerts in the delivery pipeline whose
        signals have ``sender`` (the app): :meth:`delivered` on ``alert_sent``,
        :meth:`lost` on ``alert_dropped``. Connected weakly: neither the sampler nor the
        sender is kept alive by it."""
        alert_sent.connect(self._on_sent, sender=sender, weak=True)
        alert_dropped.connect(self._on_dropped, sender=sender, weak=True)

    def _on_sent(self, sender: object, **kwargs: Any) -> None:
        alert = kwargs.get("alert")
        if isinstance(alert, Alert):
            self.delivered(alert)

    def _on_dropped(self, sender: object, **kwargs: Any) -> None:
        alert = kwargs.get("alert")
        if isinstance(alert, Alert):
            self.lost(alert)

    def _machine_for(self, alert: Alert) -> NoticedMachine | None:
        """The machine whose current breach ``alert`` (its "firing" alert or a
        reminder) belongs to, if any."""
        if alert.kind != "metric" or alert.status != "firing":
            return None
        name = alert.labels.get("metric")
        for machine in self._machines:
            if machine.rule.name == name:
                since = machine.notice_at
                return machine if since is not None and alert.timestamp >= since else None
        return None

    def delivered(self, alert: Alert) -> None:
        """A notifier delivered ``alert``: when it is the "firing" alert (or a reminder)
        of a rule's current breach, record that someone was told, so that the process
        that takes over continues the breach, and its resolution is sent."""
        machine = self._machine_for(alert)
        if machine is None:
            return
        with self._lock:
            if machine.confirm():
                self._record()

    def lost(self, alert: Alert) -> None:
        """``alert`` was dropped before any delivery: when it is the "firing" alert of a
        rule's current breach, that breach ends without a "resolved" alert."""
        machine = self._machine_for(alert)
        if machine is None:
            return
        with self._lock:
            machine.lose()
