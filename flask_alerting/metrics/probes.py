"""Probes: small callables returning one float, read without ever blocking on a timer.

Every reader of the outside world (``/proc/self/cgroup``, the cgroup files, psutil) can be
injected, so the arithmetic is tested against fake files and fake numbers. No Flask, no
threads here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import psutil

#: Reads a text file; returns None when it does not exist or cannot be read.
Reader = Callable[[str], "str | None"]

CGROUP_ROOT = "/sys/fs/cgroup"
PROC_SELF_CGROUP = "/proc/self/cgroup"
MIB = 1024 * 1024


def read_text(path: str) -> str | None:
    """The content of ``path``, or None when it cannot be read."""
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read()
    except OSError:
        return None


# -- CPU --------------------------------------------------------------------------------------


class CPUPercent:
    """System-wide CPU percent since the previous call, never blocking.

    Same arithmetic as ``psutil.cpu_percent(interval=None)`` (it *is* that call, made on
    the sampler thread, which psutil keeps apart from every other thread's counter). The
    first call after :meth:`prime` measures from the priming, so the first reading is
    real instead of psutil's meaningless initial 0.0.

    :param cpu_percent: ``psutil.cpu_percent`` (injectable).
    """

    display_name = "CPU Usage"
    unit = "%"

    def __init__(self, cpu_percent: Callable[..., float] = psutil.cpu_percent) -> None:
        self._cpu_percent = cpu_percent

    def prime(self) -> None:
        """Start a measurement window now (call on the thread that will sample)."""
        self._cpu_percent(None)

    def __call__(self) -> float:
        return float(self._cpu_percent(None))


# -- memory (container-aware) -----------------------------------------------------------------


class CgroupMemory(NamedTuple):
    """Memory of this process's cgroup: ``usage`` (working set) and ``limit``, in bytes."""

    usage: int
    limit: int
    version: int


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    if text == "max":  # cgroup v2: unlimited
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _stat_value(text: str | None, key: str) -> int:
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def _cgroup_paths(text: str | None) -> tuple[str | None, str | None]:
    """(v2 path, v1 memory path) from the content of ``/proc/self/cgroup``."""
    v2 = v1 = None
    for line in (text or "").splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def _ancestors(base: str, path: str) -> list[str]:
    """``base + path`` and each parent directory up to ``base``, deepest first."""
    parts = [p for p in path.split("/") if p and p not in (".", "..")]
    dirs = []
    for depth in range(len(parts), -1, -1):
        dirs.append(os.path.join(base, *parts[:depth]) if depth else base)
    return dirs


def cgroup_memory(
    read: Reader = read_text,
    *,
    root: str = CGROUP_ROOT,
    proc_cgroup: str = PROC_SELF_CGROUP,
    below: int | None = None,
) -> CgroupMemory | None:
    """The memory limit and usage of this process's cgroup, or None when unlimited/unknown.

    cgroup v2: ``memory.max`` ("max" = unlimited), ``memory.current``; v1:
    ``memory.limit_in_bytes``, ``memory.usage_in_bytes``. The limit is the smallest one
    set on the cgroup or an ancestor (a pod's limit applies to its containers); inside a
    container with its own cgroup namespace the path is "/" and the files sit at ``root``.
    Usage is the working set, as ``docker stats`` and the kubelet count it: usage minus the
    inactive page cache (``inactive_file``), which the kernel reclaims before any OOM.

    :param read: file reader (tests pass one that reads fake files).
    :param root: where the cgroup filesystem is mounted.
    :param proc_cgroup: the ``/proc/self/cgroup`` file.
    :param below: only a limit below this many bytes counts (physical memory): a higher
        one (v1 spells "unlimited" as a huge number) gives None without reading usage.
    """
    v2_path, v1_path = _cgroup_paths(read(proc_cgroup))
    layouts: list[tuple[int, str, str, str, str, str]] = []
    if v2_path is not None:
        layouts.append((2, root, v2_path, "memory.max", "memory.current", "inactive_file"))
    if v1_path is not None:
        layouts.append(
            (
                1,
                os.path.join(root, "memory"),
                v1_path,
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "total_inactive_file",
            )
        )
    for version, base, path, limit_file, usage_file, inactive_key in layouts:
        directories = _ancestors(base, path)
        limits = [
            limit
            for directory in directories
            if (limit := _int(read(os.path.join(directory, limit_file)))) is not None and limit > 0
        ]
        if not limits or (below is not None and min(limits) >= below):
            continue
        for directory in directories:  # usage of the deepest cgroup that reports it
            usage = _int(read(os.path.join(directory, usage_file)))
            if usage is not None:
                break
        else:
            continue
        inactive = _stat_value(read(os.path.join(directory, "memory.stat")), inactive_key)
        working_set = usage - inactive if 0 < inactive < usage else usage
        return CgroupMemory(usage=working_set, limit=min(limits), version=version)
    return None


class MemoryPercent:
    """Memory percent, container-aware.

    When this process's cgroup has a memory limit below physical memory, percent =
    cgroup working set / limit (psutil reports the host's memory inside a container);
    otherwise ``psutil.virtual_memory().percent``.

    :param virtual_memory: ``psutil.virtual_memory`` (injectable).
    :param cgroup: ``cgroup(physical_bytes)`` returns the cgroup's memory when its limit is
        below ``physical_bytes``, else None (injectable; default :func:`cgroup_memory`).
    :param clock: monotonic seconds.
    :param recheck: seconds between two looks at the cgroup files while they show no
        limit below physical memory.
    """

    display_name = "Memory Usage"
    unit = "%"

    def __init__(
        self,
        virtual_memory: Callable[[], Any] = psutil.virtual_memory,
        cgroup: Callable[[int], CgroupMemory | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        recheck: float = 60.0,
    ) -> None:
        self._virtual_memory = virtual_memory
        self._cgroup = cgroup or (lambda physical: cgroup_memory(below=physical))
        self._clock = clock
        self._recheck = recheck
        self._unlimited_until: float | None = None

    def __call__(self) -> float:
        vm = self._virtual_memory()
        now = self._clock()
        # Without a cgroup limit below RAM (most hosts) the cgroup files are looked at
        # again only every `recheck` seconds (a limit can be set on a running container).
        if self._unlimited_until is None or now >= self._unlimited_until:
            limited = self._cgroup(int(vm.total))
            if limited is not None and 0 < limited.limit < vm.total:
                self._unlimited_until = None
                return round(min(100.0, limited.usage / limited.limit * 100.0), 1)
            self._unlimited_until = now + self._recheck
        return float(vm.percent)


# -- further built-in probes ------------------------------------------------------------------


class DiskPercent:
    """Percent used of the file system holding ``path`` (``psutil.disk_usage``)."""

    def __init__(self, path: str, disk_usage: Callable[[str], Any] = psutil.disk_usage) -> None:
        self.path = path
        self.display_name = f"Disk Usage of {path}"
        self.unit = "%"
        self._disk_usage = disk_usage

    def __call__(self) -> float:
        return float(self._disk_usage(self.path).percent)


class SwapPercent:
    """Percent of swap in use (0.0 when there is no swap)."""

    display_name = "Swap Usage"
    unit = "%"

    def __init__(self, swap_memory: Callable[[], Any] = psutil.swap_memory) -> None:
        self._swap_memory = swap_memory

    def __call__(self) -> float:
        swap = self._swap_memory()
        return float(swap.percent) if swap.total else 0.0


class LoadPerCore:
    """One-minute load average divided by the number of logical CPUs."""

    display_name = "Load Average per Core"
    unit = ""

    def __init__(
        self,
        getloadavg: Callable[[], Sequence[float]] = psutil.getloadavg,
        cpu_count: Callable[[], int | None] = psutil.cpu_count,
    ) -> None:
        self._getloadavg = getloadavg
        self._cores = max(1, cpu_count() or 1)

    def __call__(self) -> float:
        return round(float(self._getloadavg()[0]) / self._cores, 2)


class ProcessRSS:
    """Resident memory in MiB of the largest process of this app.

    The app's processes are this one and its siblings running the same command line
    (the workers of a pre-fork server such as gunicorn, of which only one samples), so one
    leaking worker is seen whichever worker samples. Finding the siblings means scanning
    every process, so it is done every ``rescan`` seconds; in between only their RSS is
    read.

    :param process: ``psutil.Process`` (injectable), called with a pid or nothing.
    :param getpid: ``os.getpid`` (a forked child rescans as itself).
    :param clock: monotonic seconds.
    :param rescan: seconds between two searches for sibling processes.
    """

    display_name = "Process Memory (RSS)"
    unit = "MiB"

    def __init__(
        self,
        process: Callable[..., Any] = psutil.Process,
        getpid: Callable[[], int] = os.getpid,
        clock: Callable[[], float] = time.monotonic,
        rescan: float = 30.0,
    ) -> None:
        self._process = process
        self._getpid = getpid
        self._clock = clock
        self._rescan = rescan
        self._me: Any = None
        self._siblings: list[Any] = []
        self._scanned_at: float | None = None

    def _scan(self, me: Any) -> list[Any]:
        try:
            cmdline = me.cmdline()
            parent = me.parent()
            candidates: Iterable[Any] = parent.children() if parent is not None else ()
        except (psutil.Error, OSError):
            return []
        siblings = []
        for candidate in candidates:
            try:
                if candidate.pid != me.pid and candidate.cmdline() == cmdline:
                    siblings.append(candidate)
            except (psutil.Error, OSError):
                continue
        return siblings

    def __call__(self) -> float:
        now = self._clock()
        pid = self._getpid()
        if self._me is None or self._me.pid != pid:
            self._me = self._process()
            self._scanned_at = None
        if self._scanned_at is None or now - self._scanned_at >= self._rescan:
            self._siblings = self._scan(self._me)
            self._scanned_at = now
        rss = int(self._me.memory_info().rss)
        alive = []
        for sibling in self._siblings:
            try:
                rss = max(rss, int(sibling.memory_info().rss))
                alive.append(sibling)
            except (psutil.Error, OSError):  # exited: forgotten until the next scan
                continue
        self._siblings = alive
        return round(rss / MIB, 1)
