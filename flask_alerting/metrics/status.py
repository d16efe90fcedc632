"""Who samples an app's metrics on this host, and whether the rule states shown are current.

A process that does not sample (another gunicorn worker, ``flask alerting status``) reads
the states that the sampling process recorded in the lock file (:mod:`.shared`). They are
current only when all of this holds:

- the process that recorded them is running: the same pid *and* start time (not a later
  process that got its pid), neither a zombie nor stopped (``SIGSTOP``, a debugger);
- some process holds the lock (a non-blocking test of a shared lock, see
  :meth:`.election.Election.held`, which never elects the caller);
- it sampled within the last :func:`stale_after` seconds (a probe hung, a frozen
  thread).

Otherwise every rule shows as ``"unknown"`` and :attr:`SamplingStatus.reason` says why,
so a stopped process's state is never presented as current.
"""

from __future__ import annotations

import os
from typing import Literal, NamedTuple

import psutil

from .rules import RuleStatus

#: The state of the process that samples, as far as this one can tell.
ProcessState = Literal["running", "stopped", "not running", "unknown"]

#: States are stale when the last sample is older than this many intervals...
STALE_INTERVALS = 3.0
#: ... plus this many seconds (a sample listing the top processes, a loaded host).
STALE_SLACK = 5.0
#: Process start times are compared with this tolerance (psutil derives them from clock
#: ticks).
START_TOLERANCE = 0.05


def stale_after(interval: float) -> float:
    """Seconds after which the last sample of a sampler sampling every ``interval``
    seconds no longer stands for the present."""
    return STALE_INTERVALS * interval + STALE_SLACK


_own_start: tuple[int, float | None] | None = None


def own_start_time() -> float | None:
    """When this process started (psutil's ``create_time()``; computed again after a
    fork). None when it cannot be told."""
    global _own_start
    pid = os.getpid()
    if _own_start is None or _own_start[0] != pid:
        try:
            started: float | None = round(float(psutil.Process(pid).create_time()), 3)
        except (psutil.Error, OSError):  # pragma: no cover - exotic platforms
            started = None
        _own_start = (pid, started)
    return _own_start[1]


def process_state(pid: int, started: float | None) -> ProcessState:
    """Whether process ``pid``, started at ``started`` (None: not known), still runs.

    A pid now used by a process that started at another time is "not running" (the one
    meant ended), and so is a zombie; a process stopped by a signal or a debugger is
    "stopped".
    """
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            created = proc.create_time()
            status = proc.status()
    except psutil.NoSuchProcess:  # ZombieProcess too
        return "not running"
    except (psutil.Error, OSError):
        return "unknown"
    if started is not None and abs(created - started) > START_TOLERANCE:
        return "not running"
    if status in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
        return "not running"
    if status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
        return "stopped"
    return "running"


class SamplingStatus(NamedTuple):
    """Who samples an app's metric rules on this host, and their states
    (:meth:`FlaskAlerting.sampling_status <flask_alerting.FlaskAlerting.sampling_status>`).
    """

    rules: list[RuleStatus]
    """Each rule's status; all ``"unknown"`` when :attr:`current` is False."""
    current: bool
    """The states are current (see :mod:`flask_alerting.metrics.status`)."""
    reason: str | None
    """Why they are not, completing "the sampling process ..." (``"is not running"``,
    ``"is stopped"``, ``"released the lock"``, ``"has not sampled since (every 5 s
    expected)"``), or ``"recorded no sample"`` when there is no record at all. None when
    current."""
    interval: float
    """Seconds between two samples of the sampling process (as it recorded them)."""
    pid: int | None
    """The process that samples, or last sampled (None: no sample recorded)."""
    process: ProcessState
    """The state of that process: ``"running"``, ``"stopped"``, ``"not running"``, or
    ``"unknown"`` (no pid, or one this user may not look at)."""
    this_process: bool
    """This process samples."""
    standing_by: bool
    """This process's sampler waits for the lock that another process holds."""
    lock_path: str | None
    """The lock file electing the sampling process (None: none, every process samples)."""
    lock_held: bool | None
    """Some process holds the lock (None: no lock file in use, or it cannot be told)."""
    last_sample_age: float | None
    """Seconds since the last sample (None: none recorded)."""


def judge(
    *,
    pid: int | None,
    process: ProcessState,
    lock_held: bool | None,
    last_sample_age: float | None,
    interval: float,
) -> str | None:
    """Why the states recorded by process ``pid`` are not current (None: they are)."""
    if pid is None or last_sample_age is None:
        return "recorded no sample"
    if process == "not running":
        return "is not running"
    if process == "stopped":
        return "is stopped"
    if lock_held is False:
        return "released the lock"
    if last_sample_age > stale_after(interval):
        return f"has not sampled since (every {interval:g} s expected)"
    return None
