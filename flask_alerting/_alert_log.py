"""The alert log: every raised alert as one line on the ``flask_alerting.alerts.<app>``
logger, and in ``ALERTING_LOG_FILE`` when it is set.

Written on the dispatch thread (the pipeline's ``log`` and ``log_logged`` callbacks).
"""

from __future__ import annotations

import logging
import logging.handlers

from .alert import Alert
from .config import ConfigurationError, ConfigVars
from .notifiers.log import LEVELS
from .render import log_line

LOG_FORMAT = "%(asctime)s:%(levelname)s:%(message)s"

_alerts_parent = logging.getLogger("flask_alerting.alerts")
# The alert log repeats what Flask already prints for errors: without logging
# configuration it stays quiet (no "last resort" stderr output) unless ALERTING_LOG_FILE
# or the application's own handlers ask for it. Delivery problems and the LogNotifier
# fallback use other loggers and remain visible.
_alerts_parent.addHandler(logging.NullHandler())


def open_alert_log(
    app_name: str, log_file: str | None
) -> tuple[logging.Logger, logging.Handler | None]:
    """A logger of this app's alerts, and the handler of ``log_file`` on it (if any).

    The logger lives outside the logging manager (one per app state, freed with it); its
    parent is ``flask_alerting.alerts``, so ordinary logging configuration applies. The
    file is opened at the first alert, rotated at 10 MiB (5 backups).

    :raises ConfigurationError: naming ``ALERTING_LOG_FILE`` when it cannot be used.
    """
    log = logging.Logger(f"flask_alerting.alerts.{app_name}", logging.DEBUG)
    log.parent = _alerts_parent
    if not log_file:
        return log, None
    try:
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=10 * 1024 * 1024, backupCount=5, delay=True, encoding="utf-8"
        )
    except OSError as exc:
        raise ConfigurationError(ConfigVars.LOG_FILE, f"a writable path ({exc})") from exc
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    log.addHandler(handler)
    return log, handler


def close_alert_log(log: logging.Logger, handler: logging.Handler | None) -> None:
    """Take ``handler`` off ``log`` and close its file."""
    if handler is not None:
        log.removeHandler(handler)
        handler.close()


def write(log: logging.Logger, alert: Alert) -> None:
    """Log ``alert`` (at its severity) on ``log``, and on to its ancestors' handlers."""
    log.log(LEVELS[alert.severity], "%s", log_line(alert))


# Alerts their source already logged (an unhandled request error that Flask's
# log_exception records, a record turned into an alert by AlertingHandler) go to the
# flask_alerting loggers' own handlers (ALERTING_LOG_FILE included) but not on to the root
# logger, where that first record already is: no traceback twice in the application's log.


def write_logged(log: logging.Logger, alert: Alert) -> None:
    """Log an alert its source already logged: to flask-alerting's handlers only."""
    handlers = logged_handlers(log)
    if not handlers:
        return
    level = LEVELS[alert.severity]
    record = log.makeRecord(log.name, level, __file__, 0, "%s", (log_line(alert),), None)
    for found in handlers:
        if level >= found.level:
            found.handle(record)


def logged_handlers(log: logging.Logger) -> list[logging.Handler]:
    """The handlers that :func:`write_logged` writes to: those of ``log`` and of its
    ancestors below the root logger (as far as records propagate)."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = log
    while current is not None and current is not logging.root:
        found += [h for h in current.handlers if not isinstance(h, logging.NullHandler)]
        if not current.propagate:
            break
        current = current.parent
    return found
