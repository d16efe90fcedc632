"""The processes a metric alert lists: the top five by CPU and by memory.

CPU percent is measured between two snapshots of every process's CPU time: from a
baseline taken when a rule starts to breach (so that "top by CPU" covers the breach), or,
when a rule fires without a recent one (``for_ = 0``), over a short window waited on the
sampler thread. Listing processes only ever happens then, never at every sample. No
Flask here; a failure to list them is logged, never raised into the sampler.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import NamedTuple, TypeVar

import psutil

logger = logging.getLogger("flask_alerting")

#: How many processes the alerts list, by CPU and by memory.
TOP_N = 5

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
    """One process as seen at one moment."""

    pid: int
    name: str
    cpu_time: float
    rss: int
    memory_percent: float
    create_time: float


def list_processes() -> list[ProcessInfo]:
    """Every process we may look at (fresh ``psutil.Process`` objects: nothing cached)."""
    out = []
    for pid in psutil.pids():
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                times = proc.cpu_times()
                out.append(
                    ProcessInfo(
                        pid=pid,
                        name=proc.name(),
                        cpu_time=float(times.user + times.system),
                        rss=int(proc.memory_info().rss),
                        memory_percent=float(proc.memory_percent()),
                        create_time=float(proc.create_time()),
                    )
                )
        except (psutil.Error, OSError):
            continue
    return out


class TopProcess(NamedTuple):
    """A line of the "top processes" lists."""

    pid: int
    name: str
    cpu_percent: float
    rss: int
    memory_percent: float


class ProcessTable:
    """The top processes by CPU and by memory, CPU measured between two snapshots.

    :meth:`baseline` records every process's CPU time (through :meth:`breach_began` when
    a rule starts to breach); :meth:`top` compares with it, so "top by CPU" covers the
    breach.

    :param lister: returns the processes (injectable).
    :param clock: monotonic seconds.
    """

    def __init__(
        self,
        lister: Callable[[], list[ProcessInfo]] = list_processes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lister = lister
        self._clock = clock
        self._baseline: dict[tuple[int, float], float] = {}
        self.baseline_time: float | None = None

    def baseline(self) -> None:
        """Remember every process's CPU time now."""
        self._baseline = {(p.pid, p.create_time): p.cpu_time for p in self._lister()}
        self.baseline_time = self._clock()

    def baseline_age(self) -> float | None:
        """Seconds since the baseline (None: there is none)."""
        return None if self.baseline_time is None else self._clock() - self.baseline_time

    def top(self, n: int = 5) -> tuple[list[TopProcess], list[TopProcess]]:
        """(top ``n`` by CPU percent since the baseline, top ``n`` by resident memory).

        CPU percent is of one core, like ``top``. Without a baseline, CPU percent is 0.
        Starts a new baseline.
        """
        now = self._clock()
        processes = self._lister()
        elapsed = now - self.baseline_time if self.baseline_time is not None else 0.0
        rows = []
        for p in processes:
            before = self._baseline.get((p.pid, p.create_time))
            cpu = 0.0
            if elapsed > 0 and before is not None:
                cpu = max(0.0, (p.cpu_time - before) / elapsed * 100.0)
            rows.append(TopProcess(p.pid, p.name, round(cpu, 1), p.rss, p.memory_percent))
        self._baseline = {(p.pid, p.create_time): p.cpu_time for p in processes}
        self.baseline_time = now
        by_cpu = sorted(rows, key=lambda r: (-r.cpu_percent, r.pid))[:n]
        by_memory = sorted(rows, key=lambda r: (-r.rss, r.pid))[:n]
        return by_cpu, by_memory

    # -- what the sampler asks ----------------------------------------------------------------

    def breach_began(self, *, fresh_for: float) -> None:
        """A rule started to breach: take the baseline that "top by CPU" will cover, unless
        one younger than ``fresh_for`` seconds exists (a value flapping around the
        threshold must not list every process at every sample)."""
        age = self.baseline_age()
        if age is None or age > fresh_for:
            _logged(self.baseline)

    def for_alert(
        self, *, fresh_for: float, window: float, wait: Callable[[float], object]
    ) -> tuple[list[TopProcess], list[TopProcess]]:
        """The top :data:`TOP_N` processes by CPU and by memory, for an alert.

        Without a baseline younger than ``fresh_for`` seconds, one is taken now and CPU
        is measured over the next ``window`` seconds (``wait(window)``; 0: no wait).
        Empty lists when the processes cannot be listed.
        """
        age = self.baseline_age()
        if (age is None or age > fresh_for) and window > 0:
            _logged(self.baseline)
            wait(window)
        return _logged(lambda: self.top(TOP_N)) or ([], [])


def _logged(fn: Callable[[], _T]) -> _T | None:
    try:
        return fn()
    except Exception:
        logger.exception("flask-alerting: could not list the top processes")
        return None
