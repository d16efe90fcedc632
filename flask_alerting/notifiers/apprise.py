"""Alerts to every service Apprise knows (Slack, Microsoft Teams, Discord, Telegram,
Matrix, PagerDuty, ntfy, e-mail ...), through Apprise URLs.

Needs the optional ``apprise`` package (``pip install flask-alerting[apprise]``); this
module imports without it, and :class:`AppriseNotifier` says what to install when it is
missing.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable
from datetime import datetime
from types import ModuleType
from typing import Any

from .._urls import mask_scheme_only as masked
from .._urls import mask_secrets, split_urls
from ..alert import Alert
from ..render import subject, text_body
from .base import Notifier, TransientError
from .webhook import bounded

INSTALL_HINT = "pip install flask-alerting[apprise]"

#: Characters of the body handed to Apprise at most (it splits or cuts further for
#: services with smaller limits).
MAX_BODY = 4000

#: Apprise's notification type (its colour or icon in most services) per severity.
NOTIFY_TYPES = {
    "info": "info",
    "warning": "warning",
    "error": "failure",
    "critical": "failure",
    "resolved": "success",
}


def import_apprise() -> ModuleType:
    """The ``apprise`` module.

    :raises ImportError: naming the extra to install, when it is missing.
    """
    try:
        return importlib.import_module("apprise")
    except ImportError as exc:
        raise ImportError(
            f"AppriseNotifier needs the apprise package: {INSTALL_HINT}"
        ) from exc


@dataclasses.dataclass(frozen=True)
class _Target:
    url: str
    apprise: Any  # apprise.Apprise holding this one URL
    label: str  # "Slack (slack://***)"


class AppriseNotifier(Notifier):
    """Sends each alert through Apprise to one or more services.

    :param urls: Apprise URLs (``slack://...``, ``msteams://...``, ``tgram://...``,
        ``ntfys://...``, ``json://...``): a list, or one string with the URLs separated
        by commas or blanks.
    :raises ImportError: when Apprise is not installed.
    :raises ValueError: for a URL Apprise does not recognise.

    The title is the alert's subject line (``[app] ...``), the body its plain text; the
    severity picks Apprise's notification type (info, warning, failure; success for a
    resolved alert). Each URL is notified on its own: when some fail, the retry goes to
    those only, so the others do not get the alert twice.

    Apprise's ``notify()`` only says whether delivery worked, not why it did not, so
    every failure counts as transient and is retried for ``ALERTING_RETRY_SECONDS``
    (a wrong token too): the reason is in Apprise's own log (logger ``apprise``).
    """

    name = "apprise"

    def __init__(self, urls: str | Iterable[str]) -> None:
        apprise = import_apprise()
        if isinstance(urls, str):
            urls = split_urls(urls)
        self._apprise = apprise
        targets = []
        for url in urls:
            if not isinstance(url, str) or not url.strip():
                raise ValueError(f"Apprise URLs must be non-empty strings, got {url!r}")
            url = url.strip()
            instance = apprise.Apprise()
            if not instance.add(url):
                raise ValueError(f"Apprise does not recognise the URL {masked(url)}")
            service = getattr(instance[0], "service_name", None) or url.partition("://")[0]
            targets.append(_Target(url, instance, f"{service} ({masked(url)})"))
        if not targets:
            raise ValueError("AppriseNotifier needs at least one URL")
        self._targets = tuple(targets)
        # The alert being retried, and the targets that already have it.
        self._partial: tuple[tuple[str, datetime, int, str], set[int]] | None = None

    def send(self, alert: Alert) -> None:
        key = (alert.fingerprint, alert.timestamp, alert.occurrences, alert.status)
        partial = self._partial
        done = set(partial[1]) if partial is not None and partial[0] == key else set()
        apprise = self._apprise
        notify_type = NOTIFY_TYPES["resolved" if alert.status == "resolved" else alert.severity]
        title = subject(alert, None)
        body = bounded(text_body(alert).rstrip(), MAX_BODY)
        failed: list[str] = []
        for index, target in enumerate(self._targets):
            if index in done:
                continue
            try:
                ok = bool(
                    target.apprise.notify(
                        body=body,
                        title=title,
                        notify_type=apprise.NotifyType(notify_type),
                        body_format=apprise.NotifyFormat.TEXT,
                    )
                )
            except Exception as exc:  # a plugin's bug must not cost the other targets
                ok = False
                failed.append(f"{target.label}: {type(exc).__name__}")
            else:
                if not ok:
                    failed.append(target.label)
            if ok:
                done.add(index)
        if failed:
            self._partial = (key, done)
            raise TransientError(
                f"Apprise could not notify {', '.join(failed)}"
                + (f" ({len(done)} other(s) notified)" if done else "")
                + "; the reason is in the 'apprise' logger"
            )
        self._partial = None

    def describe_error(self, exc: BaseException) -> str:
        return mask_secrets(super().describe_error(exc), [t.url for t in self._targets])

    def describe(self) -> str:
        return "Apprise: " + ", ".join(target.label for target in self._targets)
