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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._lifecycle import guard
from .alert import Alert, Severity, make_fingerprint, utcnow
from .capture import RequestDetails, is_captured, request_context
from .scrub import clean_text, cut, get_scrubber

if TYPE_CHECKING:
    from flask import Flask

    from ._extension import FlaskAlerting
    from ._state import State

#: Loggers whose records are never turned into alerts: flask-alerting's own, so that a
#: report about a failing delivery cannot become an alert that fails to be delivered.
OWN_LOGGER = "flask_alerting"
#: Threads whose records are never turned into alerts (the delivery and sampler threads).
OWN_THREAD_PREFIX = "flask-alerting"

#: The ``exception`` label of the alert made from a record without an exception. Every
#: error alert carries that label; this value (which no class name can take) says that
#: the error was logged, not raised, so routing and grouping rules on ``exception`` see it.
LOG_RECORD_EXCEPTION = "(log record)"

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
        severity: Severity = "critical" if record.levelno >= logging.CRITICAL else "error"
        # Formatted here, as logging's QueueHandler does: the arguments may change or not
        # be safe to read from another thread.
        message = cut(record.getMessage(), 10_000)
        log = {
            "logger": record.name,
            "level": record.levelname,
            "message": message,
            "location": f"{record.pathname}:{record.lineno} in {record.funcName}",
        }
        if exc is not None:
            self.alerting._capture(state, exc, {}, log=log, severity=severity)
            return
        labels, snapshot = request_context(
            {**state.labels, "logger": record.name, "exception": LOG_RECORD_EXCEPTION},
            cookie_values=state.config.show_cookie_values,
        )
        state.submit(
            log_alert_builder(
                record,
                log=log,
                labels=labels,
                request=snapshot,
                severity=severity,
                scrub_fields=state.config.scrub_fields,
            )
        )


def log_alert_builder(
    record: logging.LogRecord,
    *,
    log: dict[str, str],
    labels: dict[str, str],
    request: dict[str, Any] | None,
    severity: Severity,
    scrub_fields: tuple[str, ...] = (),
) -> Callable[[], Alert]:
    """A builder of the alert for a record without exception (see :class:`AlertingHandler`).

    Fingerprint: logger, file, line (+ endpoint), never the message text. The builder
    keeps copies, not the record (whose arguments may be anything).
    """
    fingerprint = make_fingerprint(
        "log", record.name, record.pathname, record.lineno, labels.get("endpoint")
    )
    timestamp = utcnow()
    logger_name = record.name
    stack = record.stack_info

    def build() -> Alert:
        scrubber = get_scrubber(scrub_fields)
        details: dict[str, Any] = {"log": scrubber.scrub(log)}
        if request:
            details["request"] = RequestDetails(request, scrubber)
        text = clean_text(log["message"])
        return Alert(
            kind="error",
            severity=severity,
            title=f"{logger_name}: {text[:1000]}",
            message=f"An error was logged in your Flask application:\n\n{text}",
            labels=labels,
            fingerprint=fingerprint,
            timestamp=timestamp,
            details=details,
            traceback=clean_text(stack) if stack else None,
        )

    return build
