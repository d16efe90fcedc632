"""flask-alerting: hear about errors, slow calls and overloaded hosts before your users do."""

from ._extension import FlaskAlerting
from .alert import Alert
from .config import ConfigurationError, ConfigVars
from .delivery import RetryPolicy
from .handler import AlertingHandler
from .notifiers import (
    AlertmanagerNotifier,
    AppriseNotifier,
    LogNotifier,
    MemoryNotifier,
    Notifier,
    SMTPNotifier,
    TransientError,
    WebhookNotifier,
)
from .signals import alert_dropped, alert_failed, alert_raised, alert_sent, alert_suppressed
from .timing import Timer
from .timing_stats import TimingStats

__all__ = [
    "Alert",
    "AlertmanagerNotifier",
    "AlertingHandler",
    "AppriseNotifier",
    "ConfigVars",
    "ConfigurationError",
    "FlaskAlerting",
    "LogNotifier",
    "MemoryNotifier",
    "Notifier",
    "RetryPolicy",
    "SMTPNotifier",
    "Timer",
    "TimingStats",
    "TransientError",
    "WebhookNotifier",
    "alert_dropped",
    "alert_failed",
    "alert_raised",
    "alert_sent",
    "alert_suppressed",
]
