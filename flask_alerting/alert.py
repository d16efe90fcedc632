"""The alert model: one immutable value that every source builds and every notifier reads.

Pure code: no Flask, no threads, no I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

Kind = Literal["error", "metric", "timing", "custom"]
Severity = Literal["info", "warning", "error", "critical"]
Status = Literal["firing", "resolved"]

KINDS: tuple[str, ...] = ("error", "metric", "timing", "custom")
SEVERITIES: tuple[str, ...] = ("info", "warning", "error", "critical")
STATUSES: tuple[str, ...] = ("firing", "resolved")

#: Titles longer than this are cut (with an ellipsis); they end up in subject lines.
MAX_TITLE_LENGTH = 200

def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def one_line(text: str, limit: int = MAX_TITLE_LENGTH) -> str:
    """Collapse ``text`` to one line of at most ``limit`` characters.

    Every kind of line break (CR, LF, and the Unicode ones ``str.splitlines``
    knows) becomes a space, so the result can never inject a mail header.
    """
    line = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
    # Other control characters have no place in a header either.
    line = "".join(ch if ch.isprintable() else " " for ch in line)
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "\u2026"
    return line


def make_fingerprint(*parts: object) -> str:
    """A short stable hash of ``parts``: same parts, same fingerprint, in every process."""
    digest = hashlib.sha1(usedforsecurity=False)
    for part in parts:
        digest.update(repr(part).encode("utf-8", "backslashreplace"))
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Alert:
    """Something an operator should hear about.

    Build one with keyword arguments; fields are normalised on creation (the title
    becomes one line, labels become an immutable ``str -> str`` mapping).

    :param title: one line; CR/LF and control characters are replaced by spaces.
    :param message: the body (built-in sources write one sentence or more).
    :param kind: ``"error"``, ``"metric"``, ``"timing"`` or ``"custom"``.
    :param severity: ``"info"``, ``"warning"``, ``"error"`` or ``"critical"``.
    :param labels: short facts used for grouping and routing (``app``, ``host``,
        ``exception``, ``endpoint``, ``function``, ``metric`` ...).
    :param fingerprint: alerts with the same fingerprint are throttled together;
        computed from kind, title and labels when empty.
    :param status: ``"firing"`` or ``"resolved"`` (metric rules).
    :param occurrences: how many events this alert stands for; > 1 for digests.
    :param value: the measured value (duration, percent ...), if any.
    :param threshold: the threshold it was compared with, if any.
    :param timestamp: when the alert was raised, an aware UTC datetime.
    :param first_seen: for digests, the first of the grouped events.
    :param last_seen: for digests, the last of the grouped events.
    :param details: extra structured context (already scrubbed), e.g. the request.
    :param traceback: formatted traceback text for error alerts.
    :param dropped: alerts lost to queue overflow since the last delivered one,
        told in this message so the loss is never silent.
    :param pid: the process that raised it: the one that built it, by default. It travels
        with the alert (copies, digests and stored alerts keep it), so a message that
        another process delivers still names the process the alert came from, beside the
        ``host`` label. None when unknown.
    """

    title: str
    message: str = ""
    kind: Kind = "custom"
    severity: Severity = "warning"
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    fingerprint: str = ""
    status: Status = "firing"
    occurrences: int = 1
    value: float | None = None
    threshold: float | None = None
    timestamp: datetime = dataclasses.field(default_factory=utcnow)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    traceback: str | None = None
    dropped: int = 0
    pid: int | None = dataclasses.field(default_factory=os.getpid)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.occurrences < 1:
            raise ValueError(f"occurrences must be >= 1, got {self.occurrences!r}")
        if self.timestamp.tzinfo is None:
            raise ValueError("timestamp must be an aware datetime (UTC)")
        set_ = object.__setattr__
        set_(self, "title", one_line(self.title) or "(untitled alert)")
        set_(self, "message", str(self.message))
        if not isinstance(self.labels, MappingProxyType) or any(
            not isinstance(v, str) for v in self.labels.values()
        ):
            set_(
                self,
                "labels",
                MappingProxyType({str(k): str(v) for k, v in self.labels.items()}),
            )
        if not isinstance(self.details, MappingProxyType):
            set_(self, "details", MappingProxyType(dict(self.details)))
        if self.pid is not None:
            if isinstance(self.pid, bool) or int(self.pid) < 0:
                raise ValueError(f"pid must be an int >= 0 or None, got {self.pid!r}")
            set_(self, "pid", int(self.pid))
        for name in ("value", "threshold"):
            number = getattr(self, name)
            if number is not None:
                set_(self, name, float(number))
        if self.fingerprint:
            # It travels in a mail header (X-Alert-Fingerprint): one line, bounded.
            set_(self, "fingerprint", one_line(self.fingerprint))
        if not self.fingerprint:
            set_(
                self,
                "fingerprint",
                make_fingerprint(self.kind, self.title, sorted(self.labels.items())),
            )

    def replace(self, **changes: Any) -> Alert:
        """A copy with ``changes`` applied (see :func:`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    @property
    def is_digest(self) -> bool:
        """True when this alert summarises several suppressed events."""
        return "digest" in self.details


@dataclasses.dataclass(frozen=True)
class PendingAlert:
    """An alert whose building is deferred to the dispatch thread.

    Carries what the dispatcher needs to decide without building: during an alert storm
    most occurrences are only counted into a digest, and never pay for formatting.

    :param build: builds the alert (on the dispatch thread); None for an occurrence that
        its source saw the throttle would only count (see
        :meth:`~flask_alerting.dispatch.Throttle.suppresses`): never built.
    :param fingerprint: the fingerprint the built alert will have.
    :param timestamp: when it was raised.
    :param value: the alert's value (durations of slow calls), for digest statistics.
    :param logged: already logged by its source (Flask's own ``log_exception``, or the
        log record an :class:`~flask_alerting.AlertingHandler` turned into an alert), so
        the alert log does not repeat it on propagating loggers.
    :param title: a one-line description, for a flood summary that counts the alert
        without building it (see :class:`~flask_alerting.flood.FloodGuard`).
    """

    build: Callable[[], Alert] | None
    fingerprint: str
    timestamp: datetime
    value: float | None = None
    logged: bool = False
    title: str | None = None

    def __call__(self) -> Alert | None:
        return self.build() if self.build is not None else None


#: What a source hands to the delivery pipeline: an :class:`Alert`, or a callable that
#: builds one on the dispatch thread (a :class:`PendingAlert`, or a plain builder), so that
#: formatting happens off the request path. A builder returning None sends nothing.
AlertItem: TypeAlias = "Alert | Callable[[], Alert | None]"
