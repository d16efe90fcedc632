"""The notifiers that configuration keys ask for."""

from __future__ import annotations

import ssl

from ..config import Config, ConfigurationError, ConfigVars
from .alertmanager import AlertmanagerNotifier
from .apprise import AppriseNotifier
from .base import Notifier
from .smtp import SMTPNotifier
from .webhook import WebhookNotifier


def notifiers_from_config(config: Config) -> list[Notifier]:
    """One notifier per channel configured: SMTP (:data:`ALERTING_SMTP_HOST` and the
    keys that go with it), :data:`ALERTING_ALERTMANAGER_URL`,
    :data:`ALERTING_WEBHOOK_URL` (and :data:`ALERTING_WEBHOOK_FORMAT`) and
    :data:`ALERTING_APPRISE_URLS`, in that order.

    :raises ConfigurationError: for a value the notifier refuses.
    :raises ImportError: when Apprise URLs are set but Apprise is not installed.
    """
    built: list[Notifier] = []
    if config.smtp_host:
        built.append(smtp_from_config(config))
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


def smtp_from_config(config: Config) -> SMTPNotifier:
    """The :class:`SMTPNotifier` of the ``ALERTING_SMTP_*`` and ``ALERTING_MAIL_*`` keys
    (``ALERTING_SMTP_HOST`` is set).

    :raises ConfigurationError: when ``ALERTING_SMTP_CA_FILE`` holds no CA certificate.
    """
    ssl_context = None
    if config.smtp_ca_file:
        try:
            ssl_context = ssl.create_default_context(cafile=config.smtp_ca_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigurationError(
                ConfigVars.SMTP_CA_FILE, f"a readable PEM file of CA certificates ({exc})"
            ) from exc
    assert config.smtp_host is not None and config.mail_sender is not None
    return SMTPNotifier(
        config.smtp_host,
        config.smtp_port,
        security=config.smtp_security,
        username=config.smtp_username,
        password=config.smtp_password,
        sender=config.mail_sender,
        recipients=config.mail_recipients,
        timeout=config.smtp_timeout,
        ssl_context=ssl_context,
        subject_prefix=config.subject_prefix,
    )
