"""Alerts as HTTP POSTs: the alert as a documented JSON object, or a Slack/Mattermost
message. Standard library only (:mod:`urllib.request`)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .._urls import MASK, is_http_url, mask_secrets, mask_url
from ..alert import Alert
from ..render import default_message, subject, text_body
from ._http import post_json
from .base import Notifier

FORMATS = ("json", "slack")

#: Characters of the message (``"json"``) or of the whole text (``"slack"``) sent at most;
#: Slack shows about this much of a message before "Show more", Mattermost accepts 16383.
MAX_MESSAGE_LENGTH = 4000

#: What a Slack/Mattermost message starts with, per severity (and for resolved alerts).
ICONS = {
    "info": ":information_source:",
    "warning": ":warning:",
    "error": ":x:",
    "critical": ":rotating_light:",
    "resolved": ":white_check_mark:",
}


def bounded(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    suffix = f"\n\u2026 [{len(text)} characters, cut]"
    return text[: max(0, limit - len(suffix))].rstrip() + suffix


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def alert_json(alert: Alert, max_length: int = MAX_MESSAGE_LENGTH) -> dict[str, Any]:
    """The alert as the JSON object that the ``"json"`` format POSTs.

    ``title``, ``message`` (the alert's text, at most ``max_length`` characters),
    ``severity``, ``kind``, ``status``, ``labels``, ``fingerprint``, ``occurrences``,
    ``value``, ``threshold`` (numbers or null), ``timestamp`` (ISO 8601, UTC),
    ``first_seen`` and ``last_seen`` (ISO 8601 for digests, else null), ``dropped``
    (alerts lost to a full queue since the last delivered one) and ``pid`` (the process
    that raised it, on the host of the ``host`` label; null when unknown).
    """
    return {
        "title": alert.title,
        "message": bounded(alert.message or default_message(alert) or alert.title, max_length),
        "severity": alert.severity,
        "kind": alert.kind,
        "status": alert.status,
        "labels": dict(alert.labels),
        "fingerprint": alert.fingerprint,
        "occurrences": alert.occurrences,
        "value": alert.value,
        "threshold": alert.threshold,
        "timestamp": _iso(alert.timestamp),
        "first_seen": _iso(alert.first_seen),
        "last_seen": _iso(alert.last_seen),
        "dropped": alert.dropped,
        "pid": alert.pid,
    }


def _slack_escape(text: str) -> str:
    # Slack reads <...> as links and mentions (<!channel>); Mattermost pings on
    # @channel / @all: neither may come from an exception message.
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("@", "@\u200b")


def slack_text(alert: Alert, max_length: int = MAX_MESSAGE_LENGTH) -> str:
    """The ``text`` of the ``"slack"`` format: an icon and the subject in bold, then the
    alert's plain-text body in a code block, at most ``max_length`` characters in all."""
    icon = ICONS["resolved" if alert.status == "resolved" else alert.severity]
    head = f"{icon} *{_slack_escape(subject(alert, None))}*"
    body = _slack_escape(text_body(alert).rstrip().replace("```", "'''"))
    room = max(0, max_length - len(head) - len("\n```\n\n```"))
    return f"{head}\n```\n{bounded(body, room)}\n```"


class WebhookNotifier(Notifier):
    """POSTs each alert to an HTTP(S) URL.

    :param url: ``http://`` or ``https://``; its credentials (user info, path, query)
        never appear in logs, errors or :meth:`describe`.
    :param format: ``"json"``: the alert as a JSON object (see :func:`alert_json`);
        ``"slack"``: a Slack- or Mattermost-compatible ``{"text": ...}`` message for an
        incoming webhook.
    :param timeout: seconds for connecting and for each read.
    :param headers: extra request headers (``{"Authorization": "Bearer ..."}``); their
        values are masked in error descriptions.
    :param ssl_context: default :func:`ssl.create_default_context` (verification on).
    :param max_length: characters of message text sent at most.

    Connection errors, timeouts, HTTP 408, 429 and 5xx are transient (retried, no
    sooner than a ``Retry-After`` asks); other answers outside 2xx, including redirects,
    are permanent.
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        format: str = "json",
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_length: int = MAX_MESSAGE_LENGTH,
    ) -> None:
        if not isinstance(url, str) or not is_http_url(url.strip()):
            shown = mask_url(url) if isinstance(url, str) else type(url).__name__
            raise ValueError(f"WebhookNotifier needs an http:// or https:// URL, got {shown}")
        if format not in FORMATS:
            raise ValueError(f"format must be 'json' or 'slack', got {format!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        if max_length < 100:
            raise ValueError(f"max_length must be >= 100, got {max_length!r}")
        clean_headers = {str(k): str(v) for k, v in (headers or {}).items()}
        for key, value in clean_headers.items():
            if any(ch in key + value for ch in "\r\n\0"):
                raise ValueError(f"header {key!r} contains a line break")
        self._url = url.strip()
        self.format = format
        self.timeout = float(timeout)
        self._headers = clean_headers
        self.ssl_context = ssl_context
        self.max_length = max_length

    def payload(self, alert: Alert) -> dict[str, Any]:
        """The JSON document :meth:`send` POSTs for ``alert``."""
        if self.format == "slack":
            return {"text": slack_text(alert, self.max_length)}
        return alert_json(alert, self.max_length)

    def send(self, alert: Alert) -> None:
        post_json(
            self._url,
            self.payload(alert),
            timeout=self.timeout,
            headers=self._headers,
            ssl_context=self.ssl_context,
        )

    def describe_error(self, exc: BaseException) -> str:
        text = mask_secrets(super().describe_error(exc), [self._url])
        for value in self._headers.values():
            if len(value) >= 6:
                text = text.replace(value, MASK)
        return text

    def describe(self) -> str:
        return f"{self.format} POST to {mask_url(self._url)}"
