"""The rule states the sampling process records in its lock file (see :mod:`.election`).

The process holding the lock writes its rules' states after each sample, and again when
a "firing" alert is recorded in the durable outbox, confirmed delivered by a notifier,
or dropped. So the next holder (after a crash, a gunicorn worker recycled) continues
the same breaches instead of alerting about them again, and ``flask alerting status``
in any process can show them, with the age of the last sample and the process that
took it (:mod:`.status` tells whether they are current).

The record is one JSON document: the writer's pid and start time, the host's boot time,
the clock (of the write and of the last sample) and interval of the writer, and each
rule's :meth:`~.machine.RuleMachine.snapshot` (with the rule's definition and what
became of its "firing" alert: its notice). It is padded with spaces to the file's size
and written with one ``pwrite``, never truncated (:meth:`.election.Election.write`), so
the file is always readable whole; readers also ignore whatever follows the document.
A record of another boot is ignored; one older than a sampler would leave it
(:meth:`SharedStates.fresh`) is shown as such but never continued.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from ..dispatch import Clock
from .machine import RuleMachine, RuleStatus
from .rules import Rule, describe_definition, same_definition

#: A record this many seconds older than three of its writer's intervals is no longer
#: continued by the next sampling process: nobody watched that breach since. A restart
#: of every process of an app takes less.
CONTINUE_WITHIN = 70.0


def boot_time() -> float | None:
    """When the host booted (seconds since the epoch): the monotonic clock counts from
    there, so a record of another boot has times that mean nothing now."""
    try:
        import psutil

        return float(psutil.boot_time())
    except Exception:  # pragma: no cover - exotic platforms
        return None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class Recorded(NamedTuple):
    """A record of this boot, read from the lock file."""

    pid: int | None
    """The process that wrote it (None: not said)."""
    rules: dict[str, Any]
    """Rule name -> :meth:`~.machine.RuleMachine.snapshot`."""
    started: float | None = None
    """When that process started (seconds since the epoch, as psutil says; None: not
    said): tells it from a later process that got the same pid."""
    written: float | None = None
    """The writer's clock when it wrote the record."""
    sampled: float | None = None
    """The writer's clock at its last sample (None: it had not sampled yet)."""
    interval: float | None = None
    """The writer's seconds between samples."""

    def restore(self, machines: Iterable[RuleMachine]) -> int:
        """Continue the recorded states in ``machines`` (those of the same name).

        What a machine did not continue, and why, is left in its
        :attr:`~.machine.RuleMachine.dropped`.

        :return: how many of them continue a breach (a crash must not re-alert them).
        """
        restored = 0
        for machine in machines:
            saved = self.rules.get(machine.rule.name)
            machine.dropped = None
            if isinstance(saved, Mapping) and machine.restore(saved):
                restored += machine.state != "ok"
        return restored

    def statuses(
        self, rules: Iterable[Rule], clock: Clock, stale: str | None = None
    ) -> list[RuleStatus]:
        """Each rule's status as recorded, shown as it is (nothing is continued).

        :param stale: why the record is not current (None: it is); the rules are then
            ``"unknown"``. A rule without a record, or recorded under another definition
            (the sampling process has another threshold), is ``"unknown"`` too.
        """
        out = []
        for rule in rules:
            copy = RuleMachine(rule, clock)
            saved = self.rules.get(rule.name)
            note = stale
            if isinstance(saved, Mapping):
                if same_definition(rule, saved):
                    copy.restore(saved, continuing=False)
                elif "threshold" in saved:
                    note = note or (
                        f"the sampling process's rule is {describe_definition(saved)}, "
                        f"not {rule.comparison} {rule.threshold:g}"
                    )
                else:
                    note = note or "recorded by an older version, without its threshold"
            out.append(copy.status(stale=note))
        return out


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

    def encode(
        self,
        pid: int,
        machines: Sequence[RuleMachine],
        *,
        started: float | None = None,
        sampled: float | None = None,
    ) -> bytes:
        """The record of ``machines`` written by process ``pid``: one line of JSON.

        :param started: when process ``pid`` started (psutil's ``create_time()``).
        :param sampled: the clock at its last sample.
        """
        data = {
            "pid": pid,
            "started": started,
            "boot": self.boot,
            "clock": self.clock(),
            "sampled": sampled,
            "interval": self.interval,
            "rules": {m.rule.name: m.snapshot() for m in machines},
        }
        return json.dumps(data, separators=(",", ":")).encode() + b"\n"

    def read(self, raw: bytes | None) -> Recorded | None:
        """The record in ``raw`` when it is one of this boot, however old; else None."""
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
        written = _number(data.get("clock"))
        if not isinstance(rules, dict) or written is None:
            return None
        pid = data.get("pid")
        interval = _number(data.get("interval"))
        return Recorded(
            pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
            rules=rules,
            started=_number(data.get("started")),
            written=written,
            sampled=_number(data.get("sampled")),
            interval=interval if interval is not None and interval > 0 else None,
        )

    def decode(self, raw: bytes | None) -> Recorded | None:
        """The record in ``raw`` when it is one of this boot and fresh enough to be
        continued (:meth:`fresh`); else None."""
        recorded = self.read(raw)
        return recorded if recorded is not None and self.fresh(recorded) else None

    def fresh(self, recorded: Recorded) -> bool:
        """Whether a record is recent enough to be continued by the next sampler.

        A sampling process writes after every sample; older states belong to a breach
        nobody watched since (or to another clock).
        """
        if recorded.written is None:
            return False
        age = self.clock() - recorded.written
        interval = max(self.interval, recorded.interval or 0.0)
        return 0 <= age <= 3 * interval + CONTINUE_WITHIN
