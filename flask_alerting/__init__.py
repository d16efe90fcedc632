"""flask-alerting: hear about errors, slow calls and overloaded hosts before your users do."""

from ._extension import FlaskAlerting
from ._worker import RetryPolicy
from .alert import Alert
from .config import ConfigurationError, ConfigVars
from .handler import AlertingHandler
from .notifiers import LogNotifier, MemoryNotifier, Notifier, SMTPNotifier, TransientError
from .signals import alert_dropped, alert_failed, alert_raised, alert_sent, alert_suppressed
from .timing import Timer, TimingStats

__all__ = [
    "Alert",
    "AlertingHandler",
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
    "alert_dropped",
    "alert_failed",
    "alert_raised",
    "alert_sent",
    "alert_suppressed",
]
