"""Built-in notifiers."""

from .base import Notifier, TransientError
from .log import LogNotifier
from .memory import MemoryNotifier
from .smtp import SMTPNotifier

__all__ = ["LogNotifier", "MemoryNotifier", "Notifier", "SMTPNotifier", "TransientError"]
