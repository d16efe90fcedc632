"""A JSON codec for :class:`~flask_alerting.alert.Alert`: how alerts live in a store.

:func:`encode_alert` writes every field; :func:`decode_alert` reads it back to an equal
alert. ``details`` is rendered to plain JSON on the way in: mappings (including lazy ones
such as the request section of error alerts, which render on first use) become objects with
string keys, sequences and sets become arrays, datetimes become ISO 8601 strings, numbers
that JSON cannot hold (NaN, infinities) and any other object become their ``str``. So an
alert whose details are plain JSON round-trips exactly; others come back as what a notifier
would have shown.

The encoded text is bounded (:data:`MAX_BYTES` by default): strings inside ``details`` are
cut at :data:`MAX_STRING`, containers at :data:`MAX_ITEMS` entries and :data:`MAX_DEPTH`
levels; if the alert is still too big, the traceback keeps its head and its end (where the
error is), then the message is cut, then ``details`` is replaced by a note. Every cut is
marked in the text, so nothing is cut silently.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence, Set
from datetime import date, datetime, time
from typing import Any

from ..alert import Alert
from .errors import StoreError

#: Format version written in every encoded alert.
VERSION = 1
#: Default bound of an encoded alert, in bytes of UTF-8.
MAX_BYTES = 64 * 1024
#: Longest string kept inside ``details``.
MAX_STRING = 4096
#: Most entries kept per mapping or sequence inside ``details``.
MAX_ITEMS = 200
#: Deepest nesting kept inside ``details``.
MAX_DEPTH = 8

_DATETIMES = ("timestamp", "first_seen", "last_seen")


class CodecError(StoreError):
    """Stored text that is not an encoded alert (corrupt, or written by a newer version)."""


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    note = f"\u2026 [{len(text) - limit} characters cut]"
    return text[:limit] + note


def _cut_middle(text: str, limit: int) -> str:
    """Keep the head and the end of ``text`` (a traceback ends with the error)."""
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head
    return f"{text[:head]}\n\u2026 [{len(text) - limit} characters cut] \u2026\n{text[-tail:]}"


def to_json(value: Any, depth: int = 0) -> Any:
    """``value`` as plain JSON data (see the module docstring), bounded."""
    if value is None or isinstance(value, (bool, int, str)):
        return _cut(value, MAX_STRING) if isinstance(value, str) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if depth >= MAX_DEPTH:
        return _cut(_safe_str(value), MAX_STRING)
    if isinstance(value, Mapping):
        try:
            items = list(value.items())
        except Exception:  # a lazy mapping that cannot render: say so, never fail
            return {"unavailable": f"could not be rendered: {_safe_str(value)[:200]}"}
        out = {
            _cut(str(key), MAX_STRING): to_json(item, depth + 1)
            for key, item in items[:MAX_ITEMS]
        }
        if len(items) > MAX_ITEMS:
            out["\u2026"] = f"{len(items) - MAX_ITEMS} more entries cut"
        return out
    if isinstance(value, (Sequence, Set)) and not isinstance(value, (bytes, bytearray)):
        seq = list(value)
        out_list = [to_json(item, depth + 1) for item in seq[:MAX_ITEMS]]
        if len(seq) > MAX_ITEMS:
            out_list.append(f"\u2026 {len(seq) - MAX_ITEMS} more items cut")
        return out_list
    if isinstance(value, (bytes, bytearray)):
        return _cut(bytes(value).decode("utf-8", "backslashreplace"), MAX_STRING)
    return _cut(_safe_str(value), MAX_STRING)


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    """Every field of ``alert`` as plain JSON data."""
    return {
        "v": VERSION,
        "title": alert.title,
        "message": alert.message,
        "kind": alert.kind,
        "severity": alert.severity,
        "labels": dict(alert.labels),
        "fingerprint": alert.fingerprint,
        "status": alert.status,
        "occurrences": alert.occurrences,
        "value": to_json(alert.value),
        "threshold": to_json(alert.threshold),
        "timestamp": alert.timestamp.isoformat(),
        "first_seen": alert.first_seen.isoformat() if alert.first_seen else None,
        "last_seen": alert.last_seen.isoformat() if alert.last_seen else None,
        "details": to_json(alert.details),
        "traceback": alert.traceback,
        "dropped": alert.dropped,
        "pid": alert.pid,
    }


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_alert(alert: Alert, *, max_bytes: int = MAX_BYTES) -> str:
    """``alert`` as JSON text of at most ``max_bytes`` UTF-8 bytes (see the module doc)."""
    data = alert_to_dict(alert)
    text = _dumps(data)
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    # Too big: give up, in order, the middle of the traceback, the message's tail, the
    # details, the labels. Each step is measured again.
    budget = max(256, max_bytes // 4)
    steps: list[tuple[str, Any]] = [
        ("traceback", lambda t: _cut_middle(t, budget) if t else t),
        ("message", lambda m: _cut(m, budget)),
        ("details", lambda _d: {"cut": "the details did not fit the store's size bound"}),
        ("traceback", lambda t: _cut_middle(t, budget // 8) if t else t),
        ("message", lambda m: _cut(m, budget // 8)),
        ("labels", lambda labels: {k[:100]: v[:100] for k, v in list(labels.items())[:20]}),
    ]
    for field, shrink in steps:
        data[field] = shrink(data[field])
        text = _dumps(data)
        if len(text.encode("utf-8")) <= max_bytes:
            return text
    raise StoreError(f"an alert does not fit in {max_bytes} bytes even when cut")


def _datetime(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CodecError(f"stored alert: {field} is not an ISO 8601 string")
    return datetime.fromisoformat(value)


def decode_alert(text: str) -> Alert:
    """The alert that :func:`encode_alert` encoded; :class:`CodecError` for anything else."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise CodecError("a stored alert is not a JSON object")
        if data.get("v") != VERSION:
            raise CodecError(f"stored alert format {data.get('v')!r} is not {VERSION}")
        fields: dict[str, Any] = {k: v for k, v in data.items() if k != "v"}
        # The raising process, not the reading one (unknown in records without it).
        fields.setdefault("pid", None)
        for name in _DATETIMES:
            fields[name] = _datetime(fields.get(name), name)
        return Alert(**fields)
    except CodecError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise CodecError(f"a stored alert could not be read: {exc}") from exc


def decode_or_none(text: str | None) -> Alert | None:
    """:func:`decode_alert`, or None for no text or text that is not an encoded alert
    (a stored record must still be deliverable, or at least deletable)."""
    try:
        return decode_alert(text) if text else None
    except CodecError:
        return None
