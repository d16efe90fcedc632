"""Who a process is, and whether it is still alive.

A process of a store is named by :class:`ProcessId`: host name, pid and the process's
start time, so that a pid reused by a later process is never mistaken for the first one.

Liveness (:func:`is_alive`) is decided in two ways:

* on the same host (same host name), by the operating system: the pid exists and started
  at the same time (:mod:`psutil`). Exact and immediate, no heartbeat needed;
* on another host, by a lease: the process's last heartbeat promised to be alive until a
  deadline (wall-clock epoch seconds); past it, the process counts as dead.

Host names must be unique among the processes of one store (containers: give each its
own host name, as Docker does by default), since the same-host check trusts the local pid
table.
"""

from __future__ import annotations

import dataclasses
import os
import socket

import psutil

#: Start times are compared with this tolerance (psutil derives them from clock ticks).
START_TOLERANCE = 0.05


@dataclasses.dataclass(frozen=True, order=True)
class ProcessId:
    """One process of a store: ``host``, ``pid`` and ``started`` (epoch seconds).

    ``str(pid)`` gives the stable text form ``host/pid/started`` used as a key in the
    stores; :meth:`parse` reads it back.
    """

    host: str
    pid: int
    started: float

    def __str__(self) -> str:
        return f"{self.host}/{self.pid}/{self.started:.2f}"

    @classmethod
    def parse(cls, text: str) -> ProcessId:
        """Read the form of ``str(process_id)``; ValueError when it is not one."""
        host, pid, started = text.rsplit("/", 2)
        return cls(host, int(pid), float(started))

    @property
    def local(self) -> bool:
        """Whether this process runs on this host."""
        return self.host == host_name()


def host_name() -> str:
    """This host's name, as processes of a store name their host."""
    return socket.gethostname() or "localhost"


def _start_time(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


_current: ProcessId | None = None


def current_process() -> ProcessId:
    """The :class:`ProcessId` of the calling process (computed again after a fork)."""
    global _current
    pid = os.getpid()
    if _current is None or _current.pid != pid:
        started = _start_time(pid)
        _current = ProcessId(host_name(), pid, round(started if started is not None else 0.0, 2))
    return _current


def local_alive(process: ProcessId) -> bool:
    """Whether ``process`` (of this host) is running: its pid exists and started when it did.

    A zombie counts as dead: it runs no code any more.
    """
    if process.pid == os.getpid():
        return process == current_process()
    try:
        proc = psutil.Process(process.pid)
        started = proc.create_time()
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
    except (psutil.Error, OSError):
        return False
    return abs(started - process.started) <= START_TOLERANCE


def is_alive(process: ProcessId, deadline: float | None, now: float) -> bool:
    """Whether ``process`` is alive: by the OS on this host, else by its lease.

    :param deadline: the end of its lease (epoch seconds); None when it holds none
        (never registered, or deregistered): a process of another host without a lease
        is dead.
    :param now: the caller's wall clock (epoch seconds).
    """
    if process.local:
        return local_alive(process)
    return deadline is not None and deadline > now
