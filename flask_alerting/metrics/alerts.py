"""The alert of a metric rule's transition: what it says, with whose labels and fingerprint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..alert import Alert, make_fingerprint
from ..render import fmt_duration, fmt_value
from .machine import Event

if TYPE_CHECKING:
    from .processes import TopProcess


def _process_lines(title: str, rows: Sequence[TopProcess], memory: bool) -> list[str]:
    if not rows:
        return []
    lines = [f"{title}:"]
    if memory:
        lines.append(f"  {'PID':>7}  {'RSS MiB':>9}  {'MEM%':>5}  NAME")
        lines += [
            f"  {r.pid:>7}  {r.rss / 1048576:>9.1f}  {r.memory_percent:>5.1f}  {r.name}"
            for r in rows
        ]
    else:
        lines.append(f"  {'PID':>7}  {'CPU%':>6}  {'MEM%':>5}  NAME")
        lines += [
            f"  {r.pid:>7}  {r.cpu_percent:>6.1f}  {r.memory_percent:>5.1f}  {r.name}" for r in rows
        ]
    return lines


def metric_alert(
    event: Event,
    *,
    labels: Mapping[str, str],
    now: datetime,
    top_cpu: Sequence[TopProcess] = (),
    top_memory: Sequence[TopProcess] = (),
) -> Alert:
    """The alert for a rule transition: value and threshold with their unit, host,
    duration of the breach, top processes.

    :param labels: ``app`` and ``host`` (the ``metric`` label is added).
    :param now: wall-clock time of the sample (aware UTC).
    :param top_cpu: :class:`~flask_alerting.metrics.processes.TopProcess` rows by CPU.
    :param top_memory: rows by resident memory.
    """
    rule = event.rule
    name = rule.display_name
    value = fmt_value(event.value, rule.unit)
    threshold = fmt_value(rule.threshold, rule.unit)
    host = labels.get("host", "")
    since = now - timedelta(seconds=event.breach_seconds)
    duration = fmt_duration(event.breach_seconds)
    if event.kind == "resolved":
        title = (
            f"{name} is back under the threshold: Current Value: {value}, Threshold: {threshold}"
        )
        lines = [
            f"The {name} is back under the threshold:",
            "",
            f"Current Value: {value}",
            f"Threshold: {threshold} (resolves below {fmt_value(rule.resolve_below, rule.unit)})",
            "",
            f"Host: {host}",
            f"The breach lasted {duration} (since {since:%Y-%m-%d %H:%M:%S} UTC).",
        ]
    else:
        verb = "has exceeded" if event.kind == "firing" else "is still above"
        title = f"{name} {verb} the threshold: Current Value: {value}, Threshold: {threshold}"
        lines = [
            f"The {name} {verb} the threshold:",
            "",
            f"Current Value: {value}",
            f"Threshold: {threshold}",
            "",
            f"Host: {host}",
            f"Above the threshold for {duration} (since {since:%Y-%m-%d %H:%M:%S} UTC).",
        ]
        if event.kind == "reminder":
            lines.append(
                f"Reminder {event.reminders}: this rule has been firing without a break; "
                f"next reminder in {fmt_duration(rule.repeat_seconds)} if it keeps firing."
            )
        cpu_lines = _process_lines("Top processes by CPU", top_cpu, memory=False)
        memory_lines = _process_lines("Top processes by memory", top_memory, memory=True)
        if cpu_lines or memory_lines:
            lines += ["", *cpu_lines]
            if cpu_lines and memory_lines:
                lines.append("")
            lines += memory_lines
    all_labels = {**labels, "metric": rule.name}
    return Alert(
        kind="metric",
        severity=rule.severity,
        status="resolved" if event.kind == "resolved" else "firing",
        title=title,
        message="\n".join(lines),
        labels=all_labels,
        fingerprint=make_fingerprint(
            "metric", all_labels.get("app"), all_labels.get("host"), rule.name
        ),
        value=event.value,
        threshold=rule.threshold,
        timestamp=now,
        details={
            "display_name": name,
            "unit": rule.unit,
            "breach_seconds": round(event.breach_seconds, 1),
        },
    )
