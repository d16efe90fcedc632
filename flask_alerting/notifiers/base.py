"""The notifier interface: one required method, ``send``, plus ``close``.

Notifiers know nothing about Flask, threads or signals: the delivery worker calls
``send`` on its own thread, retries what :meth:`Notifier.is_transient` calls transient,
and reports the rest.
"""

from __future__ import annotations

import abc

from .._text import describe_exception
from ..alert import Alert


class TransientError(Exception):
    """Raise from :meth:`Notifier.send` for a failure worth retrying later.

    :param retry_after: seconds the server asked to wait before the next attempt (an
        HTTP ``Retry-After``); the worker waits at least that long. Any exception with a
        ``retry_after`` attribute (a number of seconds) is honoured the same way.
    """

    def __init__(self, *args: object, retry_after: float | None = None) -> None:
        super().__init__(*args)
        self.retry_after = retry_after


class Notifier(abc.ABC):
    """Base class of every notifier.

    Subclasses implement :meth:`send`, which raises on failure. By default,
    :class:`OSError` (connection refused, timeouts, resets) and :class:`TransientError`
    are retried with backoff; any other exception is a permanent failure, reported once.
    """

    #: A short name used in logs, thread names and ``flask alerting status``.
    name: str = "notifier"

    #: Seconds between calls of :meth:`refresh` while :meth:`pending_refresh` is true;
    #: None (the default): the notifier has nothing to refresh.
    refresh_interval: float | None = None

    @abc.abstractmethod
    def send(self, alert: Alert) -> None:
        """Deliver ``alert`` or raise."""

    def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release resources; called once at shutdown."""

    def pending_refresh(self) -> bool:
        """Whether :meth:`refresh` has something to do (checked by the delivery thread
        while it is idle; keep it cheap)."""
        return False

    def refresh(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Deliver again what a receiver must keep hearing about (e.g. alerts that are
        still firing, for a receiver that expires them otherwise).

        Called on the notifier's delivery thread, between alerts, every
        :attr:`refresh_interval` seconds while :meth:`pending_refresh` is true. A failure
        raises; it is logged and the next refresh comes one interval later.
        """

    def is_transient(self, exc: BaseException) -> bool:
        """Whether the failure ``exc`` may go away if the same alert is sent again later."""
        return isinstance(exc, (OSError, TransientError))

    def describe_error(self, exc: BaseException) -> str:
        """A one-line, secret-free description of ``exc`` for logs and the CLI."""
        return describe_exception(exc)

    def describe(self) -> str:
        """A one-line, secret-free description of this notifier's target."""
        return self.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class _Adapter(Notifier):
    """Gives an object with only ``send`` (and maybe ``close``) the full interface."""

    def __init__(self, target: object) -> None:
        self.target = target
        self.name = str(getattr(target, "name", None) or type(target).__name__.lower())

    def send(self, alert: Alert) -> None:
        self.target.send(alert)  # type: ignore[attr-defined]

    def close(self) -> None:
        close = getattr(self.target, "close", None)
        if callable(close):
            close()

    def describe(self) -> str:
        return repr(self.target)


def as_notifier(obj: object) -> Notifier:
    """``obj`` itself when it is a :class:`Notifier`, else an adapter around its ``send``.

    :raises TypeError: when ``obj`` has no callable ``send``.
    """
    if isinstance(obj, Notifier):
        return obj
    if not callable(getattr(obj, "send", None)):
        raise TypeError(f"notifier {obj!r} has no send(alert) method")
    return _Adapter(obj)
