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
so a stopped process's state is never presented as current. The sampling process itself
shows its own states (:func:`own_status`), the others what it recorded
(:func:`recorded_status`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal, NamedTuple

import psutil

from ..dispatch import Clock
from .machine import RuleMachine, RuleStatus
from .rules import Rule
from .shared import Recorded

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


def stale_note(reason: str, *, this_process: bool = False) -> str:
    """A rule's note when the sampler's states are not current."""
    who = "the sampler of this process" if this_process else "the sampling process"
    return f"not current: {who} {reason}"


def own_status(
    machines: Sequence[RuleMachine],
    *,
    clock: Clock,
    interval: float,
    sampled_at: float | None,
    stopped: str | None,
    lock_path: str | None,
    locked: bool,
) -> SamplingStatus:
    """The status in the process that samples (or would: never elected yet when it has
    no lock file to take): its own rule states.

    :param sampled_at: the clock at its last sample (None: none yet).
    :param stopped: why its sampler no longer samples (``"is stopped"``,
        ``"retired"``); None: it runs.
    :param locked: it holds the lock file.
    """
    age = None if sampled_at is None else max(0.0, clock() - sampled_at)
    if stopped is not None:
        reason: str | None = stopped
    else:
        reason = judge(
            pid=os.getpid(),
            process="running",
            lock_held=None,
            last_sample_age=age,
            interval=interval,
        )
    stale = None if reason is None else stale_note(reason, this_process=True)
    return SamplingStatus(
        rules=[m.status(stale=stale) for m in machines],
        current=reason is None,
        reason=reason,
        interval=interval,
        pid=os.getpid(),
        process="running",
        this_process=True,
        standing_by=False,
        lock_path=lock_path,
        lock_held=True if locked else None,
        last_sample_age=age,
    )


def recorded_status(
    recorded: Recorded | None,
    rules: Sequence[Rule],
    *,
    clock: Clock,
    interval: float,
    lock_path: str,
    lock_held: bool | None,
    standing_by: bool,
) -> SamplingStatus:
    """The status in a process that does not sample: the states ``recorded`` by the one
    that does (None: no record), ``"unknown"`` where they are not current.

    :param interval: this process's seconds between samples (the record's own count
        when it says them).
    :param lock_held: whether some process holds the lock
        (:meth:`.election.Election.held`).
    :param standing_by: this process's sampler waits for the lock.
    """
    pid: int | None = None
    age: float | None = None
    process: ProcessState = "unknown"
    if recorded is None:
        reason: str | None = "recorded no sample"
        statuses = [RuleMachine(rule, clock).status() for rule in rules]  # never sampled
    else:
        pid = recorded.pid
        interval = recorded.interval or interval
        age = None if recorded.sampled is None else max(0.0, clock() - recorded.sampled)
        process = "unknown" if pid is None else process_state(pid, recorded.started)
        reason = judge(
            pid=pid, process=process, lock_held=lock_held, last_sample_age=age, interval=interval
        )
        statuses = recorded.statuses(rules, clock, None if reason is None else stale_note(reason))
    return SamplingStatus(
        rules=statuses,
        current=reason is None,
        reason=reason,
        interval=interval,
        pid=pid,
        process=process,
        this_process=False,
        standing_by=standing_by,
        lock_path=lock_path,
        lock_held=lock_held,
        last_sample_age=age,
    )
