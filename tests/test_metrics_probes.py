"""Probes with injected readers: fake cgroup files in tmp_path, fake psutil results."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from flask_alerting.metrics.probes import (
    CgroupMemory,
    CPUPercent,
    DiskPercent,
    LoadPerCore,
    MemoryPercent,
    ProcessRSS,
    SwapPercent,
    cgroup_memory,
)
from flask_alerting.metrics.processes import ProcessInfo, ProcessTable, list_processes
from tests.conftest import FakeClock

GIB = 1024**3


def write(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def memory_of(tmp_path: Path, files: dict[str, str]) -> CgroupMemory | None:
    write(tmp_path, files)
    return cgroup_memory(root=str(tmp_path / "cg"), proc_cgroup=str(tmp_path / "proc_cgroup"))


# -- cgroup v2 --------------------------------------------------------------------------------


def test_v2_namespaced_container(tmp_path: Path) -> None:
    """Docker with a cgroup namespace: path "/", files at the mount point."""
    got = memory_of(
        tmp_path,
        {
            "proc_cgroup": "0::/\n",
            "cg/memory.max": "1073741824\n",
            "cg/memory.current": "805306368\n",
            "cg/memory.stat": "anon 700000000\nfile 105306368\ninactive_file 268435456\n",
        },
    )
    # working set = usage - inactive page cache, as docker stats shows it
    assert got == CgroupMemory(usage=805306368 - 268435456, limit=GIB, version=2)


def test_v2_max_means_unlimited(tmp_path: Path) -> None:
    got = memory_of(
        tmp_path,
        {"proc_cgroup": "0::/\n", "cg/memory.max": "max\n", "cg/memory.current": "12345\n"},
    )
    assert got is None


def test_v2_nested_cgroup_inherits_the_pod_limit(tmp_path: Path) -> None:
    """A container cgroup without its own limit under a pod slice that has one."""
    got = memory_of(
        tmp_path,
        {
            "proc_cgroup": "0::/kubepods/pod1/ctr\n",
            "cg/kubepods/pod1/ctr/memory.max": "max\n",
            "cg/kubepods/pod1/ctr/memory.current": "300\n",
            "cg/kubepods/pod1/ctr/memory.stat": "inactive_file 100\n",
            "cg/kubepods/pod1/memory.max": "1000\n",
            "cg/kubepods/pod1/memory.current": "900\n",
            "cg/kubepods/memory.max": "5000\n",
        },
    )
    # usage from the process's own cgroup, the smallest limit on the way up
    assert got == CgroupMemory(usage=200, limit=1000, version=2)


def test_v2_stat_without_inactive_file_uses_usage(tmp_path: Path) -> None:
    got = memory_of(
        tmp_path,
        {
            "proc_cgroup": "0::/app\n",
            "cg/app/memory.max": "2000\n",
            "cg/app/memory.current": "500\n",
        },
    )
    assert got == CgroupMemory(usage=500, limit=2000, version=2)


# -- cgroup v1 --------------------------------------------------------------------------------


def test_v1_limit(tmp_path: Path) -> None:
    got = memory_of(
        tmp_path,
        {
            "proc_cgroup": "12:pids:/docker/abc\n4:memory:/docker/abc\n1:cpu,cpuacct:/docker/abc\n",
            "cg/memory/docker/abc/memory.limit_in_bytes": "536870912\n",
            "cg/memory/docker/abc/memory.usage_in_bytes": "400000000\n",
            # v1 counts the hierarchy in total_*: that one, not the cgroup's own line
            "cg/memory/docker/abc/memory.stat": (
                "cache 1\ninactive_file 7\ntotal_inactive_file 50000000\n"
            ),
        },
    )
    assert got == CgroupMemory(usage=350000000, limit=536870912, version=1)


def test_v1_unlimited_is_a_huge_number_and_ignored_by_memory_percent(tmp_path: Path) -> None:
    got = memory_of(
        tmp_path,
        {
            "proc_cgroup": "4:memory:/\n",
            "cg/memory/memory.limit_in_bytes": "9223372036854771712\n",
            "cg/memory/memory.usage_in_bytes": "4000000000\n",
        },
    )
    assert got is not None and got.limit == 9223372036854771712
    vm = SimpleNamespace(total=16 * GIB, percent=42.5)
    assert MemoryPercent(virtual_memory=lambda: vm, cgroup=lambda total: got)() == 42.5


def test_hybrid_prefers_v2_when_it_has_a_limit(tmp_path: Path) -> None:
    got = memory_of(
        tmp_path,
        {
            "proc_cgroup": "4:memory:/\n0::/\n",
            "cg/memory.max": "1000\n",
            "cg/memory.current": "250\n",
            "cg/memory/memory.limit_in_bytes": "2000\n",
            "cg/memory/memory.usage_in_bytes": "1500\n",
        },
    )
    assert got == CgroupMemory(usage=250, limit=1000, version=2)


@pytest.mark.parametrize(
    "files",
    [
        {},  # no /proc/self/cgroup (not Linux)
        {"proc_cgroup": "garbage\n"},
        {"proc_cgroup": "0::/\n"},  # v2 listed, no files (no memory controller)
        {"proc_cgroup": "0::/\n", "cg/memory.max": "1000\n"},  # no usage file
        {"proc_cgroup": "0::/\n", "cg/memory.max": "oops\n", "cg/memory.current": "1\n"},
    ],
)
def test_unknown_cgroup_layouts_give_none(tmp_path: Path, files: dict[str, str]) -> None:
    assert memory_of(tmp_path, files) is None


def test_limit_not_below_physical_memory_skips_usage(tmp_path: Path) -> None:
    files = {
        "/p": "0::/x\n",
        "/r/x/memory.max": "5000\n",
        "/r/x/memory.current": "25\n",
    }
    reads: list[str] = []

    def read(path: str) -> str | None:
        reads.append(path)
        return files.get(path)

    assert cgroup_memory(read, root="/r", proc_cgroup="/p", below=5000) is None
    assert not [p for p in reads if "memory.current" in p or "memory.stat" in p]
    got = cgroup_memory(read, root="/r", proc_cgroup="/p", below=5001)
    assert got == CgroupMemory(usage=25, limit=5000, version=2)


def test_injected_reader_is_used() -> None:
    files = {"/p": "0::/x\n", "/r/x/memory.max": "100\n", "/r/x/memory.current": "25\n"}
    got = cgroup_memory(files.get, root="/r", proc_cgroup="/p")
    assert got == CgroupMemory(usage=25, limit=100, version=2)


def test_this_machine_does_not_crash() -> None:
    got = cgroup_memory()
    assert got is None or (got.limit > 0 and got.usage >= 0)


# -- memory percent ---------------------------------------------------------------------------


def test_memory_percent_uses_the_cgroup_limit_below_physical_memory() -> None:
    vm = SimpleNamespace(total=64 * GIB, percent=10.0)  # the host's view
    limited = CgroupMemory(usage=int(1.8 * GIB), limit=2 * GIB, version=2)
    probe = MemoryPercent(virtual_memory=lambda: vm, cgroup=lambda total: limited)
    assert probe() == 90.0


def test_memory_percent_falls_back_to_psutil_without_limit() -> None:
    vm = SimpleNamespace(total=8 * GIB, percent=55.5)
    assert MemoryPercent(virtual_memory=lambda: vm, cgroup=lambda total: None)() == 55.5


def test_memory_percent_from_fake_cgroup_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "proc_cgroup": "0::/\n",
            "cg/memory.max": "1000000\n",
            "cg/memory.current": "950000\n",
            "cg/memory.stat": "inactive_file 100000\n",
        },
    )

    def cgroup(physical: int) -> CgroupMemory | None:
        return cgroup_memory(
            root=str(tmp_path / "cg"), proc_cgroup=str(tmp_path / "proc_cgroup"), below=physical
        )

    vm = SimpleNamespace(total=4 * GIB, percent=3.0)
    assert MemoryPercent(virtual_memory=lambda: vm, cgroup=cgroup)() == 85.0


def test_memory_percent_rechecks_an_unlimited_cgroup_once_a_minute() -> None:
    clock = FakeClock()
    vm = SimpleNamespace(total=8 * GIB, percent=20.0)
    calls: list[int] = []
    limit: list[CgroupMemory | None] = [None]

    def cgroup(physical: int) -> CgroupMemory | None:
        calls.append(physical)
        return limit[0]

    probe = MemoryPercent(virtual_memory=lambda: vm, cgroup=cgroup, clock=clock, recheck=60)
    assert probe() == 20.0 and calls == [8 * GIB]
    clock.advance(59.0)
    assert probe() == 20.0 and len(calls) == 1
    # `docker update --memory 1g` on the running container: seen within a minute
    limit[0] = CgroupMemory(usage=GIB // 2, limit=GIB, version=2)
    clock.advance(1.0)
    assert probe() == 50.0
    assert probe() == 50.0 and len(calls) == 3  # limited: read at every sample


def test_memory_percent_real() -> None:
    assert 0.0 < MemoryPercent()() <= 100.0


# -- CPU --------------------------------------------------------------------------------------


def test_cpu_prime_makes_the_first_reading_real() -> None:
    calls: list[Any] = []
    readings = iter([0.0, 37.5])

    def fake_cpu_percent(interval: Any = None) -> float:
        calls.append(interval)
        return next(readings)

    probe = CPUPercent(fake_cpu_percent)
    probe.prime()  # psutil's meaningless first 0.0 goes here
    assert probe() == 37.5
    assert calls == [None, None]  # never a blocking interval


def test_cpu_real_reading_after_priming() -> None:
    """Primed, then real work: the first reading is real (> 0), not psutil's initial 0.0."""
    probe = CPUPercent()
    probe.prime()
    # burn a little CPU so that the window is not empty, whatever else the host does
    deadline = psutil.cpu_times().user + 0.05
    while psutil.cpu_times().user < deadline:
        sum(range(1000))
    assert 0.0 < probe() <= 100.0


# -- the other built-in probes ----------------------------------------------------------------


def test_disk_percent(tmp_path: Path) -> None:
    seen = []

    def disk_usage(path: str) -> Any:
        seen.append(path)
        return SimpleNamespace(percent=91.2)

    probe = DiskPercent(str(tmp_path), disk_usage=disk_usage)
    assert probe() == 91.2 and seen == [str(tmp_path)]
    assert probe.display_name == f"Disk Usage of {tmp_path}"
    assert 0.0 <= DiskPercent(str(tmp_path))() <= 100.0


def test_swap_percent_and_no_swap() -> None:
    assert SwapPercent(lambda: SimpleNamespace(total=100, percent=12.5))() == 12.5
    assert SwapPercent(lambda: SimpleNamespace(total=0, percent=0.0))() == 0.0
    assert 0.0 <= SwapPercent()() <= 100.0


def test_load_per_core() -> None:
    probe = LoadPerCore(getloadavg=lambda: (6.0, 3.0, 1.0), cpu_count=lambda: 4)
    assert probe() == 1.5
    assert LoadPerCore(getloadavg=lambda: (2.0, 0, 0), cpu_count=lambda: None)() == 2.0
    assert LoadPerCore()() >= 0.0


class FakeProcess:
    def __init__(self, pid: int, rss: int, cmdline: list[str], parent: Any = None) -> None:
        self.pid = pid
        self._rss = rss
        self._cmdline = cmdline
        self._parent = parent
        self.kids: list[FakeProcess] = []

    def memory_info(self) -> Any:
        if self._rss < 0:
            raise psutil.NoSuchProcess(self.pid)
        return SimpleNamespace(rss=self._rss)

    def cmdline(self) -> list[str]:
        return self._cmdline

    def parent(self) -> Any:
        return self._parent

    def children(self) -> list[FakeProcess]:
        return self.kids


def test_process_rss_is_the_largest_worker_of_this_app() -> None:
    cmd = ["python", "-m", "gunicorn", "app:app"]
    master = FakeProcess(1, 50 * 1048576, cmd)
    me = FakeProcess(10, 100 * 1048576, cmd, parent=master)
    leaking = FakeProcess(11, 700 * 1048576, cmd, parent=master)
    gone = FakeProcess(12, -1, cmd, parent=master)  # exited meanwhile
    unrelated = FakeProcess(13, 4000 * 1048576, ["postgres"], parent=master)
    master.kids = [me, leaking, gone, unrelated]
    clock = FakeClock()
    probe = ProcessRSS(process=lambda pid=None: me, getpid=lambda: 10, clock=clock, rescan=30)
    assert probe() == 700.0
    # between scans only the known siblings are read: a new worker waits for the rescan
    newcomer = FakeProcess(14, 900 * 1048576, cmd, parent=master)
    master.kids.append(newcomer)
    leaking._rss = 720 * 1048576
    clock.advance(29.0)
    assert probe() == 720.0
    clock.advance(1.0)
    assert probe() == 900.0
    # the leaking worker exits: forgotten
    newcomer._rss = -1
    assert probe() == 720.0


def test_process_rss_after_fork_measures_the_child() -> None:
    cmd = ["app"]
    parent_proc = FakeProcess(1, 10 * 1048576, cmd)
    child_proc = FakeProcess(2, 20 * 1048576, cmd)
    current = [1]
    table = {1: parent_proc, 2: child_proc}
    probe = ProcessRSS(process=lambda: table[current[0]], getpid=lambda: current[0])
    assert probe() == 10.0
    current[0] = 2  # what os.getpid() says in a forked child
    assert probe() == 20.0


def test_process_rss_real() -> None:
    own = psutil.Process().memory_info().rss / 1048576
    assert ProcessRSS()() >= round(own, 1) - 1.0


# -- top processes ----------------------------------------------------------------------------


def test_top_processes_cpu_since_baseline_and_memory() -> None:
    clock = FakeClock(0.0)
    table_rows = [
        ProcessInfo(1, "idle", 100.0, 10, 0.1, 1.0),
        ProcessInfo(2, "busy", 50.0, 20, 0.2, 1.0),
        ProcessInfo(3, "fat", 5.0, 9000, 40.0, 1.0),
        ProcessInfo(4, "reused-pid", 1000.0, 30, 0.3, 1.0),
    ]
    table = ProcessTable(lister=lambda: list(table_rows), clock=clock)
    assert table.baseline_age() is None
    table.baseline()
    clock.advance(10.0)
    assert table.baseline_age() == 10.0
    table_rows[:] = [
        ProcessInfo(1, "idle", 100.1, 10, 0.1, 1.0),  # 1 % of a core
        ProcessInfo(2, "busy", 59.5, 20, 0.2, 1.0),  # 95 %
        ProcessInfo(3, "fat", 5.0, 9000, 40.0, 1.0),
        ProcessInfo(4, "reused-pid", 1.0, 30, 0.3, 9.0),  # new process, same pid
        ProcessInfo(5, "new", 3.0, 40, 0.4, 9.0),
    ]
    by_cpu, by_memory = table.top(3)
    assert [(p.name, p.cpu_percent) for p in by_cpu] == [
        ("busy", 95.0),
        ("idle", 1.0),
        ("fat", 0.0),
    ]
    assert [p.name for p in by_memory] == ["fat", "new", "reused-pid"]
    assert table.baseline_age() == 0.0  # top() starts a new window


def test_top_without_baseline_has_zero_cpu() -> None:
    table = ProcessTable(lister=lambda: [ProcessInfo(1, "a", 9.0, 1, 0.0, 1.0)])
    by_cpu, _ = table.top()
    assert by_cpu[0].cpu_percent == 0.0


def test_list_processes_real_includes_this_process() -> None:
    rows = list_processes()
    mine = [p for p in rows if p.pid == os.getpid()]
    assert len(mine) == 1 and mine[0].rss > 0
