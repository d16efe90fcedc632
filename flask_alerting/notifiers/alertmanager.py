"""Alerts pushed to Prometheus Alertmanager (API v2, ``POST /api/v2/alerts``).

Alertmanager expects its sources to keep re-sending an alert while it fires: an alert
not heard of again is resolved at its ``endsAt``. So the firing metric alerts this
notifier delivered are remembered, re-sent by :meth:`AlertmanagerNotifier.refresh` every
``resend_interval`` seconds (the delivery thread calls it when idle) with ``endsAt`` a few
intervals ahead, as Prometheus does, and forgotten when their "resolved" alert is sent
with ``endsAt`` = the time the rule resolved. Other alerts (errors, slow calls, custom
ones) have no "resolved": they are sent once, with ``endsAt`` ``event_lifetime`` seconds
after their last occurrence, and later digests of the same fingerprint extend it.
"""

from __future__ import annotations

import os
import re
import ssl
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from .._urls import MASK, is_http_url, mask_secrets, mask_url
from ..alert import Alert, utcnow
from ..render import default_message
from ._http import post_json
from .base import Notifier
from .webhook import bounded

#: The API path, appended to the configured base URL.
API_PATH = "/api/v2/alerts"
#: Characters of the ``description`` annotation sent at most.
MAX_DESCRIPTION = 4000
#: Characters of one label value sent at most.
MAX_LABEL_VALUE = 1024
#: A firing metric alert is valid for this many resend intervals (Prometheus uses 4):
#: three refreshes may fail before Alertmanager resolves it by itself.
LIFETIME_INTERVALS = 4

_INVALID_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_]")
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def label_name(key: str) -> str:
    """``key`` as a valid Prometheus label name (``[a-zA-Z_][a-zA-Z0-9_]*``)."""
    name = _INVALID_LABEL_CHARS.sub("_", key)
    if not name or name[0].isdigit():
        name = "_" + name
    return name


def alert_name(alert: Alert) -> str:
    """The ``alertname`` label: what went wrong, the same for every host and process.

    Errors: the exception class (``exception`` label); metric alerts: the rule's display
    name (``"CPU Usage"``, or the ``add_rule`` name); slow calls: ``"Slow <function>"``;
    custom alerts and anything else: the title.
    """
    labels = alert.labels
    if alert.kind == "error" and labels.get("exception"):
        return labels["exception"]
    if alert.kind == "metric":
        name = alert.details.get("display_name") or labels.get("metric")
        if name:
            return str(name)
    if alert.kind == "timing" and labels.get("function"):
        return f"Slow {labels['function']}"
    return alert.title


def _timestamp(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _generator_url(alert: Alert) -> str | None:
    request = alert.details.get("request")
    if not isinstance(request, Mapping):
        return None
    try:
        url = request.get("url")
    except Exception:
        return None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None
    # Already scrubbed; "[Filtered]", blanks and a "%" that starts no escape are not valid
    # in a URI, and Alertmanager would refuse the whole alert for it.
    url = _LONE_PERCENT.sub("%25", url)
    return urllib.parse.quote(url, safe=":/?#@!$&'()*+,;=%~")


class AlertmanagerNotifier(Notifier):
    """Pushes alerts to Prometheus Alertmanager's v2 API.

    :param url: Alertmanager's base URL (``http://alertmanager:9093``, with its route
        prefix if it has one); ``/api/v2/alerts`` is appended unless already there.
        Credentials in it (``https://user:password@...``) are never shown.
    :param timeout: seconds for connecting and for each read.
    :param resend_interval: seconds between re-sends of the firing metric alerts; each
        is valid for ``4 * resend_interval`` seconds after its last (re-)send.
    :param event_lifetime: seconds an error, slow-call or custom alert stays active
        after its last occurrence (it has no "resolved" of its own).
    :param headers: extra request headers (a bearer token for a proxy).
    :param ssl_context: default :func:`ssl.create_default_context` (verification on).
    :param wall_clock: aware UTC time (tests).

    Labels: ``alertname`` (see :func:`alert_name`), ``severity``, ``kind``, and the
    alert's own labels (``app``, ``host``, ``exception``, ``endpoint``, ``function``,
    ``metric`` ...; names made valid for Prometheus). Annotations: ``summary`` (the
    title), ``description`` (the message, bounded), ``fingerprint``, and
    ``occurrences``, ``value``, ``threshold`` when known. ``generatorURL``: the request's
    URL (scrubbed) for errors raised in a request.
    """

    name = "alertmanager"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        resend_interval: float = 60.0,
        event_lifetime: float = 300.0,
        headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        wall_clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not isinstance(url, str) or not is_http_url(url.strip()):
            shown = mask_url(url) if isinstance(url, str) else type(url).__name__
            raise ValueError(
                f"AlertmanagerNotifier needs an http:// or https:// URL, got {shown}"
            )
        for name, value in (
            ("timeout", timeout),
            ("resend_interval", resend_interval),
            ("event_lifetime", event_lifetime),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        parts = urllib.parse.urlsplit(url.strip())
        path = parts.path.rstrip("/")
        if not path.endswith(API_PATH):
            path += API_PATH
        self._url = url.strip()
        self._endpoint = urllib.parse.urlunsplit(parts._replace(path=path, fragment=""))
        self.timeout = float(timeout)
        self.refresh_interval = float(resend_interval)
        self.event_lifetime = float(event_lifetime)
        self._headers = {str(k): str(v) for k, v in (headers or {}).items()}
        self.ssl_context = ssl_context
        self.wall_clock = wall_clock
        # Label set -> the alert as posted (without endsAt), for the firing metric
        # alerts delivered by this process. Only the delivery thread changes it (send,
        # refresh), so it needs no lock (and a lock held at fork() could hang the child).
        self._firing: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        self._pid = os.getpid()

    # -- building -----------------------------------------------------------------------------

    def labels(self, alert: Alert) -> dict[str, str]:
        """The label set of ``alert`` in Alertmanager (its identity there)."""
        labels: dict[str, str] = {}
        for key, value in sorted(alert.labels.items()):
            if value:
                labels[label_name(key)] = bounded(value, MAX_LABEL_VALUE)
        labels["alertname"] = bounded(alert_name(alert), MAX_LABEL_VALUE)
        labels["severity"] = alert.severity
        labels["kind"] = alert.kind
        return labels

    def postable(self, alert: Alert) -> dict[str, Any]:
        """The alert as ``POST /api/v2/alerts`` takes it (one element of the array)."""
        now = self.wall_clock()
        annotations = {
            "summary": alert.title,
            "description": bounded(
                alert.message or default_message(alert) or alert.title, MAX_DESCRIPTION
            ),
            "fingerprint": alert.fingerprint,
        }
        if alert.occurrences > 1:
            annotations["occurrences"] = str(alert.occurrences)
        if alert.value is not None:
            annotations["value"] = f"{alert.value:g}"
        if alert.threshold is not None:
            annotations["threshold"] = f"{alert.threshold:g}"
        if alert.dropped:
            annotations["dropped"] = str(alert.dropped)
        if alert.kind == "metric":
            lasted = alert.details.get("breach_seconds")
            seconds = float(lasted) if isinstance(lasted, (int, float)) else 0.0
            starts = alert.timestamp - timedelta(seconds=max(0.0, seconds))
        else:
            starts = alert.first_seen or alert.timestamp
        if alert.status == "resolved":
            ends = max(alert.timestamp, starts)
        elif alert.kind == "metric":
            ends = max(now, alert.timestamp) + self._firing_lifetime
        else:
            last = alert.last_seen or alert.timestamp
            ends = max(now, last) + timedelta(seconds=self.event_lifetime)
        item: dict[str, Any] = {
            "labels": self.labels(alert),
            "annotations": annotations,
            "startsAt": _timestamp(starts),
            "endsAt": _timestamp(ends),
        }
        generator = _generator_url(alert)
        if generator:
            item["generatorURL"] = generator
        return item

    @property
    def _firing_lifetime(self) -> timedelta:
        return timedelta(seconds=LIFETIME_INTERVALS * (self.refresh_interval or 60.0))

    # -- sending ------------------------------------------------------------------------------

    def _post(self, items: list[dict[str, Any]]) -> None:
        post_json(
            self._endpoint,
            items,
            timeout=self.timeout,
            headers=self._headers,
            ssl_context=self.ssl_context,
        )

    def send(self, alert: Alert) -> None:
        item = self.postable(alert)
        self._post([item])
        key = tuple(sorted(item["labels"].items()))
        self._forget_parents_alerts()
        if alert.status == "resolved":
            self._firing.pop(key, None)
        elif alert.kind == "metric":
            self._firing[key] = {k: v for k, v in item.items() if k != "endsAt"}

    def pending_refresh(self) -> bool:
        self._forget_parents_alerts()
        return bool(self._firing)

    def refresh(self) -> None:
        """Re-send the firing metric alerts with ``endsAt`` moved ahead."""
        self._forget_parents_alerts()
        firing = list(self._firing.values())
        if not firing:
            return
        ends = _timestamp(self.wall_clock() + self._firing_lifetime)
        self._post([{**item, "endsAt": ends} for item in firing])

    def firing(self) -> list[dict[str, str]]:
        """The label sets of the firing metric alerts that :meth:`refresh` keeps alive."""
        self._forget_parents_alerts()
        return [dict(item["labels"]) for item in list(self._firing.values())]

    def _forget_parents_alerts(self) -> None:
        # After fork() the child must not keep alive what its parent delivered: only the
        # parent hears when those resolve.
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            self._firing.clear()

    # -- descriptions -------------------------------------------------------------------------

    def describe_error(self, exc: BaseException) -> str:
        text = mask_secrets(super().describe_error(exc), [self._url, self._endpoint])
        for value in self._headers.values():
            if len(value) >= 6:
                text = text.replace(value, MASK)
        return text

    def describe(self) -> str:
        return f"Alertmanager API v2 at {mask_url(self._url)}"
