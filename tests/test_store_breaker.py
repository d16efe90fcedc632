"""The circuit breaker: closed -> open on failure -> half-open after a while -> closed."""

from __future__ import annotations

import pytest

from flask_alerting.store import BreakerOpen, CircuitBreaker, StoreError
from tests.conftest import FakeClock


def fail() -> None:
    raise StoreError("down")


def test_one_failure_opens_it_and_a_trial_closes_it(clock: FakeClock) -> None:
    breaker = CircuitBreaker(retry_after=30, clock=clock)
    assert breaker.state == "closed" and breaker.allow()
    assert breaker.call(lambda: 7) == 7
    with pytest.raises(StoreError):
        breaker.call(fail)
    assert breaker.state == "open" and isinstance(breaker.last_error, StoreError)
    with pytest.raises(BreakerOpen):
        breaker.call(lambda: 1)
    clock.advance(29.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.state == "half-open"
    assert breaker.call(lambda: 2) == 2
    assert breaker.state == "closed"


def test_a_failed_trial_opens_it_for_another_period(clock: FakeClock) -> None:
    breaker = CircuitBreaker(retry_after=10, clock=clock)
    assert breaker.failed(StoreError("x")) is True  # opened: log once
    clock.advance(10)
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    assert breaker.failed() is False  # still open: no second log line
    clock.advance(9)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()
    assert breaker.succeeded() is True  # back: log once
    assert breaker.succeeded() is False


def test_a_trial_that_never_reports_is_retried(clock: FakeClock) -> None:
    breaker = CircuitBreaker(retry_after=5, clock=clock)
    breaker.failed()
    clock.advance(5)
    assert breaker.allow()
    clock.advance(5)
    assert breaker.allow()


def test_it_can_wait_for_several_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failures=3, clock=clock)
    assert [breaker.failed() for _ in range(3)] == [False, False, True]
    assert breaker.state == "open"
    breaker = CircuitBreaker(failures=2, clock=clock)
    breaker.failed()
    breaker.succeeded()  # a success resets the streak
    assert breaker.failed() is False and breaker.state == "closed"


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failures=0)
    with pytest.raises(ValueError):
        CircuitBreaker(retry_after=-1)
