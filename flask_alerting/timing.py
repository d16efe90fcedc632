"""Slow-call monitoring: ``timed`` functions and ``timer`` blocks (slow requests:
:mod:`.slow_requests`).

The hot path is a timed call that is fast. It reads the clock twice, counts the call in a
per-name :class:`~.timing_stats.Recorder` (one attribute store and one list store: no
lock, no app context lookup, no formatting, no object made beyond the numbers of the
arithmetic) and compares the duration with one float. Only a call over that float takes
the slow path: find the app, compare with its exact threshold, and hand a builder to the
dispatch thread, which formats the alert, logs, throttles and sends it. Durations are
clamped at >= 0 when statistics are read, not on the hot path (a negative one never
passes a bound >= 0).

The float is the explicit ``threshold=`` of the wrapper, or for wrappers that use the
default, the lowest ``ALERTING_SLOW_THRESHOLD`` of the apps initialised so far (2.0 before
any ``init_app``), kept up to date by :meth:`Timing.add_app`. So decorating at import time,
before ``init_app``, works: the default is resolved when the call runs.

Statistics are written without a lock (:mod:`.timing_stats` says what that costs).
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, ParamSpec, Protocol, TypeVar

from flask import has_request_context, request

from . import _lifecycle
from ._lifecycle import guard
from .alert import Alert, make_fingerprint, utcnow
from .config import KEYS, Config
from .render import fmt_seconds
from .timing_stats import Recorder, TimingStats

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("flask_alerting")

#: The clock of ``timed``, ``timer`` and slow requests (seconds, monotonic). Tests replace
#: this module attribute to make durations exact.
perf_counter: Callable[[], float] = time.perf_counter

#: Names whose statistics are kept; past that, calls of new names are still timed and
#: alerted, but get no statistics (a warning says so once).
MAX_NAMES = 1000

_DEFAULT_THRESHOLD: float = KEYS["slow_threshold"].default


class StateLike(Protocol):
    """What the slow path needs of the extension's per-app state."""

    config: Config
    labels: dict[str, str]

    def submit(self, item: Alert | Callable[[], Alert | None]) -> None: ...


class _Bound:
    """The float a duration is compared with on the hot path."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value


def qualified_name(func: Callable[..., Any]) -> str:
    """The name a timed function is known by: its ``__qualname__`` (PEP 3155)."""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    return str(name) if name else type(func).__qualname__


class Timing:
    """The timing part of one :class:`~flask_alerting.FlaskAlerting`.

    :param resolve: returns the state of the current app (else the only one), or None
        after logging why (``FlaskAlerting._state_or_warn``).
    """

    def __init__(self, resolve: Callable[[], StateLike | None]) -> None:
        self._resolve = resolve
        self.default = _Bound(_DEFAULT_THRESHOLD)
        self._apps = 0
        self._recorders: dict[str, Recorder] = {}
        self._lock = threading.Lock()
        self._full_warned = False
        _timings.add(self)

    def _after_fork(self) -> None:
        # A fork while another thread held the lock (registering a new name) copies it
        # locked into the child, where no thread would ever release it.
        self._lock = threading.Lock()

    # -- setup ----------------------------------------------------------------------------

    def add_app(self, config: Config) -> None:
        """An app was initialised: default-threshold calls over its threshold go slow."""
        with self._lock:
            if self._apps == 0:
                self.default.value = config.slow_threshold
            else:
                self.default.value = min(self.default.value, config.slow_threshold)
            self._apps += 1

    def recorder(self, name: str) -> Recorder:
        """The recorder of ``name`` (a detached one once :data:`MAX_NAMES` is reached)."""
        rec = self._recorders.get(name)
        if rec is not None:
            return rec
        with self._lock:
            rec = self._recorders.get(name)
            if rec is not None:
                return rec
            rec = Recorder(name)
            if len(self._recorders) < MAX_NAMES:
                self._recorders[name] = rec
            elif not self._full_warned:
                self._full_warned = True
                logger.warning(
                    "flask-alerting: statistics are kept for %d timed names at most; %r and "
                    "later new names are timed and alerted but get no statistics",
                    MAX_NAMES,
                    name,
                )
        return rec

    def stats(self) -> dict[str, TimingStats]:
        """Name -> :class:`TimingStats`, for every name timed so far."""
        return {name: rec.snapshot() for name, rec in list(self._recorders.items())}

    # -- timed ----------------------------------------------------------------------------

    def wrap(
        self, func: Callable[P, R], *, threshold: float | None, name: str | None
    ) -> Callable[P, R]:
        """``func`` timed: same name, docstring, signature, result and exceptions."""
        if isinstance(func, (staticmethod, classmethod)):
            inner = self.wrap(func.__func__, threshold=threshold, name=name)
            return type(func)(inner)
        if not callable(func):
            raise TypeError(f"timed() needs a function, got {func!r}")
        threshold = _check_threshold(threshold)
        rec = self.recorder(name if name is not None else qualified_name(func))
        bound = self.default if threshold is None else _Bound(threshold)
        ring = rec.ring
        mask = rec.mask
        slow = self.slow

        # The two wrappers are the hot path: keep them short and identical.
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                start = perf_counter()
                try:
                    return await func(*args, **kwargs)
                finally:
                    duration = perf_counter() - start
                    rec.count = n = rec.count + 1
                    ring[n & mask] = duration
                    if duration > bound.value:
                        slow(rec, threshold, duration)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            start = perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                duration = perf_counter() - start
                rec.count = n = rec.count + 1
                ring[n & mask] = duration
                if duration > bound.value:
                    slow(rec, threshold, duration)

        return wrapper

    def timer(self, name: str, threshold: float | None) -> Timer:
        """A fresh :class:`Timer` for one use."""
        threshold = _check_threshold(threshold)
        rec = self.recorder(str(name))
        bound = self.default if threshold is None else _Bound(threshold)
        return Timer(self, rec, bound, threshold)

    # -- slow path ------------------------------------------------------------------------

    def slow(self, rec: Recorder, threshold: float | None, duration: float) -> None:
        """A call took longer than its hot-path bound: alert if it is over its threshold.

        :param threshold: the explicit threshold, or None for the app's default.
        """
        with guard("timing a slow call"):
            state = self._resolve()
            if state is None:
                return
            limit = state.config.slow_threshold if threshold is None else threshold
            if not duration > limit:
                return
            rec.slow += 1
            if not state.config.enabled:
                return
            labels = {**state.labels, "function": rec.name}
            if has_request_context() and request.endpoint:
                labels["endpoint"] = request.endpoint
            state.submit(
                timing_alert_builder(rec.name, duration, limit, labels=labels, timestamp=utcnow())
            )


class Timer:
    """Times a ``with`` block (see :meth:`FlaskAlerting.timer`).

    Make one per block (``with alerting.timer("x"):``): each is independent, so timers
    can nest and run in many threads at once. Re-entering the same object also works
    (its starts are stacked), but one object must not be shared between threads.

    Also a decorator: ``@alerting.timer("name")`` is ``@alerting.timed(name="name")``.

    :ivar duration: seconds the last block took (None until one ends).
    """

    __slots__ = ("_timing", "_rec", "_bound", "_threshold", "_starts", "duration")

    def __init__(
        self, timing: Timing, rec: Recorder, bound: _Bound, threshold: float | None
    ) -> None:
        self._timing = timing
        self._rec = rec
        self._bound = bound
        self._threshold = threshold
        self._starts: list[float] = []
        self.duration: float | None = None

    def __enter__(self) -> Timer:
        self._starts.append(perf_counter())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        duration = perf_counter() - self._starts.pop()
        if duration < 0.0:
            duration = 0.0
        self.duration = duration
        rec = self._rec
        rec.count = n = rec.count + 1
        rec.ring[n & rec.mask] = duration
        if duration > self._bound.value:
            self._timing.slow(rec, self._threshold, duration)
        return False

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        return self._timing.wrap(func, threshold=self._threshold, name=self._rec.name)


_timings: weakref.WeakSet[Timing] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for timing in list(_timings):
        timing._after_fork()


_lifecycle.after_fork("timing", _after_fork_in_child)


def _check_threshold(threshold: float | None) -> float | None:
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold must be a number of seconds, got {threshold!r}")
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite number of seconds >= 0, got {threshold!r}")
    return float(threshold)


# -- alerts ---------------------------------------------------------------------------------


def took(what: str, duration: float, threshold: float) -> str:
    """``predict took 2.20 s (threshold 2.00 s)``."""
    return f"{what} took {fmt_seconds(duration)} (threshold {fmt_seconds(threshold)})"


def timing_alert_builder(
    name: str,
    duration: float,
    threshold: float,
    *,
    labels: Mapping[str, str],
    timestamp: datetime,
) -> Callable[[], Alert]:
    """A builder (run on the dispatch thread) of the alert for one slow call of ``name``."""

    def build() -> Alert:
        return Alert(
            kind="timing",
            severity="warning",
            title=took(name, duration, threshold),
            message=took(name, duration, threshold) + ".",
            labels=labels,
            fingerprint=make_fingerprint("timing", name),
            value=duration,
            threshold=threshold,
            timestamp=timestamp,
        )

    return build
