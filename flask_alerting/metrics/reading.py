"""Reading the probes of metric rules: priming, failures, and the one-off check.

A probe is any callable returning a number; one that measures over a window (CPU
percent) also has a ``prime()`` that starts the window, so that its first reading is
real. The sampler primes such a probe and reads it one interval later (:func:`read`). A
probe that raises or returns NaN has failed: its rule's state does not move, and the
failure is logged at most every :data:`ERROR_LOG_INTERVAL` seconds
(:func:`log_failure`). :func:`check` reads every rule once, for ``flask alerting
check``, without touching any state.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import NamedTuple, Protocol

from .._text import describe_exception
from .rules import Rule

logger = logging.getLogger("flask_alerting")

#: Errors of one probe are logged again at most this often (seconds).
ERROR_LOG_INTERVAL = 600.0


class CheckResult(NamedTuple):
    """One rule sampled once by :meth:`Sampler.check`."""

    name: str
    value: float | None
    threshold: float
    breached: bool
    error: str | None = None


class Probed(Protocol):
    """What reading a rule's probe keeps on the rule's machine."""

    rule: Rule
    primed: bool
    """Its probe was primed (or has no ``prime()``)."""
    last_error_log: float | None
    """When its last failure was logged (the sampler's clock)."""


def prime(probe: object) -> bool:
    """Start the measurement window of a probe that has one (CPU percent): call its
    ``prime()``. False when it has none (its first reading needs no wait)."""
    prime = getattr(probe, "prime", None)
    if not callable(prime):
        return False
    prime()
    return True


def read(machine: Probed) -> float | Exception | None:
    """One reading of the probe of ``machine``'s rule: its value, or the exception that
    stands for none (NaN is one). None when the probe was only primed now: its first
    reading waits one interval."""
    probe = machine.rule.probe
    if not machine.primed:
        machine.primed = True
        try:
            has_window = prime(probe)
        except Exception as exc:
            return exc
        if has_window:
            return None  # its first reading needs one interval
    try:
        value = float(probe())
    except Exception as exc:
        return exc
    if math.isnan(value):
        return ValueError("the probe returned NaN")
    return value


def log_failure(machine: Probed, exc: BaseException, now: float) -> None:
    """Log a probe's failure (its machine knows of it already), at most every
    :data:`ERROR_LOG_INTERVAL` seconds."""
    if machine.last_error_log is None or now - machine.last_error_log >= ERROR_LOG_INTERVAL:
        machine.last_error_log = now
        logger.error(
            "flask-alerting: probe of metric rule %r failed: %s (logged again at most "
            "every %d s while it keeps failing)",
            machine.rule.name,
            describe_exception(exc),
            ERROR_LOG_INTERVAL,
            exc_info=exc,
        )


def check(rules: Iterable[Rule], window: float) -> list[CheckResult]:
    """Read every rule's probe once, now, without changing any state or sending anything.

    Probes that need a measurement window (CPU percent) are primed on the calling
    thread, then read after ``window`` seconds (one wait for all of them).
    """
    rules = list(rules)
    primed = False
    for rule in rules:
        try:
            primed = prime(rule.probe) or primed
        except Exception:  # the read below reports it
            pass
    if primed and window > 0:
        time.sleep(window)
    results = []
    for rule in rules:
        try:
            value = float(rule.probe())
        except Exception as exc:
            results.append(
                CheckResult(rule.name, None, rule.threshold, False, describe_exception(exc))
            )
            continue
        breached = value > rule.threshold
        results.append(CheckResult(rule.name, value, rule.threshold, breached))
    return results
