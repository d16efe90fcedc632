"""An opt-in :class:`logging.Handler` that turns error log records into alerts.

::

    logging.getLogger("myapp").addHandler(AlertingHandler(alerting, level=logging.ERROR))

The caller pays for a record's message formatting and a request snapshot (inside a
request), then one :meth:`state.submit` call: no lock (not even the handler's own), no
I/O. The traceback is formatted on the dispatch thread.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from ._lifecycle import guard
from .capture import LOG_RECORD_EXCEPTION, capture_log_record, is_captured

if TYPE_CHECKING:
    from flask import Flask

    from ._extension import FlaskAlerting
    from ._state import State

#: Loggers whose records are never turned into alerts: flask-alerting's own, so that a
#: report about a failing delivery cannot become an alert that fails to be delivered.
OWN_LOGGER = "flask_alerting"
#: Threads whose records are never turned into alerts (the delivery and sampler threads).
OWN_THREAD_PREFIX = "flask-alerting"

_local = threading.local()


def _is_own(record: logging.LogRecord) -> bool:
    name = record.name
    if name == OWN_LOGGER or name.startswith(OWN_LOGGER + "."):
        return True
    thread = record.threadName
    return isinstance(thread, str) and thread.startswith(OWN_THREAD_PREFIX)


class AlertingHandler(logging.Handler):
    """Turns log records at ``level`` and above into alerts.

    A record carrying an exception (``logger.exception(...)``, ``exc_info=True``) becomes
    an error alert exactly like :meth:`FlaskAlerting.capture_exception` would raise, with
    the record's logger and message added; an exception already alerted in the same
    request (by the request capture, ``capture_exception`` or another handler) is skipped,
    so Flask's own ``"Exception on ..."`` record never makes a second e-mail. A record without an
    exception becomes an error alert titled with its message, grouped by logger and call
    site (never by message text), with the labels ``logger`` (the record's logger name)
    and ``exception`` = :data:`LOG_RECORD_EXCEPTION` (``"(log record)"``). Inside a
    request, alerts carry the request context.

    Records from the ``flask_alerting`` loggers and from flask-alerting's own threads are
    ignored, so the handler can sit on the root logger without ever looping.

    :param alerting: the extension. Outside an app context, records go to the single app
        it was initialised with (or to ``app``).
    :param level: the minimum level (default ``logging.ERROR``).
    :param app: always alert through this app, whatever the current app.
    """

    def __init__(
        self,
        alerting: FlaskAlerting,
        level: int | str = logging.ERROR,
        *,
        app: Flask | None = None,
    ) -> None:
        super().__init__(level)
        self.alerting = alerting
        self.app = app

    def createLock(self) -> None:  # noqa: N802 - logging's name
        # No lock: emit() only hands a builder to a thread-safe queue.
        self.lock = None

    def handle(self, record: logging.LogRecord) -> Any:
        """Filter and emit without taking the handler lock (see :meth:`emit`)."""
        result: Any = self.filter(record)
        if isinstance(result, logging.LogRecord):  # Python >= 3.12 filters may return one
            record = result
        if result:
            self.emit(record)
        return result

    def emit(self, record: logging.LogRecord) -> None:
        """Hand an alert builder for ``record`` to the pipeline. Never raises."""
        if _is_own(record) or getattr(_local, "active", False):
            return
        _local.active = True
        try:
            with guard("turning a log record into an alert"):
                self._emit(record)
        finally:
            _local.active = False

    def _state(self) -> State | None:
        if self.app is not None:
            try:
                return self.alerting._get_state(self.app)
            except RuntimeError as exc:
                logging.getLogger(OWN_LOGGER).warning("flask-alerting: %s", exc)
                return None
        return self.alerting._state_or_warn()

    def _emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and is_captured(exc):
            return
        state = self._state()
        if state is None or not state.config.enabled:
            return
        capture_log_record(state, record)


__all__ = ["LOG_RECORD_EXCEPTION", "OWN_LOGGER", "OWN_THREAD_PREFIX", "AlertingHandler"]
