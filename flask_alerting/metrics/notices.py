"""What became of a sampler's "firing" alerts: recorded in the outbox, delivered, or lost
before any delivery.

A "resolved" alert is only sent for a breach whose "firing" alert someone was told of:
the sampler hears from the delivery pipeline of its app (the ``alert_recorded``,
``alert_sent`` and ``alert_dropped`` signals, :meth:`Notices.listen`) what became of its
"firing" alerts and keeps it in the :attr:`~.machine.RuleMachine.notice` of the breach.
Recorded in the lock file (:mod:`.shared`), it tells the process that takes over whether
to continue "firing" (its alert was delivered, or is sure to be) or only the breach.

"Sure to be delivered" means recorded in the durable outbox of a shared store
(:mod:`flask_alerting.delivery.outbox`): whoever takes the record over delivers it,
however this process ends. The sampler learns it from ``alert_recorded``, which the
dispatch thread sends once the store has the record, and only then writes "recorded"
into the lock file. So whenever a SIGKILL comes, the lock file never says "recorded" for
an alert the store does not hold (the kill lost it: the next process fires again); a
kill in the instant between the store's write and the lock file's leaves "queued" for an
alert the store holds, which errs on the side of a second "firing" alert, never of
silence. Handing the alert to the pipeline would not do: it waits in memory (the
inbound queue, a batch gathering for up to 100 ms) before it is recorded, and is not
recorded at all while the store fails. With ``memory://`` nothing is ever recorded: the
notices are "queued" and "sent", as in 0.1.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..alert import Alert
from ..signals import alert_dropped, alert_recorded, alert_sent
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
        signals have ``sender`` (the app): :meth:`in_outbox` on ``alert_recorded``,
        :meth:`delivered` on ``alert_sent``, :meth:`lost` on ``alert_dropped``.
        Connected weakly: neither the sampler nor the sender is kept alive by it."""
        alert_recorded.connect(self._on_recorded, sender=sender, weak=True)
        alert_sent.connect(self._on_sent, sender=sender, weak=True)
        alert_dropped.connect(self._on_dropped, sender=sender, weak=True)

    def _on_recorded(self, sender: object, **kwargs: Any) -> None:
        alert = kwargs.get("alert")
        if isinstance(alert, Alert):
            self.in_outbox(alert)

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

    def in_outbox(self, alert: Alert) -> None:
        """``alert`` was recorded in the durable outbox of a shared store: when it is
        the "firing" alert of a rule's current breach, record (in the lock file) that
        it will be delivered whatever becomes of this process, so that the process that
        takes over continues "firing" instead of firing again."""
        machine = self._machine_for(alert)
        if machine is None:
            return
        with self._lock:
            if machine.recorded():
                self._record()

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
        rule's current breach, that breach ends without a "resolved" alert (recorded at
        once: a process taking over must not count on an alert that was "recorded"). A
        lost reminder changes nothing: the "firing" alert went its own way."""
        machine = self._machine_for(alert)
        if machine is None or alert.timestamp != machine.notice_at:
            return
        with self._lock:
            if machine.lose():
                self._record()
