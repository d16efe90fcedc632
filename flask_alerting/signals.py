"""Blinker signals, sent with the Flask app as sender.

Connect with ``alert_sent.connect(receiver, app)`` to hear about one app only.
Receivers of ``alert_raised``, ``alert_suppressed`` and ``alert_dropped`` run on the
extension's dispatch thread, those of ``alert_sent`` and ``alert_failed`` on the delivery
thread of the notifier concerned: keep them short, they delay delivery.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from blinker import NamedSignal, Namespace

_signals = Namespace()

#: An alert was raised by any source (``alert=``), before throttling.
alert_raised = _signals.signal("alert-raised")
#: An alert was counted into a digest, or folded into a flood summary, instead of being
#: sent now (``alert=``).
alert_suppressed = _signals.signal("alert-suppressed")
#: A notifier delivered an alert (``notifier=``, ``alert=``).
alert_sent = _signals.signal("alert-sent")
#: A delivery attempt failed (``notifier=``, ``alert=``, ``exception=``, ``will_retry=``).
alert_failed = _signals.signal("alert-failed")
#: An alert was lost: queue overflow or shutdown before delivery (``alert=``, ``reason=``).
alert_dropped = _signals.signal("alert-dropped")

#: Internal, not part of the public API (``flask_alerting`` does not export it): an alert
#: this process is to deliver was recorded in the durable outbox of a shared store
#: (``alert=``), so that it is delivered even if this process is killed now. Sent on the
#: dispatch thread once the store has the record, before any notifier gets the alert;
#: never with ``memory://``, nor for an alert delivered without a record (the store
#: failing). The metrics sampler hears it (:mod:`flask_alerting.metrics.notices`).
alert_recorded = _signals.signal("alert-recorded")


def weak_sender(sender: Any) -> Any:
    """A weak reference to ``sender`` for :func:`send_safely`, so that whatever keeps it
    (a delivery thread) never keeps the app alive; ``sender`` itself when it cannot be
    referenced weakly (a plain ``object()`` in tests)."""
    try:
        return weakref.ref(sender)
    except TypeError:
        return sender


def send_safely(signal: NamedSignal, sender: Any, **kwargs: Any) -> None:
    """Send ``signal``; a receiver that raises is logged and skipped, never allowed to
    stop the others or the alert's delivery.

    Receivers run on flask-alerting's threads, often without an app context: one that
    touches ``current_app`` raises there, and must not cost the alert. A ``sender`` made
    by :func:`weak_sender` is resolved first; once the app is gone, nothing is sent.
    """
    if not signal.receivers:
        return
    if isinstance(sender, weakref.ref):
        sender = sender()
        if sender is None:
            return
    for receiver in list(signal.receivers_for(sender)):
        try:
            receiver(sender, **kwargs)
        except Exception:
            logging.getLogger("flask_alerting").exception(
                "flask-alerting: a receiver of the %r signal raised; ignored", signal.name
            )
