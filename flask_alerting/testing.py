"""Helpers for testing an application that uses flask-alerting.

::

    from flask_alerting.testing import record_alerts

    def test_checkout_error_alerts(app, client):
        with record_alerts(app) as alerts:
            client.get("/checkout")
        assert alerts[0].labels["exception"] == "KeyError"

With pytest, the ``captured_alerts`` fixture does the same for the ``app`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ._state import get_state
from .signals import alert_raised, send_safely

if TYPE_CHECKING:
    from flask import Flask

    from .alert import Alert


@contextmanager
def record_alerts(app: Flask) -> Iterator[list[Alert]]:
    """Record the alerts that ``app`` raises inside the block, without delivering them.

    Alerts are built at once, in the thread that raises them, so the list is complete as
    soon as the statement that raised them returns; ``alert_raised`` is still sent. The
    throttle is bypassed: every raised alert is recorded. Nothing reaches the notifiers.
    Built on the pipeline's public seam,
    :meth:`~flask_alerting.delivery.Pipeline.divert`.

    :raises RuntimeError: when flask-alerting is not initialised on ``app``.
    """
    pipeline = get_state(app).pipeline
    alerts: list[Alert] = []

    def record(alert: Alert) -> None:
        alerts.append(alert)
        send_safely(alert_raised, app, alert=alert)

    with pipeline.divert(record):
        yield alerts
