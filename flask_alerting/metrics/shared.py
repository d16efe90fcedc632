"""The rule states the sampling process records in its lock file (see :mod:`.election`).

The process holding the lock writes its rules' states after each sample that changed one,
and at least every :data:`SHARE_EVERY` seconds. So the next holder (after a crash, a
gunicorn worker recycled) continues the same breaches instead of alerting about them
again, and ``flask alerting status`` in any process can show them.

The record is one JSON document: the writer's pid, the host's boot time, the clock and
interval of the writer and each rule's :meth:`~.rules.RuleMachine.snapshot`. It is
padded with spaces to the file's size and written with one ``pwrite``, never truncated
(:meth:`.election.Election.write`), so the file is always readable whole; readers also
ignore whatever follows the document. A record of another boot, or one older than a
sampler would leave it (:meth:`SharedStates.fresh`), is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from ..dispatch import Clock
from .rules import Rule, RuleMachine, RuleStatus

#: The sampling process writes its rules' states into the lock file when one changes and
#: at least this often (seconds), for the process that takes over and for status displays.
SHARE_EVERY = 10.0


def boot_time() -> float | None:
    """When the host booted (seconds since the epoch): the monotonic clock counts from
    there, so a record of another boot has times that mean nothing now."""
    try:
        import psutil

        return float(psutil.boot_time())
    except Exception:  # pragma: no cover - exotic platforms
        return None


class Recorded(NamedTuple):
    """A fresh record of this boot, read from the lock file."""

    pid: int | None
    """The process that wrote it (None: not said)."""
    rules: dict[str, Any]
    """Rule name -> :meth:`~.rules.RuleMachine.snapshot`."""

    def restore(self, machines: Iterable[RuleMachine]) -> int:
        """Continue the recorded states in ``machines`` (those of the same name).

        :return: how many of them continue a breach (a crash must not re-alert them).
        """
        restored = 0
        for machine in machines:
            saved = self.rules.get(machine.rule.name)
            if isinstance(saved, Mapping) and machine.restore(saved):
                restored += machine.state != "ok"
        return restored

    def statuses(self, rules: Iterable[Rule], clock: Clock) -> list[RuleStatus]:
        """Each rule's status as recorded (a fresh ``ok`` for a rule without a record)."""
        copies = []
        for rule in rules:
            copy = RuleMachine(rule, clock)
            saved = self.rules.get(rule.name)
            if isinstance(saved, Mapping):
                copy.restore(saved)
            copies.append(copy)
        return [copy.status() for copy in copies]


class SharedStates:
    """Encodes the record of one sampler's rules, and decodes the record of any process.

    :param clock: the sampler's clock (monotonic seconds: the same in every process of
        a host).
    :param interval: the sampler's seconds between samples.
    """

    def __init__(self, clock: Clock, interval: float) -> None:
        self.clock = clock
        self.interval = interval
        self.boot = boot_time()

    def encode(self, pid: int, machines: Sequence[RuleMachine]) -> bytes:
        """The record of ``machines`` written by process ``pid``: one line of JSON."""
        data = {
            "pid": pid,
            "boot": self.boot,
            "clock": self.clock(),
            "interval": self.interval,
            "rules": {m.rule.name: m.snapshot() for m in machines},
        }
        return json.dumps(data, separators=(",", ":")).encode() + b"\n"

    def decode(self, raw: bytes | None) -> Recorded | None:
        """The record in ``raw`` when it is one of this boot and fresh; else None."""
        if not raw:
            return None
        try:
            # raw_decode: the document, whatever follows it (the stale tail that an
            # interrupted write-then-truncate of an earlier version could leave).
            text = raw.decode("utf-8", "replace").lstrip()
            data = json.JSONDecoder().raw_decode(text)[0] if text else None
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("boot") != self.boot:
            return None
        rules = data.get("rules")
        if not isinstance(rules, dict) or not self.fresh(data):
            return None
        pid = data.get("pid")
        return Recorded(pid if isinstance(pid, int) else None, rules)

    def fresh(self, data: Mapping[str, Any]) -> bool:
        """Whether a record is recent enough to be continued or shown.

        A sampling process writes after every sample; older states belong to a breach
        nobody watched since (or to another clock).
        """
        try:
            age = self.clock() - float(data["clock"])
            interval = max(self.interval, float(data.get("interval") or 0))
        except (KeyError, TypeError, ValueError):
            return False
        return 0 <= age <= 3 * interval + SHARE_EVERY + 60
