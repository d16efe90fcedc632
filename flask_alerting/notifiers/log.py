"""A notifier that writes alerts to a :mod:`logging` logger."""

from __future__ import annotations

import logging

from ..alert import Alert
from ..render import text_body
from .base import Notifier

LEVELS: dict[str, int] = {
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class LogNotifier(Notifier):
    """Logs each delivered alert (after throttling) at its severity.

    This is the fallback when neither SMTP nor notifiers are configured, so alerts are
    never silently lost.

    :param logger: a logger or its name; default ``"flask_alerting.notify"``.
    """

    name = "log"

    def __init__(self, logger: logging.Logger | str | None = None) -> None:
        if logger is None or isinstance(logger, str):
            logger = logging.getLogger(logger or "flask_alerting.notify")
        self.logger = logger

    def send(self, alert: Alert) -> None:
        prefix = "RESOLVED " if alert.status == "resolved" else ""
        self.logger.log(
            LEVELS[alert.severity], "%s%s\n%s", prefix, alert.title, text_body(alert).rstrip()
        )

    def describe(self) -> str:
        return f"logger {self.logger.name!r}"
