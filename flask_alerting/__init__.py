"""flask-alerting: hear about errors, slow calls and overloaded hosts before your users do."""

from ._extension import FlaskAlerting
from ._worker import RetryPolicy
from .alert import Alert
from .config import ConfigurationError, ConfigVars
from .notifiers import LogNotifier, MemoryNotifier, Notifier, SMTPNotifier, TransientError
from .signals import alert_dropped, alert_failed, alert_raised, alert_sent, alert_suppressed

__all__ = [
    "Alert",
    "ConfigVars",
    "ConfigurationError",
    "FlaskAlerting",
    "LogNotifier",
    "MemoryNotifier",
    "Notifier",
    "RetryPolicy",
    "SMTPNotifier",
    "TransientError",
    "alert_dropped",
    "alert_failed",
    "alert_raised",
    "alert_sent",
    "alert_suppressed",
]
