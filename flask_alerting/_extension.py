"""The Flask extension: :class:`FlaskAlerting`, the public face of every part.

``init_app`` reads the configuration and builds the app's state (:mod:`._state`), starts
the metrics sampler and connects the request capture (:mod:`._wiring`); the methods find
the state of the current app and hand alerts to its pipeline.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

from flask import Flask, current_app, has_app_context

from . import capture
from ._lifecycle import guard, install_process_hooks
from ._stack import call_with_headroom
from ._state import EXTENSION_KEY, State, create_state, get_state
from ._wiring import install_capture
from .alert import Alert, Severity
from .cli import alerting_cli
from .config import check_options, load_config, unknown_keys
from .delivery import RetryPolicy
from .dispatch import Clock
from .metrics.builtin import resolve_spec
from .metrics.machine import RuleStatus
from .metrics.reading import CheckResult
from .metrics.rules import RuleSpec, check_new_name
from .metrics.status import SamplingStatus
from .notifiers.base import Notifier, as_notifier
from .slow_requests import install_slow_requests
from .timing import P, R, Timer, Timing
from .timing_stats import TimingStats

logger = logging.getLogger("flask_alerting")


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
        retry_policy: RetryPolicy | None = None,
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

        def resolve() -> State | None:
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
        state = create_state(
            app,
            config,
            extension=self,
            notifiers=self._notifiers,
            specs=self._rule_specs,
            clock=self._clock,
            retry_policy=self._retry_policy,
        )
        app.extensions[EXTENSION_KEY] = state
        self._apps.add(app)
        if config.enabled and config.metrics_enabled:
            # In the Werkzeug reloader's parent the sampler retires by itself.
            state.sampler.start()
        if config.enabled and state.pipeline.outbox is not None:
            # A shared store: deliver, within seconds, what ended processes left in its
            # outbox, whether or not this process ever raises anything itself.
            state.pipeline.start()
        # `flask alerting ...` also comes through the flask.commands entry point; adding it
        # to app.cli makes it available to app.test_cli_runner() and custom CLI groups.
        app.cli.add_command(alerting_cli)
        self._timing.add_app(config)
        if config.enabled:
            # Pending alerts leave when the process ends by SIGTERM or as a
            # multiprocessing child, not only at the interpreter's exit.
            install_process_hooks()
            install_capture()
            if config.slow_request_threshold is not None:
                install_slow_requests(app, state, config.slow_request_threshold)

    # -- state lookup -------------------------------------------------------------------

    def _get_state(self, app: Flask | None = None) -> State:
        """The state of ``app`` (default: the current app, else the only initialised one).

        :raises RuntimeError: with advice when there is none.
        """
        if app is None:
            if has_app_context():
                app = current_app
            else:
                apps = list(self._apps)
                if len(apps) != 1:
                    raise RuntimeError(
                        "flask-alerting: no app context and "
                        + ("no app initialised" if not apps else f"{len(apps)} apps initialised")
                        + "; use 'with app.app_context():' or call init_app(app)"
                    )
                app = apps[0]
        return get_state(app, self)

    def _states(self) -> list[State]:
        """The states of every app of this extension still alive."""
        return [get_state(app, self) for app in list(self._apps)]

    def _state_or_warn(self) -> State | None:
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
                exc = capture.current_exception()
            call_with_headroom(capture.capture_exception, self._state_or_warn, exc, extra)
        except RecursionError:  # not even room for these calls (see _stack)
            pass

    def _capture(
        self,
        state: State,
        exc: BaseException,
        extra: Mapping[str, Any],
        *,
        log: Mapping[str, Any] | None = None,
        severity: Severity = "error",
        logged: bool = False,
    ) -> None:
        """Alert about ``exc`` once (see :func:`~flask_alerting.capture.capture_error`)."""
        capture.capture_error(state, exc, extra, log=log, severity=severity, logged=logged)

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
        states = self._states()
        # every app first: all or nothing
        check_new_name(name, [*self._rule_specs, *(r for s in states for r in s.sampler.rules)])
        self._rule_specs.append(spec)
        for state in states:
            state.sampler.add(resolve_spec(spec, state.config))

    def rule_states(self, app: Flask | None = None) -> list[RuleStatus]:
        """Every metric rule with its state (``ok``/``pending``/``firing``) and last value.

        In a process that does not sample (another gunicorn worker, the CLI), the states
        are those the sampling process of this host last recorded. A state that is not
        current (that process stopped, or has not sampled for a few intervals; the rule
        was never sampled) is ``"unknown"``, with ``current`` False and a ``note``
        saying why.
        """
        return self._get_state(app).sampler.status()

    def sampling_status(self, app: Flask | None = None) -> SamplingStatus:
        """Which process of this host samples the metric rules, whether it is running,
        when it last sampled, whether the states are current, and the rules' states
        (:class:`~flask_alerting.metrics.SamplingStatus`)."""
        return self._get_state(app).sampler.sampling()

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
            states = self._states()
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
        for state in self._states():
            ok = state.shutdown(timeout) and ok
        return ok

    def stats(self, app: Flask | None = None) -> dict[str, Any]:
        """Counters of the delivery pipeline (raised, suppressed, digests, dropped, queues)."""
        stats: dict[str, Any] = self._get_state(app).pipeline.stats()
        return stats
