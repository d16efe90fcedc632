"""Waiting for a forked child in tests, bounded: a hung child is killed, never waited on."""

from __future__ import annotations

import os
import select
import signal
import time


def wait_child(pid: int, timeout: float) -> int | None:
    """The child's exit code, or None after killing it when it hangs past ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        select.select([], [], [], 0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None
