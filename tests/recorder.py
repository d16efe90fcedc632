"""Records blinker signals sent by one app, and waits on them through a condition."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from blinker import Signal


class Recorder:
    """Records the keyword arguments of a blinker signal sent by one app; waits on them."""

    def __init__(self, signal: Signal, sender: Any) -> None:
        self.signal = signal
        self.calls: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        signal.connect(self._receive, sender, weak=False)

    def _receive(self, sender: Any, **kwargs: Any) -> None:
        with self._cond:
            self.calls.append(kwargs)
            self._cond.notify_all()

    def wait_until(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(self.calls), timeout)
            calls = list(self.calls)
        assert ok, f"signal condition not met within {timeout}s: {calls}"
        return calls

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        return self.wait_until(lambda calls: len(calls) >= count, timeout)

    def disconnect(self) -> None:
        self.signal.disconnect(self._receive)
