"""A notifier that keeps alerts in a list: the test double, shipped with the library."""

from __future__ import annotations

from ..alert import Alert
from .base import Notifier


class MemoryNotifier(Notifier):
    """Appends every alert it is given to :attr:`alerts`.

    Useful in tests (``alerting.flush()`` first, then look at ``notifier.alerts``) and
    as a model for writing your own notifier.
    """

    name = "memory"

    def __init__(self) -> None:
        #: The alerts received, oldest first.
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def clear(self) -> None:
        """Forget the alerts received so far."""
        self.alerts.clear()
