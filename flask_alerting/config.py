"""Configuration: every ``ALERTING_*`` key, its default and its validation, in one place.

Values are read once, in ``init_app``, with the precedence
constructor argument > ``app.config`` > default. A bad value raises
:class:`ConfigurationError` naming the key and what was expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from typing import Any, Literal

from . import _parsers as parse
from ._parsers import Invalid, Parser
from ._urls import mask_scheme_only, mask_uri, mask_url

Security = Literal["ssl", "starttls", "none"]

#: Default of ALERTING_RATE_LIMIT (see :mod:`flask_alerting.flood`).
DEFAULT_RATE_LIMIT = 20
#: Each SMTP security (``ALERTING_SMTP_SECURITY``, ``SMTPNotifier(security=...)``) and
#: its usual port, the default of ``ALERTING_SMTP_PORT``: the one table of them.
SMTP_PORTS: dict[Security, int] = {"ssl": 465, "starttls": 587, "none": 25}


class ConfigurationError(ValueError):
    """A configuration value is missing or invalid. The message names the key."""

    def __init__(self, key: str, expected: str, got: object = dataclasses.MISSING) -> None:
        self.key = key
        self.expected = expected
        text = f"{key}: expected {expected}"
        if got is not dataclasses.MISSING:
            text += f", got {_short_repr(key, got)}"
        super().__init__(text)


def _short_repr(key: str, value: object) -> str:
    if "PASSWORD" in key:
        return "'***'"
    if key in _URL_KEYS:
        return _masked_urls(key, value)
    if key == ConfigVars.STORAGE_URI and isinstance(value, str):
        return repr(mask_uri(value))
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class ConfigVars:
    """Names of the configuration keys (use these instead of string literals)."""

    ENABLED = "ALERTING_ENABLED"
    SMTP_HOST = "ALERTING_SMTP_HOST"
    SMTP_PORT = "ALERTING_SMTP_PORT"
    SMTP_SECURITY = "ALERTING_SMTP_SECURITY"
    SMTP_USERNAME = "ALERTING_SMTP_USERNAME"
    SMTP_PASSWORD = "ALERTING_SMTP_PASSWORD"
    SMTP_TIMEOUT = "ALERTING_SMTP_TIMEOUT"
    SMTP_CA_FILE = "ALERTING_SMTP_CA_FILE"
    MAIL_SENDER = "ALERTING_MAIL_SENDER"
    MAIL_RECIPIENTS = "ALERTING_MAIL_RECIPIENTS"
    SUBJECT_PREFIX = "ALERTING_SUBJECT_PREFIX"
    LOG_FILE = "ALERTING_LOG_FILE"
    SLOW_THRESHOLD = "ALERTING_SLOW_THRESHOLD"
    SLOW_REQUEST_THRESHOLD = "ALERTING_SLOW_REQUEST_THRESHOLD"
    METRICS_ENABLED = "ALERTING_METRICS_ENABLED"
    CPU_THRESHOLD = "ALERTING_CPU_THRESHOLD"
    MEMORY_THRESHOLD = "ALERTING_MEMORY_THRESHOLD"
    METRICS_INTERVAL = "ALERTING_METRICS_INTERVAL"
    METRICS_FOR = "ALERTING_METRICS_FOR"
    METRICS_HYSTERESIS = "ALERTING_METRICS_HYSTERESIS"
    METRICS_REPEAT_SECONDS = "ALERTING_METRICS_REPEAT_SECONDS"
    METRICS_LOCK_FILE = "ALERTING_METRICS_LOCK_FILE"
    DISK_PATH = "ALERTING_DISK_PATH"
    DISK_THRESHOLD = "ALERTING_DISK_THRESHOLD"
    SWAP_THRESHOLD = "ALERTING_SWAP_THRESHOLD"
    RSS_THRESHOLD = "ALERTING_RSS_THRESHOLD"
    LOAD_THRESHOLD = "ALERTING_LOAD_THRESHOLD"
    THROTTLE_SECONDS = "ALERTING_THROTTLE_SECONDS"
    RATE_LIMIT = "ALERTING_RATE_LIMIT"
    QUEUE_SIZE = "ALERTING_QUEUE_SIZE"
    RETRY_SECONDS = "ALERTING_RETRY_SECONDS"
    SHUTDOWN_TIMEOUT = "ALERTING_SHUTDOWN_TIMEOUT"
    ERROR_RESPONSE = "ALERTING_ERROR_RESPONSE"
    SCRUB_FIELDS = "ALERTING_SCRUB_FIELDS"
    ALERTMANAGER_URL = "ALERTING_ALERTMANAGER_URL"
    WEBHOOK_URL = "ALERTING_WEBHOOK_URL"
    WEBHOOK_FORMAT = "ALERTING_WEBHOOK_FORMAT"
    APPRISE_URLS = "ALERTING_APPRISE_URLS"
    SHOW_COOKIE_VALUES = "ALERTING_SHOW_COOKIE_VALUES"
    STORAGE_URI = "ALERTING_STORAGE_URI"
    OUTBOX_MAX_AGE = "ALERTING_OUTBOX_MAX_AGE"
    OUTBOX_MAX_RECORDS = "ALERTING_OUTBOX_MAX_RECORDS"


#: Keys whose values are URLs that may hold credentials: shown masked.
_URL_KEYS = frozenset(
    {ConfigVars.ALERTMANAGER_URL, ConfigVars.WEBHOOK_URL, ConfigVars.APPRISE_URLS}
)


def _masked_urls(key: str, value: object) -> str:
    mask = mask_scheme_only if key == ConfigVars.APPRISE_URLS else mask_url
    if isinstance(value, str):
        return repr(mask(value))
    if isinstance(value, (list, tuple)):
        return repr([mask(v) if isinstance(v, str) else v for v in value])
    return repr(type(value).__name__)


@dataclasses.dataclass(frozen=True)
class _Key:
    name: str
    default: Any
    parse: Parser
    doc: str


#: attribute name on :class:`Config` -> key definition. ``_DYNAMIC`` defaults are
#: filled in by :func:`load_config` (they depend on other keys or on the app).
_DYNAMIC = object()
KEYS: dict[str, _Key] = {
    "enabled": _Key(ConfigVars.ENABLED, True, parse.boolean, "master switch"),
    "smtp_host": _Key(ConfigVars.SMTP_HOST, None, parse.text, "SMTP server host name"),
    "smtp_port": _Key(ConfigVars.SMTP_PORT, None, parse.port, "SMTP port"),
    "smtp_security": _Key(
        ConfigVars.SMTP_SECURITY, "ssl", parse.one_of(SMTP_PORTS), "ssl/starttls/none"
    ),
    "smtp_username": _Key(ConfigVars.SMTP_USERNAME, None, parse.text, "SMTP login"),
    "smtp_password": _Key(ConfigVars.SMTP_PASSWORD, _DYNAMIC, parse.secret, "SMTP password"),
    "smtp_timeout": _Key(ConfigVars.SMTP_TIMEOUT, 10.0, parse.positive, "SMTP socket timeout"),
    "smtp_ca_file": _Key(ConfigVars.SMTP_CA_FILE, None, parse.existing_file, "private CA (PEM)"),
    "mail_sender": _Key(ConfigVars.MAIL_SENDER, None, parse.sender, "From address"),
    "mail_recipients": _Key(ConfigVars.MAIL_RECIPIENTS, None, parse.recipients, "To addresses"),
    "subject_prefix": _Key(ConfigVars.SUBJECT_PREFIX, _DYNAMIC, parse.text, "subject prefix"),
    "log_file": _Key(ConfigVars.LOG_FILE, None, parse.writable_file, "alert log file"),
    "slow_threshold": _Key(
        ConfigVars.SLOW_THRESHOLD, 2.0, parse.positive, "default timed threshold"
    ),
    "slow_request_threshold": _Key(
        ConfigVars.SLOW_REQUEST_THRESHOLD,
        None,
        parse.optional(parse.positive),
        "slow request threshold",
    ),
    "metrics_enabled": _Key(ConfigVars.METRICS_ENABLED, _DYNAMIC, parse.boolean, "metrics sampler"),
    "cpu_threshold": _Key(
        ConfigVars.CPU_THRESHOLD,
        80.0,
        parse.optional(parse.percent),
        "CPU percent (None: rule off)",
    ),
    "memory_threshold": _Key(
        ConfigVars.MEMORY_THRESHOLD,
        80.0,
        parse.optional(parse.percent),
        "memory percent (None: off)",
    ),
    "metrics_interval": _Key(ConfigVars.METRICS_INTERVAL, 5.0, parse.positive, "sampling interval"),
    "metrics_for": _Key(ConfigVars.METRICS_FOR, 30.0, parse.non_negative, "breach duration"),
    "metrics_hysteresis": _Key(
        ConfigVars.METRICS_HYSTERESIS, 5.0, parse.percent, "points below threshold to resolve"
    ),
    "metrics_repeat_seconds": _Key(
        ConfigVars.METRICS_REPEAT_SECONDS, 3600.0, parse.positive, "reminder interval"
    ),
    "metrics_lock_file": _Key(
        ConfigVars.METRICS_LOCK_FILE, None, parse.file, "lock file electing the sampling process"
    ),
    "disk_path": _Key(ConfigVars.DISK_PATH, "/", parse.existing_path, "path of the disk rule"),
    "disk_threshold": _Key(
        ConfigVars.DISK_THRESHOLD,
        None,
        parse.optional(parse.percent),
        "disk percent used (None: off)",
    ),
    "swap_threshold": _Key(
        ConfigVars.SWAP_THRESHOLD,
        None,
        parse.optional(parse.percent),
        "swap percent used (None: off)",
    ),
    "rss_threshold": _Key(
        ConfigVars.RSS_THRESHOLD, None, parse.optional(parse.positive_amount), "process RSS, MiB"
    ),
    "load_threshold": _Key(
        ConfigVars.LOAD_THRESHOLD,
        None,
        parse.optional(parse.positive_amount),
        "1-min load per core",
    ),
    "throttle_seconds": _Key(ConfigVars.THROTTLE_SECONDS, 300.0, parse.non_negative, "throttle"),
    "rate_limit": _Key(
        ConfigVars.RATE_LIMIT, DEFAULT_RATE_LIMIT, parse.rate_limit, "alerts a minute per notifier"
    ),
    "queue_size": _Key(ConfigVars.QUEUE_SIZE, 1000, parse.int_at_least(1), "delivery queue bound"),
    "retry_seconds": _Key(ConfigVars.RETRY_SECONDS, 3600.0, parse.non_negative, "retry period"),
    "shutdown_timeout": _Key(
        ConfigVars.SHUTDOWN_TIMEOUT, 5.0, parse.non_negative, "flush time at exit"
    ),
    "error_response": _Key(
        ConfigVars.ERROR_RESPONSE, None, parse.error_response, "500 body (None: Flask's own)"
    ),
    "scrub_fields": _Key(
        ConfigVars.SCRUB_FIELDS, (), parse.field_names, "more names whose values are filtered"
    ),
    "alertmanager_url": _Key(
        ConfigVars.ALERTMANAGER_URL, None, parse.http_url, "Prometheus Alertmanager base URL"
    ),
    "webhook_url": _Key(ConfigVars.WEBHOOK_URL, None, parse.http_url, "webhook URL"),
    "webhook_format": _Key(
        ConfigVars.WEBHOOK_FORMAT, "json", parse.one_of(("json", "slack")), "json/slack"
    ),
    "apprise_urls": _Key(ConfigVars.APPRISE_URLS, (), parse.url_list, "Apprise URLs"),
    "show_cookie_values": _Key(
        ConfigVars.SHOW_COOKIE_VALUES, False, parse.boolean, "cookie values in alerts (scrubbed)"
    ),
    "storage_uri": _Key(
        ConfigVars.STORAGE_URI, _DYNAMIC, parse.storage_uri, "where throttle windows live"
    ),
    "outbox_max_age": _Key(
        ConfigVars.OUTBOX_MAX_AGE, 86_400.0, parse.positive, "seconds an undelivered alert is kept"
    ),
    "outbox_max_records": _Key(
        ConfigVars.OUTBOX_MAX_RECORDS, 10_000, parse.int_at_least(1), "undelivered alerts kept"
    ),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """The validated configuration of one app (read-only)."""

    enabled: bool
    smtp_host: str | None
    smtp_port: int | None
    smtp_security: Security
    smtp_username: str | None
    smtp_password: str | None = dataclasses.field(repr=False)  # never in a repr or log
    smtp_timeout: float
    smtp_ca_file: str | None
    mail_sender: str | None
    mail_recipients: tuple[str, ...]
    subject_prefix: str
    log_file: str | None
    slow_threshold: float
    slow_request_threshold: float | None
    metrics_enabled: bool
    cpu_threshold: float | None
    memory_threshold: float | None
    metrics_interval: float
    metrics_for: float
    metrics_hysteresis: float
    metrics_repeat_seconds: float
    metrics_lock_file: str | None
    disk_path: str
    disk_threshold: float | None
    swap_threshold: float | None
    rss_threshold: float | None
    load_threshold: float | None
    throttle_seconds: float
    rate_limit: int | None
    queue_size: int
    retry_seconds: float
    shutdown_timeout: float
    error_response: str | None
    scrub_fields: tuple[str, ...]
    # URLs often hold their credentials: never in a repr.
    alertmanager_url: str | None = dataclasses.field(repr=False)
    webhook_url: str | None = dataclasses.field(repr=False)
    webhook_format: str
    apprise_urls: tuple[str, ...] = dataclasses.field(repr=False)
    show_cookie_values: bool
    #: None: the per-host default store (a SQLite file beside the metrics lock file);
    #: else the URI as given (checked by the store when the state is built).
    storage_uri: str | None = dataclasses.field(repr=False)
    outbox_max_age: float
    outbox_max_records: int

    def as_public_dict(self) -> dict[str, Any]:
        """Key name -> effective value, with secrets masked (for ``flask alerting status``)."""
        out: dict[str, Any] = {}
        for attr, key in KEYS.items():
            value = getattr(self, attr)
            if attr == "smtp_password" and value:
                value = "***"
            elif attr == "apprise_urls":
                value = tuple(map(mask_scheme_only, value))
            elif key.name in _URL_KEYS and value:
                value = mask_url(value)
            elif attr == "storage_uri" and value:
                value = mask_uri(value)
            out[key.name] = value
        return out


def option_name(key: str) -> str:
    """``ALERTING_THROTTLE_SECONDS`` -> ``throttle_seconds`` (the constructor keyword)."""
    return key.removeprefix("ALERTING_").lower()


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse constructor keywords that name no configuration key (typos).

    :raises TypeError: listing the unknown names, with the closest known one.
    """
    unknown = sorted(set(options) - set(KEYS))
    if unknown:
        hints = [
            f"{name} (did you mean {close[0]}?)" if close else name
            for name in unknown
            for close in [difflib.get_close_matches(name, KEYS, n=1)]
        ]
        raise TypeError(f"unknown FlaskAlerting option(s): {', '.join(hints)}")


def known_keys() -> frozenset[str]:
    """Every ``ALERTING_*`` name of :class:`ConfigVars`."""
    return frozenset(
        value
        for name, value in vars(ConfigVars).items()
        if name.isupper() and isinstance(value, str) and value.startswith("ALERTING_")
    )


def unknown_keys(app_config: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """``ALERTING_*`` keys of ``app_config`` that :class:`ConfigVars` does not name
    (typos such as ``ALERTING_SMTP_HOTS``), each with the closest known key or None."""
    known = known_keys()
    # Compared without the prefix, which every key shares.
    suffixes = {key.removeprefix("ALERTING_"): key for key in known}
    found = []
    for key in app_config:
        if isinstance(key, str) and key.startswith("ALERTING_") and key not in known:
            close = difflib.get_close_matches(key.removeprefix("ALERTING_"), suffixes, n=1)
            found.append((key, suffixes[close[0]] if close else None))
    return sorted(found)


def load_config(
    app_config: Mapping[str, Any],
    overrides: Mapping[str, Any],
    *,
    app_name: str,
    testing: bool,
) -> Config:
    """Validate and merge the configuration of one app.

    :param app_config: ``app.config``.
    :param overrides: constructor keywords (``throttle_seconds=...``), which win.
    :param app_name: used for the default subject prefix.
    :param testing: ``app.testing``; turns the metrics sampler off by default, and makes
        the default store ``memory://``.
    :raises ConfigurationError: naming the first bad key.
    """
    check_options(overrides)
    values: dict[str, Any] = {}
    for attr, key in KEYS.items():
        if attr in overrides:
            raw = overrides[attr]
        elif key.name in app_config:
            raw = app_config[key.name]
        else:
            raw = key.default
        if raw is _DYNAMIC:
            values[attr] = _DYNAMIC
            continue
        try:
            values[attr] = key.parse(raw)
        except Invalid as exc:
            raise ConfigurationError(key.name, exc.expected, raw) from None

    if values["smtp_password"] is _DYNAMIC:
        values["smtp_password"] = os.environ.get("EMAIL_PASSWORD")
    if values["subject_prefix"] is _DYNAMIC:
        values["subject_prefix"] = f"[{app_name}]"
    if values["metrics_enabled"] is _DYNAMIC:
        values["metrics_enabled"] = not testing
    if values["storage_uri"] is _DYNAMIC:
        # Tests of an app run in one process, with its sampler off: nothing to share.
        values["storage_uri"] = "memory://" if testing else None
    if values["smtp_host"] is not None:
        if values["smtp_port"] is None:
            values["smtp_port"] = SMTP_PORTS[values["smtp_security"]]
        if values["mail_sender"] is None:
            raise ConfigurationError(
                ConfigVars.MAIL_SENDER, "a sender address when ALERTING_SMTP_HOST is set"
            )
        if not values["mail_recipients"]:
            raise ConfigurationError(
                ConfigVars.MAIL_RECIPIENTS,
                "at least one recipient when ALERTING_SMTP_HOST is set",
            )
    return Config(**values)
