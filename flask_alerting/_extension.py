"""The Flask extension: configuration, per-app state, wiring of sources to the pipeline."""

from __future__ import annotations

import dataclasses
import functools
import logging
import logging.handlers
import socket
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

from flask import (
    Flask,
    after_this_request,
    current_app,
    has_app_context,
    has_request_context,
    request,
)
from flask.signals import got_request_exception
from werkzeug.exceptions import HTTPException, InternalServerError

from ._flask import hook_error_handler_lookup, propagates
from ._stack import call_with_headroom
from ._worker import Pipeline, guard
from .alert import Alert, PendingAlert, Severity, utcnow
from .capture import (
    current_exception,
    error_alert_builder,
    error_fingerprint,
    exception_name,
    is_captured,
    mark_captured,
    request_context,
)
from .config import Config, ConfigurationError, check_options, load_config, unknown_keys
from .dispatch import Clock
from .metrics.builtin import build_sampler, resolve_spec
from .metrics.rules import RuleSpec, RuleStatus, check_new_name
from .metrics.sampler import CheckResult, Sampler
from .notifiers._config import notifiers_from_config
from .notifiers.base import Notifier, as_notifier
from .notifiers.log import LEVELS, LogNotifier
from .notifiers.smtp import SMTPNotifier
from .render import log_line
from .timing import P, R, Timer, Timing, TimingStats, install_slow_requests

logger = logging.getLogger("flask_alerting")
_alerts_parent = logging.getLogger("flask_alerting.alerts")
# The alert log repeats what Flask already prints for errors: without logging
# configuration it stays quiet (no "last resort" stderr output) unless ALERTING_LOG_FILE
# or the application's own handlers ask for it. Delivery problems and the LogNotifier
# fallback use other loggers and remain visible.
_alerts_parent.addHandler(logging.NullHandler())

EXTENSION_KEY = "alerting"
LOG_FORMAT = "%(asctime)s:%(levelname)s:%(message)s"


@dataclasses.dataclass(eq=False)
class _State:
    """Everything flask-alerting keeps for one app (``app.extensions["alerting"]``).

    Nothing here refers to the app (only weakly): the app holds its state, never the
    other way round, so an app is freed as soon as its last reference goes.
    """

    extension: FlaskAlerting
    app_ref: weakref.ref[Flask]
    config: Config
    notifiers: tuple[Notifier, ...]
    labels: dict[str, str]
    pipeline: Pipeline
    alert_log: logging.Logger
    log_handler: logging.Handler | None = None
    sampler: Sampler = dataclasses.field(init=False)
    #: The only notifier is the LogNotifier used when none was configured.
    fallback: bool = False

    @property
    def app(self) -> Flask | None:
        """The app (None once it was freed)."""
        return self.app_ref()

    def submit(self, item: Alert | Callable[[], Alert | None]) -> None:
        self.pipeline.submit(item)

    def counts_only(self, fingerprint: str) -> bool:
        """Whether an already-logged occurrence of ``fingerprint`` would only be counted
        (into a digest, or into a flood summary), so its source may skip capturing details.

        Read on the source's thread without a lock: a membership test on the throttle's
        dict and a look at one float of the flood guard are atomic, and a window that
        closes meanwhile is handled by the dispatcher (see
        :meth:`~flask_alerting.dispatch.Dispatcher.dispatch_pending`).
        """
        if "submit" in self.__dict__:  # testing.record_alerts records every occurrence
            return False
        dispatcher = self.pipeline.dispatcher
        guard = dispatcher.guard
        return (
            dispatcher.throttle.suppresses(fingerprint)
            or (guard is not None and guard.folding())
        ) and dispatcher.counts_only()


def _build_smtp(config: Config, ssl_context: Any = None) -> SMTPNotifier:
    import ssl

    if ssl_context is None and config.smtp_ca_file:
        try:
            ssl_context = ssl.create_default_context(cafile=config.smtp_ca_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigurationError(
                "ALERTING_SMTP_CA_FILE", f"a readable PEM file of CA certificates ({exc})"
            ) from exc
    assert config.smtp_host is not None and config.mail_sender is not None
    return SMTPNotifier(
        config.smtp_host,
        config.smtp_port,
        security=config.smtp_security,
        username=config.smtp_username,
        password=config.smtp_password,
        sender=config.mail_sender,
        recipients=config.mail_recipients,
        timeout=config.smtp_timeout,
        ssl_context=ssl_context,
        subject_prefix=config.subject_prefix,
    )


class FlaskAlerting:
    """Alerts for a Flask app: errors, slow calls and host metrics, delivered off-request.

    ::

        alerting = FlaskAlerting(app)            # or FlaskAlerting() + init_app(app)

    :param app: initialise this app at once.
    :param notifiers: notifiers added to the SMTP notifier built from
        ``ALERTING_SMTP_*``; with neither, a :class:`LogNotifier` is used.
    :param clock: monotonic seconds (tests inject a fake one).
    :param retry_policy: backoff for transient delivery failures (default: 1 s doubling,
        capped at 60 s, for ``ALERTING_RETRY_SECONDS``).
    :param options: any configuration key in lower case without the ``ALERTING_`` prefix
        (``throttle_seconds=60``); these win over ``app.config``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        notifiers: Sequence[Notifier] | None = None,
        clock: Clock | None = None,
        retry_policy: Any = None,
        **options: Any,
    ) -> None:
        self._notifiers = tuple(as_notifier(n) for n in notifiers or ())
        self._clock = clock or time.monotonic
        self._retry_policy = retry_policy
        check_options(options)  # a typo fails here, not at a later init_app
        self._options = dict(options)
        self._apps: weakref.WeakSet[Flask] = weakref.WeakSet()
        self._warned: set[str] = set()
        # A weak reference: the extension and its Timing would otherwise form a cycle.
        this = weakref.ref(self)

        def resolve() -> _State | None:
            extension = this()
            return None if extension is None else extension._state_or_warn()

        self._timing = Timing(resolve)
        self._rule_specs: list[RuleSpec] = []
        if app is not None:
            self.init_app(app)

    # -- setup --------------------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        """Read and validate the configuration, register error capture, start nothing yet.

        :raises RuntimeError: when the app was already initialised.
        :raises ConfigurationError: naming the first bad configuration key.
        """
        from ._worker import Pipeline, RetryPolicy

        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "flask-alerting is already initialised on this app; call init_app once per app"
            )
        config = load_config(app.config, self._options, app_name=app.name, testing=app.testing)
        for key, suggestion in unknown_keys(app.config):
            logger.warning(
                "flask-alerting: unknown configuration key %s in app.config of app %r is "
                "ignored%s",
                key,
                app.name,
                f"; did you mean {suggestion}?" if suggestion else "",
            )
        notifiers: list[Notifier] = []
        if config.smtp_host:
            notifiers.append(_build_smtp(config))
        notifiers.extend(notifiers_from_config(config))
        notifiers.extend(self._notifiers)
        fallback = not notifiers
        if fallback:
            notifiers.append(LogNotifier())
            logger.warning(
                "flask-alerting: no ALERTING_SMTP_HOST and no notifiers for app %r; alerts "
                "will only be logged (logger 'flask_alerting.notify')",
                app.name,
            )
        retry = self._retry_policy or RetryPolicy(give_up_after=config.retry_seconds)
        labels = {"app": app.name, "host": socket.gethostname()}
        alert_log = _make_alert_log(app.name)
        handler = None
        if config.log_file:
            try:
                handler = logging.handlers.RotatingFileHandler(
                    config.log_file, maxBytes=10 * 1024 * 1024, backupCount=5, delay=True,
                    encoding="utf-8",
                )
            except OSError as exc:
                raise ConfigurationError("ALERTING_LOG_FILE", f"a writable path ({exc})") from exc
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            alert_log.addHandler(handler)

        def write_log(alert: Alert) -> None:
            alert_log.log(LEVELS[alert.severity], "%s", log_line(alert))

        # Alerts their source already logged (an unhandled request error that Flask's
        # log_exception records, a record turned into an alert by AlertingHandler) go to
        # the flask_alerting loggers' own handlers (ALERTING_LOG_FILE included) but not on
        # to the root logger, where that first record already is: no traceback twice in
        # the application's log.
        def logged_handlers() -> list[logging.Handler]:
            found: list[logging.Handler] = []
            current: logging.Logger | None = alert_log
            while current is not None and current is not logging.root:
                found += [h for h in current.handlers if not isinstance(h, logging.NullHandler)]
                if not current.propagate:
                    break
                current = current.parent
            return found

        def write_logged(alert: Alert) -> None:
            handlers = logged_handlers()
            if not handlers:
                return
            level = LEVELS[alert.severity]
            record = alert_log.makeRecord(
                alert_log.name, level, __file__, 0, "%s", (log_line(alert),), None
            )
            for found in handlers:
                if level >= found.level:
                    found.handle(record)

        pipeline = Pipeline(
            sender=app,
            name=app.name,
            notifiers=notifiers,
            queue_size=config.queue_size,
            throttle_seconds=config.throttle_seconds,
            retry=retry,
            log=write_log,
            log_logged=write_logged,
            wants_logged=lambda: bool(logged_handlers()),
            clock=self._clock,
            shutdown_timeout=config.shutdown_timeout,
            rate_limit=config.rate_limit,
            labels=labels,
        )
        state = _State(
            extension=self,
            app_ref=weakref.ref(app),
            config=config,
            notifiers=tuple(notifiers),
            labels=labels,
            pipeline=pipeline,
            alert_log=alert_log,
            log_handler=handler,
            fallback=fallback,
        )
        state.sampler = build_sampler(
            config, app_name=app.name, specs=self._rule_specs,
            submit=_submitter(state), labels=labels, clock=self._clock,
        )
        app.extensions[EXTENSION_KEY] = state
        self._apps.add(app)
        # When the app is freed, its threads deliver what it raised and end.
        weakref.finalize(
            app, _app_freed, pipeline, state.sampler, alert_log, handler
        ).atexit = False
        if config.enabled and config.metrics_enabled:
            # In the Werkzeug reloader's parent the sampler retires by itself.
            state.sampler.start()
        # `flask alerting ...` also comes through the flask.commands entry point; adding it
        # to app.cli makes it available to app.test_cli_runner() and custom CLI groups.
        from .cli import alerting_cli

        app.cli.add_command(alerting_cli)
        self._timing.add_app(config)
        if config.enabled:
            _install_capture()
            if config.slow_request_threshold is not None:
                install_slow_requests(app, state, config.slow_request_threshold)

    # -- state lookup -------------------------------------------------------------------

    def _get_state(self, app: Flask | None = None) -> _State:
        """The state of ``app`` (default: the current app, else the only initialised one).

        :raises RuntimeError: with advice when there is none.
        """
        if app is None:
            if has_app_context():
                app = current_app._get_current_object()  # type: ignore[attr-defined]
            else:
                apps = list(self._apps)
                if len(apps) != 1:
                    raise RuntimeError(
                        "flask-alerting: no app context and "
                        + ("no app initialised" if not apps else f"{len(apps)} apps initialised")
                        + "; use 'with app.app_context():' or call init_app(app)"
                    )
                app = apps[0]
        assert app is not None
        state = app.extensions.get(EXTENSION_KEY)
        if not isinstance(state, _State) or state.extension is not self:
            raise RuntimeError(
                f"flask-alerting is not initialised on app {app.name!r}: did you call "
                "alerting.init_app(app)?"
            )
        return state

    def _state_or_warn(self) -> _State | None:
        """Like :meth:`_get_state`, but logs a warning (once) instead of raising.

        Used by everything that runs inside the user's code: alerting never raises there.
        """
        try:
            return self._get_state()
        except RuntimeError as exc:
            message = str(exc)
            if message not in self._warned:
                self._warned.add(message)
                logger.warning("%s (this alert is not sent)", message)
            return None

    # -- sources ------------------------------------------------------------------------

    def alert(
        self,
        title: str,
        message: str = "",
        *,
        severity: Severity = "warning",
        labels: Mapping[str, str] | None = None,
        fingerprint: str = "",
        value: float | None = None,
        threshold: float | None = None,
    ) -> None:
        """Raise a custom alert (kind ``"custom"``). Never raises; never blocks.

        :param title: one line (line breaks become spaces).
        :param message: the body.
        :param severity: ``"info"``, ``"warning"``, ``"error"`` or ``"critical"``.
        :param labels: extra labels, added to ``app`` and ``host``.
        :param fingerprint: grouping key for the throttle; default from title and labels.
        """
        try:
            call_with_headroom(
                self._alert, title, message, severity, labels, fingerprint, value, threshold
            )
        except RecursionError:  # not even room for that call (see _stack)
            pass

    def _alert(
        self,
        title: str,
        message: str,
        severity: Severity,
        labels: Mapping[str, str] | None,
        fingerprint: str,
        value: float | None,
        threshold: float | None,
    ) -> None:
        state = self._state_or_warn()
        if state is None or not state.config.enabled:
            return
        try:
            alert = Alert(
                kind="custom",
                severity=severity,
                title=title,
                message=message,
                labels={**state.labels, **(labels or {})},
                fingerprint=fingerprint,
                value=value,
                threshold=threshold,
            )
        except (TypeError, ValueError) as exc:
            logger.warning("flask-alerting: invalid alert %r not sent: %s", title, exc)
            return
        with guard("raising an alert"):
            state.submit(alert)

    def capture_exception(self, exc: BaseException | None = None, **extra: Any) -> None:
        """Alert about ``exc`` (default: the exception being handled).

        For ``try``/``except`` blocks and background jobs; inside a request the alert
        carries the request context. Keyword arguments are added to the alert's details.
        An exception already alerted is not alerted again. Never raises, also when called a
        few frames below the recursion limit (the work then runs on a fresh stack).
        """
        try:
            if exc is None:
                exc = current_exception()
            call_with_headroom(self._capture_exception, exc, extra)
        except RecursionError:  # not even room for these calls (see _stack)
            pass

    def _capture_exception(self, exc: BaseException | None, extra: Mapping[str, Any]) -> None:
        if exc is None:
            logger.warning("flask-alerting: capture_exception() called with no exception")
            return
        state = self._state_or_warn()
        if state is None or not state.config.enabled:
            return
        self._capture(state, exc, extra)

    def _capture(
        self,
        state: _State,
        exc: BaseException,
        extra: Mapping[str, Any],
        *,
        log: Mapping[str, Any] | None = None,
        severity: Severity = "error",
        logged: bool = False,
    ) -> None:
        """Alert about ``exc`` once. On the caller's thread: copies only (see
        :func:`~flask_alerting.capture.error_alert_builder`); never raises."""
        if not mark_captured(exc):
            return
        with guard("capturing an exception"):
            logged = logged or log is not None
            in_request = has_request_context()
            endpoint = request.endpoint if in_request else None
            fingerprint = error_fingerprint(exc, endpoint)
            if logged and state.counts_only(fingerprint):
                # A storm: this occurrence only adds to a digest's (or a flood
                # summary's) count.
                title = exception_name(exc) + (f" in {endpoint}" if endpoint else "")
                state.submit(PendingAlert(None, fingerprint, utcnow(), logged=True, title=title))
                return
            labels, snapshot = request_context(
                state.labels, cookie_values=state.config.show_cookie_values
            )
            state.submit(
                error_alert_builder(
                    exc,
                    labels=labels,
                    request=snapshot,
                    extra=extra,
                    log=log,
                    severity=severity,
                    scrub_fields=state.config.scrub_fields,
                    logged=logged,
                    fingerprint=fingerprint,
                )
            )

    # -- slow calls ---------------------------------------------------------------------

    @overload
    def timed(self, func: Callable[P, R], /) -> Callable[P, R]: ...

    @overload
    def timed(
        self, func: None = None, /, *, threshold: float | None = None, name: str | None = None
    ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...

    def timed(
        self,
        func: Callable[P, R] | None = None,
        /,
        *,
        threshold: float | None = None,
        name: str | None = None,
    ) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
        """Alert when a call takes longer than ``threshold`` seconds.

        ::

            @alerting.timed
            def load(): ...

            @alerting.timed(threshold=0.5, name="prediction_from_model")
            async def predict(): ...

        For functions, methods and ``async def`` coroutines. The wrapper keeps the name,
        docstring and signature, returns the result and re-raises exceptions unchanged (a
        raising call is timed too). A slow call raises a ``"timing"`` alert (severity
        warning, labels ``function`` and ``endpoint`` inside a request), throttled per
        function. A fast call costs two clock reads, a few stores and a compare.

        :param threshold: seconds; default ``ALERTING_SLOW_THRESHOLD`` of the app the call
            runs in, looked up at call time (decorating before ``init_app`` works).
        :param name: the ``function`` label and statistics name; default the function's
            ``__qualname__``.
        """
        if func is None:
            return lambda f: self._timing.wrap(f, threshold=threshold, name=name)
        return self._timing.wrap(func, threshold=threshold, name=name)

    def timer(self, name: str, threshold: float | None = None) -> Timer:
        """Time a block: ``with alerting.timer("load-model", threshold=1.0): ...``.

        Alerts like :meth:`timed` (label ``function`` = ``name``). Make one per block:
        each is independent, so timers nest and run in several threads at once. The
        timer's ``duration`` holds the seconds the block took.

        :param threshold: seconds; default ``ALERTING_SLOW_THRESHOLD``, at exit.
        """
        return self._timing.timer(name, threshold)

    def timing_stats(self) -> dict[str, TimingStats]:
        """Per timed name (all apps of this extension): ``count`` and ``slow`` since the
        start, ``mean``, ``max`` and ``p95`` in seconds over the recent calls (``window``).
        """
        return self._timing.stats()

    # -- metric rules -------------------------------------------------------------------

    def add_rule(
        self,
        name: str,
        probe: Callable[[], float],
        threshold: float = 100.0,
        for_: float | None = None,
        hysteresis: float | None = None,
        severity: Severity = "warning",
        *,
        repeat_seconds: float | None = None,
        display_name: str | None = None,
        unit: str = "",
    ) -> None:
        """Watch ``probe()`` with the metrics sampler; alert when it stays above ``threshold``.

        ::

            alerting.add_rule("queue-depth", lambda: redis.llen("jobs"), threshold=100)

        The rule fires (kind ``"metric"``, label ``metric`` = ``name``) when the value has
        been above ``threshold`` for ``for_`` seconds, reminds every ``repeat_seconds``
        and resolves below ``threshold - hysteresis``. None means the app's
        ``ALERTING_METRICS_FOR`` / ``_REPEAT_SECONDS``, and for ``hysteresis``
        ``ALERTING_METRICS_HYSTERESIS`` percent of the threshold (at most half of it); an
        explicit hysteresis must be smaller than a threshold > 0. Applies to every
        app of this extension, including those initialised later. A probe that raises is
        logged and skipped; the probe runs on the sampler thread of one process per host.
        ``display_name`` names the value in the e-mails (default ``name``) and ``unit``
        follows it there (``"jobs"``: "Current Value: 150.0 jobs").

        :raises ValueError: for a duplicate name or an invalid number.
        """
        spec = RuleSpec(
            name=name,
            probe=probe,
            threshold=threshold,
            for_=for_,
            hysteresis=hysteresis,
            repeat_seconds=repeat_seconds,
            severity=severity,
            display_name=display_name or "",
            unit=unit,
        )
        states = [a.extensions[EXTENSION_KEY] for a in list(self._apps)]
        # every app first: all or nothing
        check_new_name(name, [*self._rule_specs, *(r for s in states for r in s.sampler.rules)])
        self._rule_specs.append(spec)
        for state in states:
            state.sampler.add(resolve_spec(spec, state.config))

    def rule_states(self, app: Flask | None = None) -> list[RuleStatus]:
        """Every metric rule with its state (``ok``/``pending``/``firing``) and last value.

        In a process that does not sample (another gunicorn worker, the CLI), the states
        are those the sampling process of this host last recorded.
        """
        return self._get_state(app).sampler.status()

    def check(self, app: Flask | None = None, *, window: float = 0.5) -> list[CheckResult]:
        """Sample every rule once now: ``(name, value, threshold, breached, error)`` each.

        Changes no state and sends nothing. CPU percent is measured over ``window``
        seconds (this call blocks that long; it is meant for the CLI and health checks).
        """
        return self._get_state(app).sampler.check(window)

    # -- delivery control ---------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every alert raised so far was delivered (or given up).

        Inside an app context, flushes that app; outside, every app. True when nothing is
        left undelivered before ``timeout`` seconds.
        """
        if has_app_context():
            state = self._state_or_warn()
            states = [state] if state is not None else []
        else:
            states = [a.extensions[EXTENSION_KEY] for a in list(self._apps)]
        deadline = time.monotonic() + timeout
        ok = True
        for state in states:
            ok = state.pipeline.flush(max(0.0, deadline - time.monotonic())) and ok
        return ok

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush, emit pending digests, stop the threads and close the notifiers.

        Applies to every app initialised with this extension. Also runs at interpreter
        exit (bounded by ``ALERTING_SHUTDOWN_TIMEOUT``). True when nothing was lost.
        """
        ok = True
        for app in list(self._apps):
            state: _State = app.extensions[EXTENSION_KEY]
            if state.sampler is not None:
                state.sampler.stop()
            ok = state.pipeline.shutdown(timeout) and ok
            if state.log_handler is not None:
                state.alert_log.removeHandler(state.log_handler)
                state.log_handler.close()
        return ok

    def stats(self, app: Flask | None = None) -> dict[str, Any]:
        """Counters of the delivery pipeline (raised, suppressed, digests, dropped, queues)."""
        stats: dict[str, Any] = self._get_state(app).pipeline.stats()
        return stats


def _submitter(state: _State) -> Callable[[Alert], None]:
    """``state.submit`` for the metrics sampler: looked up per alert (``record_alerts()``
    replaces it) through a weak reference (the sampler belongs to the state)."""
    ref = weakref.ref(state)

    def submit(alert: Alert) -> None:
        found = ref()
        if found is not None:
            found.submit(alert)

    return submit


def _app_freed(
    pipeline: Pipeline, sampler: Any, alert_log: logging.Logger, handler: logging.Handler | None
) -> None:
    """An app was freed: its sampler stops, its pipeline delivers what it raised and
    ends its threads, then its log file is closed. Never waits."""
    with guard("stopping the metrics sampler of a freed app"):
        if sampler is not None:
            sampler.close_soon()

    def close_log() -> None:
        if handler is not None:
            alert_log.removeHandler(handler)
            handler.close()

    with guard("retiring the pipeline of a freed app"):
        pipeline.retire(then=close_log)


# -- request wiring ---------------------------------------------------------------------------
#
# Module-level functions, connected once for every app and looking the state up in
# ``app.extensions``: no closure or signal connection ever holds an app. None of them
# stands in the call stack of the application's code, so no traceback ever shows a frame
# of flask-alerting.

_capture_installed = False


def _install_capture() -> None:
    global _capture_installed
    if _capture_installed:
        return
    # A module-level function: a strong connection keeps nothing alive.
    got_request_exception.connect(_on_request_exception, weak=False)
    hook_error_handler_lookup(_on_error_handler_lookup)
    _capture_installed = True


def _enabled_state(app: Any) -> _State | None:
    extensions = getattr(app, "extensions", None)
    state = extensions.get(EXTENSION_KEY) if isinstance(extensions, dict) else None
    if isinstance(state, _State) and state.config.enabled:
        return state
    return None


def _on_request_exception(sender: Any, exception: BaseException, **_: Any) -> None:
    """``got_request_exception``: an exception no handler of the app turned into a
    response. Flask logs it right after this signal, unless it propagates it."""
    state = _enabled_state(sender)
    if state is None:
        return
    if isinstance(exception, HTTPException) and (exception.code or 500) < 500:
        return
    with guard("capturing an exception"):
        state.extension._capture(state, exception, {}, logged=not propagates(sender))
        # An error handler that raised: the exception it was handling is part of this
        # one's traceback ("During handling of the above exception ..."), not a second
        # alert (see _on_error_handler_lookup).
        seen = {id(exception)}
        inner = exception.__context__
        while inner is not None and id(inner) not in seen:
            seen.add(id(inner))
            mark_captured(inner)
            inner = inner.__context__


def _on_error_handler_lookup(app: Flask, exc: BaseException, handler: Any) -> Any:
    """Flask looks up the error handler of ``exc`` (inside its ``except`` block).

    An exception that the app's own handler (or, for an ``HTTPException``, Flask itself)
    turns into a response is noted, and alerted once the response is known to be a 5xx.
    For the ``InternalServerError`` of an unhandled exception, when the app has no handler
    for it (nor for a base class) and ``ALERTING_ERROR_RESPONSE`` is set, the notice is
    the handler; an explicit ``abort(500, description=...)`` or ``InternalServerError(
    response=...)`` keeps its own. Returns ``handler`` otherwise.
    """
    state = _enabled_state(app)
    if state is None:
        return handler
    try:
        server_error: BaseException | None = None
        if isinstance(exc, HTTPException):
            if (exc.code or 500) < 500:
                return handler
            original = getattr(exc, "original_exception", None)
            if original is None or not is_captured(original):
                server_error = exc
            body = state.config.error_response
            if (
                handler is None
                and body is not None
                and isinstance(exc, InternalServerError)
                and exc.response is None
                and exc.description == type(exc).description
            ):
                handler = functools.partial(_notice, body)
        elif handler is not None:
            # Without a handler, Flask re-raises it: got_request_exception reports it.
            server_error = exc
        if server_error is not None and has_request_context():
            after_this_request(_AlertIfServerError(server_error))
    except Exception:
        logger.exception("flask-alerting: internal error while looking at an error handler")
    return handler


class _AlertIfServerError:
    """``after_this_request`` of a handled exception: alert when it answered with a 5xx.

    Lets go of the exception once called: the request context holds this object, and
    the exception's traceback holds the frames that hold the request context, a cycle
    that would keep the app alive until the garbage collector runs.
    """

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc: BaseException | None = exc

    def __call__(self, response: Any) -> Any:
        exc, self.exc = self.exc, None
        with guard("capturing a handled exception"):
            if exc is not None and response.status_code >= 500 and not is_captured(exc):
                state = _enabled_state(current_app)
                if state is not None:
                    state.extension._capture(state, exc, {})
        return response


def _notice(body: str, e: InternalServerError) -> Any:
    """The 500 response with ``ALERTING_ERROR_RESPONSE`` (see _on_error_handler_lookup)."""
    try:
        wants_json = _wants_json()
    except Exception:  # a malformed header: the text is fine
        wants_json = False
    if wants_json:
        return {"error": body}, 500
    return body, 500, {"Content-Type": "text/plain; charset=utf-8"}


def _make_alert_log(app_name: str) -> logging.Logger:
    """A logger of this app's alerts, outside the logging manager (one per state).

    Its parent is ``flask_alerting.alerts``, so ordinary logging configuration applies.
    """
    log = logging.Logger(f"flask_alerting.alerts.{app_name}", logging.DEBUG)
    log.parent = _alerts_parent
    return log


def _wants_json() -> bool:
    # Raw environ first: parsing Content-Type and Accept costs more than the rest of the
    # 500 response, and most requests name JSON in neither.
    environ = request.environ
    if "json" in environ.get("CONTENT_TYPE", "") and request.is_json:
        return True
    if "json" not in environ.get("HTTP_ACCEPT", ""):
        return False
    # On a tie (*/*, or no Accept header) the first entry, HTML, wins.
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"
