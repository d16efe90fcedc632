"""A small circuit breaker: stop asking a failing store, ask again later.

Closed (the store is used) -> open after ``failures`` consecutive failures (the caller uses
its per-process fallback) -> half-open after ``retry_after`` seconds on the injected clock
(one trial call goes through) -> closed again on success, open again on failure.
:meth:`CircuitBreaker.failed` and :meth:`CircuitBreaker.succeeded` say when the state
flipped, so the caller logs once when it leaves the store and once when it comes back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal, TypeVar

from .errors import StoreError

R = TypeVar("R")
State = Literal["closed", "open", "half-open"]


class BreakerOpen(StoreError):
    """Raised by :meth:`CircuitBreaker.call` while the breaker is open: not tried."""


class CircuitBreaker:
    """See the module docstring.

    :param retry_after: seconds between trials while open.
    :param failures: consecutive failures that open it (default 1: the first one).
    :param clock: monotonic seconds (injected in tests).
    """

    def __init__(
        self,
        *,
        retry_after: float = 30.0,
        failures: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if retry_after < 0 or failures < 1:
            raise ValueError("retry_after must be >= 0 and failures >= 1")
        self.retry_after = retry_after
        self.failures = failures
        self.clock = clock
        self._lock = threading.Lock()
        self._state: State = "closed"
        self._failed = 0
        self._opened_at = 0.0
        self._trial_at: float | None = None
        #: The last failure that opened the breaker (for status displays).
        self.last_error: BaseException | None = None

    @property
    def state(self) -> State:
        """``"closed"``, ``"open"`` or ``"half-open"`` (a trial is allowed or running)."""
        with self._lock:
            if self._state == "open" and self.clock() >= self._opened_at + self.retry_after:
                return "half-open"
            return self._state

    def allow(self) -> bool:
        """Whether to try the store now. While open, True once per ``retry_after``."""
        with self._lock:
            if self._state == "closed":
                return True
            now = self.clock()
            since = self._opened_at if self._trial_at is None else self._trial_at
            if now >= since + self.retry_after:
                self._state = "half-open"
                self._trial_at = now
                return True
            return False

    def succeeded(self) -> bool:
        """Report a successful call; True when this closed an open breaker."""
        with self._lock:
            reopened = self._state != "closed"
            self._state, self._failed, self._trial_at = "closed", 0, None
            return reopened

    def failed(self, error: BaseException | None = None) -> bool:
        """Report a failed call; True when this opened a closed breaker."""
        with self._lock:
            self._failed += 1
            if self._state == "closed" and self._failed < self.failures:
                return False
            opened = self._state == "closed"
            self._state, self._opened_at, self._trial_at = "open", self.clock(), None
            if opened:
                self.last_error = error
            return opened

    def call(self, operation: Callable[[], R]) -> R:
        """Run ``operation`` through the breaker: :class:`BreakerOpen` when not allowed;
        its StoreError is reported and raised again."""
        if not self.allow():
            raise BreakerOpen("the store is not used for now (it failed recently)")
        try:
            result = operation()
        except StoreError as exc:
            self.failed(exc)
            raise
        self.succeeded()
        return result
