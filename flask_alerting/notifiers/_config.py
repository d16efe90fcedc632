"""The notifiers that configuration keys ask for, besides SMTP."""

from __future__ import annotations

from ..config import Config, ConfigurationError, ConfigVars
from .alertmanager import AlertmanagerNotifier
from .apprise import AppriseNotifier
from .base import Notifier
from .webhook import WebhookNotifier


def notifiers_from_config(config: Config) -> list[Notifier]:
    """One notifier per channel configured with :data:`ALERTING_ALERTMANAGER_URL`,
    :data:`ALERTING_WEBHOOK_URL` (and :data:`ALERTING_WEBHOOK_FORMAT`) and
    :data:`ALERTING_APPRISE_URLS`, in that order.

    :raises ConfigurationError: for a URL the notifier refuses.
    :raises ImportError: when Apprise URLs are set but Apprise is not installed.
    """
    built: list[Notifier] = []
    try:
        key = ConfigVars.ALERTMANAGER_URL
        if config.alertmanager_url:
            built.append(AlertmanagerNotifier(config.alertmanager_url))
        key = ConfigVars.WEBHOOK_URL
        if config.webhook_url:
            built.append(WebhookNotifier(config.webhook_url, format=config.webhook_format))
        key = ConfigVars.APPRISE_URLS
        if config.apprise_urls:
            built.append(AppriseNotifier(config.apprise_urls))
    except ImportError as exc:
        raise ImportError(f"{key} is set, but {exc}") from None
    except ValueError as exc:
        raise ConfigurationError(key, f"a valid value ({exc})") from None
    return built
