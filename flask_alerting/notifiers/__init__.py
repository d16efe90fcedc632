"""Built-in notifiers."""

from .alertmanager import AlertmanagerNotifier
from .apprise import AppriseNotifier
from .base import Notifier, TransientError
from .log import LogNotifier
from .memory import MemoryNotifier
from .smtp import SMTPNotifier
from .webhook import WebhookNotifier

__all__ = [
    "AlertmanagerNotifier",
    "AppriseNotifier",
    "LogNotifier",
    "MemoryNotifier",
    "Notifier",
    "SMTPNotifier",
    "TransientError",
    "WebhookNotifier",
]
