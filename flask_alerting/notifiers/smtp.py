"""E-mail alerts through :mod:`smtplib`."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import smtplib
import ssl
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from ..alert import Alert
from ..config import parse_addresses
from ..render import html_body, subject, text_body
from .base import Notifier

DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}

logger = logging.getLogger("flask_alerting")


class SMTPNotifier(Notifier):
    """Sends each alert as one e-mail (plain text plus an escaped HTML alternative).

    :param host: SMTP server.
    :param port: default 465 for ``"ssl"``, 587 for ``"starttls"``, 25 for ``"none"``.
    :param security: ``"ssl"`` (implicit TLS), ``"starttls"`` or ``"none"``.
    :param username: log in only when set.
    :param password: default: the ``EMAIL_PASSWORD`` environment variable.
    :param sender: the From address.
    :param recipients: one address, or several (a list, or one string separated by
        commas, semicolons or blanks).
    :param timeout: socket timeout in seconds.
    :param ssl_context: default :func:`ssl.create_default_context`, which verifies the
        server's certificate and host name.
    :param subject_prefix: ``None`` means ``"[<alert's app label>]"``.

    Connection problems, timeouts and 4xx replies are transient (retried by the worker);
    authentication failures, refused sender or recipients (5xx) and certificate errors are
    permanent. When only some of several recipients are refused, the message went to the
    others: that is logged, not retried (a retry would send it twice). The password never
    appears in ``repr``, logs or error descriptions.
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
        # Checked once, here: a bad address would fail every send (and a line break in
        # one would be a header injection).
        try:
            self.recipients = tuple(parse_addresses(recipients))
            senders = parse_addresses(sender or "")
        except ValueError as exc:
            raise ValueError(f"invalid e-mail address: {exc}") from None
        if not self.recipients:
            raise ValueError("SMTPNotifier needs at least one recipient")
        if len(senders) != 1:
            raise ValueError("SMTPNotifier needs one sender address")
        sender = senders[0]
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
        # make_msgid's default domain is socket.getfqdn(), which can block on DNS; the
        # sender may carry a display name ("Alerts <alerts@example.com>").
        domain = parseaddr(self.sender)[1].rpartition("@")[2] or "localhost"
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
        client = self._connect()
        try:
            if self.username is not None:
                client.login(self.username, self._password or "")
            refused = client.send_message(
                message, from_addr=self.sender, to_addrs=list(self.recipients)
            )
        except BaseException:
            client.close()
            raise
        # The server has accepted the message: from here on nothing may raise, or the
        # worker would send it again (a failed QUIT is not a failed delivery).
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()
        client.close()
        if refused:
            logger.warning(
                "flask-alerting: %s delivered %r but some recipients were refused: %s",
                self.name,
                alert.title,
                self._mask(_describe_refused(refused)),
            )

    # -- failure classification -------------------------------------------------------------

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = [code for code, _ in exc.recipients.values()]
            return bool(codes) and all(400 <= code < 500 for code in codes)
        if isinstance(exc, smtplib.SMTPResponseException):
            # Authentication refused (535) is permanent; "454 temporary authentication
            # failure" is not.
            return 400 <= exc.smtp_code < 500
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return True
        if isinstance(exc, smtplib.SMTPException):
            # Not supported by the server (AUTH, STARTTLS, SMTPUTF8), no usable AUTH
            # mechanism: sending again will not help.
            return False
        if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            # The connection was cut during the handshake (server restarting).
            return True
        if isinstance(exc, ssl.SSLError):
            # Certificate refused, no common protocol, not TLS on that port.
            return False
        return isinstance(exc, OSError)

    def describe_error(self, exc: BaseException) -> str:
        if isinstance(exc, smtplib.SMTPResponseException):
            reply = exc.smtp_error
            if isinstance(reply, bytes):
                reply = reply.decode("utf-8", "replace")
            reply = " ".join(str(reply).split())
            text = f"{type(exc).__name__}: {exc.smtp_code} {reply}".rstrip()
        elif isinstance(exc, smtplib.SMTPRecipientsRefused):
            text = f"{type(exc).__name__}: {_describe_refused(exc.recipients)}"
        else:
            text = super().describe_error(exc)
        return self._mask(text)

    def _mask(self, text: str) -> str:
        """Hide the password, also in the base64 forms AUTH PLAIN/LOGIN send it in."""
        if not self._password:
            return text
        secrets = [self._password]
        for raw in (self._password, f"\0{self.username or ''}\0{self._password}"):
            with contextlib.suppress(UnicodeEncodeError):
                secrets.append(base64.b64encode(raw.encode("utf-8")).decode("ascii"))
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    @property
    def has_password(self) -> bool:
        """Whether a password is set (given, or from ``EMAIL_PASSWORD``)."""
        return bool(self._password)

    def describe(self) -> str:
        who = f"{self.username}@" if self.username else ""
        return (
            f"{self.security}://{who}{self.host}:{self.port} "
            f"from {self.sender} to {', '.join(self.recipients)}"
        )


def _describe_refused(refused: dict[str, tuple[int, bytes]]) -> str:
    """``{"a@x": (550, b"no such user")}`` -> ``"a@x: 550 no such user"``."""
    parts = []
    for address, (code, reply) in refused.items():
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        parts.append(f"{address}: {code} {' '.join(text.split())}".rstrip())
    return "; ".join(parts)
