"""E-mail alerts through :mod:`smtplib`."""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from ..alert import Alert
from ..render import html_body, subject, text_body
from .base import Notifier

DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}


class SMTPNotifier(Notifier):
    """Sends each alert as one e-mail (plain text plus an escaped HTML alternative).

    :param host: SMTP server.
    :param port: default 465 for ``"ssl"``, 587 for ``"starttls"``, 25 for ``"none"``.
    :param security: ``"ssl"`` (implicit TLS), ``"starttls"`` or ``"none"``.
    :param username: log in only when set.
    :param password: default: the ``EMAIL_PASSWORD`` environment variable (as the seed).
    :param sender: the From address.
    :param recipients: one address, or several.
    :param timeout: socket timeout in seconds.
    :param ssl_context: default :func:`ssl.create_default_context`, which verifies the
        server's certificate and host name.
    :param subject_prefix: ``None`` means ``"[<alert's app label>]"``.

    Connection problems, timeouts and 4xx replies are transient (retried by the worker);
    authentication failures, refused sender or recipients and certificate errors are
    permanent. The password never appears in ``repr``, logs or error descriptions.
    """

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        security: str = "ssl",
        username: str | None = None,
        password: str | None = None,
        sender: str,
        recipients: str | Iterable[str],
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        subject_prefix: str | None = None,
    ) -> None:
        if security not in DEFAULT_PORTS:
            raise ValueError(f"security must be 'ssl', 'starttls' or 'none', got {security!r}")
        if isinstance(recipients, str):
            recipients = [r for r in (p.strip() for p in recipients.split(",")) if r]
        self.recipients = tuple(recipients)
        if not self.recipients:
            raise ValueError("SMTPNotifier needs at least one recipient")
        if not sender:
            raise ValueError("SMTPNotifier needs a sender address")
        self.host = host
        self.port = port if port is not None else DEFAULT_PORTS[security]
        self.security = security
        self.username = username
        if password is None and username is not None:
            password = os.environ.get("EMAIL_PASSWORD")
        self._password = password
        self.sender = sender
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.subject_prefix = subject_prefix

    # -- building ---------------------------------------------------------------------------

    def build_message(self, alert: Alert) -> EmailMessage:
        """The :class:`~email.message.EmailMessage` that :meth:`send` would send."""
        msg = EmailMessage()
        msg["Subject"] = subject(alert, self.subject_prefix)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = format_datetime(alert.timestamp)
        domain = self.sender.rpartition("@")[2] or "localhost"
        # make_msgid's default domain is socket.getfqdn(), which can block on DNS.
        msg["Message-ID"] = make_msgid(domain=domain)
        msg["X-Alert-Fingerprint"] = alert.fingerprint
        msg["X-Alert-Severity"] = alert.severity
        msg.set_content(text_body(alert))
        msg.add_alternative(html_body(alert), subtype="html")
        return msg

    # -- sending ----------------------------------------------------------------------------

    def _context(self) -> ssl.SSLContext:
        return self.ssl_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self._context()
            )
        client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                client.ehlo()
                client.starttls(context=self._context())
                client.ehlo()
        except BaseException:
            client.close()
            raise
        return client

    def send(self, alert: Alert) -> None:
        message = self.build_message(alert)
        with self._connect() as client:
            if self.username is not None:
                client.login(self.username, self._password or "")
            client.send_message(message, from_addr=self.sender, to_addrs=list(self.recipients))

    # -- failure classification -------------------------------------------------------------

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, (smtplib.SMTPAuthenticationError, ssl.SSLCertVerificationError)):
            return False
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = [code for code, _ in exc.recipients.values()]
            return bool(codes) and all(400 <= code < 500 for code in codes)
        if isinstance(exc, smtplib.SMTPResponseException):
            return 400 <= exc.smtp_code < 500
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return False
        if isinstance(exc, ssl.SSLError):
            return False
        return isinstance(exc, OSError)

    def describe_error(self, exc: BaseException) -> str:
        text = super().describe_error(exc)
        if isinstance(exc, smtplib.SMTPResponseException) and isinstance(exc.smtp_error, bytes):
            reply = " ".join(exc.smtp_error.decode("utf-8", "replace").split())
            text = f"{type(exc).__name__}: {exc.smtp_code} {reply}"
        return self._mask(text)

    def _mask(self, text: str) -> str:
        if self._password:
            text = text.replace(self._password, "***")
        return text

    def describe(self) -> str:
        who = f"{self.username}@" if self.username else ""
        return (
            f"{self.security}://{who}{self.host}:{self.port} "
            f"from {self.sender} to {', '.join(self.recipients)}"
        )
