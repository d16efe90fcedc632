"""Turn an :class:`~flask_alerting.Alert` into text: subject, plain body, HTML body, log line.

Pure code shared by the notifiers. Built-in sources already write ``alert.message``; this
module adds the facts around it (labels, request context, digest counts, drops) in a
stable order, durations in seconds and metric values with their unit.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

from .alert import Alert, one_line
from .scrub import cut_middle, cut_middle_bytes

#: Details that the text shows in another form (the digest's counts, the value's name
#: and unit, the breach's duration), not as sections of their own.
_SHOWN_ELSEWHERE = frozenset(
    {"digest", "display_name", "unit", "breach_seconds", "recovered"}
)

#: Subject lines are cut to this many characters (RFC 5322 recommends 78 per line; mail
#: clients show about this much).
MAX_SUBJECT_LENGTH = 150

#: The plain-text body is cut to this many bytes of UTF-8, its head and tail kept around
#: a line saying how much was cut; the HTML body to :data:`MAX_HTML_BYTES`. Even
#: quoted-printable encoded (at worst about 3.1 bytes per byte), an e-mail with both
#: stays under 1 MB, below the size limits of mail servers (a 552 reply is permanent:
#: the alert would be lost).
MAX_TEXT_BYTES = 140_000
MAX_HTML_BYTES = 160_000
#: A line of the alert log is cut to this many characters (head and tail kept).
MAX_LOG_TEXT = 140_000


def subject(alert: Alert, prefix: str | None) -> str:
    """``prefix`` + title on one line, with status and digest count when relevant.

    A digest always shows its count, ``(1x)`` included: ``[shop] (1x) KeyError ...``
    says "one more", where ``[shop] KeyError ...`` is a first alert. A flood summary is
    not a digest: its title says what it counts. An alert that another process took over
    from the outbox of one that ended says ``(recovered)``: ``[shop] (recovered) ...``.

    :param prefix: ``None`` means ``"[<app label>]"``.
    """
    if prefix is None:
        prefix = f"[{alert.labels.get('app', 'flask')}]"
    parts = [prefix] if prefix else []
    if recovered(alert):
        parts.append("(recovered)")
    if alert.status == "resolved":
        parts.append("RESOLVED:")
    if alert.is_digest or alert.occurrences > 1:
        parts.append(f"({alert.occurrences}x)")
    parts.append(alert.title)
    return one_line(" ".join(parts), MAX_SUBJECT_LENGTH)


def origin(alert: Alert) -> str:
    """Where the alert was raised: ``"pid 1234 on web-1"`` (the process, then the
    ``host`` label); ``"pid 1234"`` or ``"host web-1"`` when the other is unknown, else
    ``""``."""
    host = alert.labels.get("host")
    if alert.pid is None:
        return f"host {host}" if host else ""
    return f"pid {alert.pid} on {host}" if host else f"pid {alert.pid}"


def recovered(alert: Alert) -> Mapping[str, Any] | None:
    """``details["recovered"]`` of an alert delivered from the outbox of a process that
    ended before delivering it (``from``: that process, ``by``: the one that delivered
    it, as ``"pid 1234 on web-1"``); None for any other alert."""
    value = alert.details.get("recovered")
    return value if isinstance(value, Mapping) else None


def _recovered_line(alert: Alert) -> list[str]:
    info = recovered(alert)
    if info is None:
        return []
    return [
        f"Recovered: {info.get('from', 'a process')} ended before delivering this alert; "
        f"{info.get('by', 'another process')} delivered it from the outbox.",
        "",
    ]


def _when(alert: Alert) -> str:
    return alert.timestamp.strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_seconds(seconds: float) -> str:
    """A duration for people: ``2.20 s``, ``0.35 s``, ``45 ms``, ``1.2 ms``."""
    if seconds >= 0.1 or seconds <= 0.0:
        return f"{seconds:.2f} s"
    milliseconds = seconds * 1000.0
    return f"{milliseconds:.1f} ms" if milliseconds < 10 else f"{milliseconds:.0f} ms"


def fmt_duration(seconds: float) -> str:
    """``45 s``, ``2 min 5 s``, ``3 h 2 min``, ``2 d 4 h``."""
    seconds = max(0, int(round(seconds)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def fmt_number(value: float) -> str:
    """A value as Python prints a float (``93.1``, ``80.0``), without float noise."""
    return repr(float(format(value, ".10g")))


def fmt_value(value: float, unit: str = "") -> str:
    """A metric value with its unit: ``91.3 %``, ``512.0 MiB``, ``150.0 jobs``, ``1.25``.

    Percentages and MiB with one decimal (what the probes measure); other values as
    :func:`fmt_number` prints them.
    """
    if unit in ("%", "MiB"):
        return f"{value:.1f} {unit}"
    text = fmt_number(value)
    return f"{text} {unit}" if unit else text


def fmt_alert_value(alert: Alert, value: float) -> str:
    """``value`` of ``alert`` with its unit: seconds for timing alerts, the rule's unit for
    metric alerts (``91.3 %``), else as a plain number."""
    if alert.kind == "timing":
        return fmt_seconds(value)
    if alert.kind == "metric":
        unit = alert.details.get("unit")
        return fmt_value(value, unit if isinstance(unit, str) else "")
    return f"{value:g}"


def _digest_lines(alert: Alert) -> list[str]:
    digest = alert.details.get("digest")
    if not isinstance(digest, Mapping):
        return []
    more = alert.occurrences
    lines = [f"This alert occurred {more} more {'time' if more == 1 else 'times'}"]
    if alert.first_seen and alert.last_seen:
        lines[0] += (
            f" between {alert.first_seen:%Y-%m-%d %H:%M:%S} and {alert.last_seen:%H:%M:%S} UTC"
        )
    # In a storm most occurrences are only counted (see Dispatcher.dispatch_pending).
    lines[0] += "; the latest occurrence captured in full is shown below."
    if digest.get("mean") is not None:
        lines.append(
            f"Values: mean {fmt_alert_value(alert, digest['mean'])}, "
            f"max {fmt_alert_value(alert, digest['max'])}, "
            f"min {fmt_alert_value(alert, digest['min'])}"
        )
    return lines


def _section(title: str, data: Mapping[str, Any]) -> list[str]:
    lines = [title + ":"]
    for key, value in data.items():
        if isinstance(value, Mapping):
            if not value:
                continue
            lines.append(f"  {key}:")
            lines.extend(f"    {k}: {_fmt(v)}" for k, v in value.items())
        else:
            lines.append(f"  {key}: {_fmt(value)}")
    return lines


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # pragma: no cover - default=str handles the rest
        return repr(value)


def default_message(alert: Alert) -> str:
    """The text of a timing or metric alert that carries no message of its own.

    Metrics: ``"The {metric} has exceeded the threshold:\\n\\nCurrent Value: 91.3 %\\n
    Threshold: 80.0 %"``; timing: ``"{function} took 2.20 s (threshold 2.00 s)."``.
    Empty for other alerts and without value and threshold.
    """
    if alert.value is None or alert.threshold is None:
        return ""
    if alert.kind == "timing":
        function = alert.labels.get("function", alert.title)
        return f"{function} took {_over(alert)}."
    if alert.kind != "metric":
        return ""
    name, state, value, threshold = _metric_facts(alert)
    return f"The {name} {state} the threshold:\n\nCurrent Value: {value}\nThreshold: {threshold}"


def _over(alert: Alert) -> str:
    """``2.20 s (threshold 2.00 s)`` of a timing alert."""
    assert alert.value is not None and alert.threshold is not None
    return f"{fmt_seconds(alert.value)} (threshold {fmt_seconds(alert.threshold)})"


def _metric_facts(alert: Alert) -> tuple[str, str, str, str]:
    """The metric's name, ``has exceeded`` or ``is back under``, the value and the
    threshold (with their unit) of a metric alert."""
    assert alert.value is not None and alert.threshold is not None
    name = str(alert.details.get("display_name") or alert.labels.get("metric", alert.title))
    state = "is back under" if alert.status == "resolved" else "has exceeded"
    return name, state, fmt_alert_value(alert, alert.value), fmt_alert_value(alert, alert.threshold)


def text_body(alert: Alert) -> str:
    """The plain-text body of an alert."""
    lines: list[str] = _recovered_line(alert)
    if alert.dropped:
        lines += [
            f"Note: {alert.dropped} earlier alert(s) were dropped: a full delivery queue, "
            "or the bounds of the outbox (see the flask_alerting log).",
            "",
        ]
    digest = _digest_lines(alert)
    if digest:
        lines += [*digest, ""]
    lines.append(alert.message or default_message(alert) or alert.title)
    lines.append("")
    facts: dict[str, Any] = {
        "Severity": alert.severity,
        "Status": alert.status,
        "Kind": alert.kind,
        "Time": _when(alert),
    }
    raised_by = origin(alert)
    if raised_by:
        facts["Raised by"] = raised_by
    if alert.value is not None:
        facts["Value"] = fmt_alert_value(alert, alert.value)
    if alert.threshold is not None:
        facts["Threshold"] = fmt_alert_value(alert, alert.threshold)
    facts["Fingerprint"] = alert.fingerprint
    lines += [f"{k}: {v}" for k, v in facts.items()]
    if alert.labels:
        lines += ["", *_section("Labels", alert.labels)]
    for key, value in alert.details.items():
        if key in _SHOWN_ELSEWHERE:
            continue
        if isinstance(value, Mapping):
            lines += ["", *_section(key.replace("_", " ").capitalize(), value)]
        elif isinstance(value, str) and "\n" in value:
            lines += ["", key.replace("_", " ").capitalize() + ":", value.rstrip()]
        else:
            lines += ["", f"{key.replace('_', ' ').capitalize()}: {_fmt(value)}"]
    if alert.traceback and alert.traceback not in alert.message:
        lines += ["", "Traceback:", alert.traceback.rstrip()]
    return cut_middle_bytes("\n".join(lines).rstrip(), MAX_TEXT_BYTES - 1) + "\n"


def html_body(alert: Alert) -> str:
    """An HTML alternative: the plain text, escaped, in a ``<pre>`` block."""
    title = html.escape(alert.title)
    text = text_body(alert)
    body = html.escape(text)
    room = MAX_HTML_BYTES - 400 - len(title.encode("utf-8")) * 2  # the markup around it
    size = len(body.encode("utf-8"))
    while size > room:
        # Escaping made it longer (``<`` is 4 characters escaped): cut the text more.
        text = cut_middle_bytes(text, int(len(text.encode("utf-8")) * room / size * 0.98))
        body = html.escape(text)
        size = len(body.encode("utf-8"))
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{title}</title></head><body>\n"
        f"<h2 style=\"font-family:sans-serif\">{title}</h2>\n"
        f"<pre style=\"white-space:pre-wrap\">{body}</pre>\n</body></html>\n"
    )


def log_line(alert: Alert) -> str:
    """The line written to the alert log (``ALERTING_LOG_FILE``).

    Errors log their title and traceback; timing and metric alerts one sentence with the
    duration or value and the threshold.
    """
    return cut_middle(_log_line(alert), MAX_LOG_TEXT, "alert")


def _log_line(alert: Alert) -> str:
    if alert.kind == "error":
        return f"{alert.title}\n{alert.traceback or alert.message}".rstrip()
    if alert.kind == "timing" and alert.value is not None and alert.threshold is not None:
        # Slow requests name themselves ("GET /path") in details["display_name"].
        function = str(
            alert.details.get("display_name") or alert.labels.get("function", alert.title)
        )
        return f"{function} took {_over(alert)}"
    if alert.kind == "metric" and alert.value is not None and alert.threshold is not None:
        name, state, value, threshold = _metric_facts(alert)
        return f"{name} {state} the threshold: Current Value: {value}, Threshold: {threshold}"
    if alert.message and alert.message != alert.title:
        return f"{alert.title}: {alert.message}"
    return alert.title
