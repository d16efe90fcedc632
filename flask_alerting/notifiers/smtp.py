"""E-mail alerts through :mod:`smtplib`."""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import math
import os
import re
import smtplib
import socket
import ssl
import time
import uuid
from collections.abc import Iterable, Iterator
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from .._addresses import parse_addresses
from ..alert import Alert
from ..config import SMTP_PORTS
from ..render import html_body, subject, text_body
from .base import Notifier

#: The server's reply to the end of a message may take this many times the timeout.
#: Servers check the message (spam and virus filters) before they answer, and RFC 5321
#: gives them ten minutes: giving up sooner would send the message again, twice.
FINAL_REPLY_FACTOR = 6
#: Writes are cut into pieces of this size, each bounded by the time left.
_CHUNK = 64 * 1024
#: Namespace of the name-based UUIDs that name e-mail threads (see :func:`thread_id`).
THREAD_NAMESPACE = uuid.UUID("a627bcfb-f163-4c51-8338-7aa9b5506419")
#: The Unix epoch as a Windows FILETIME (100 ns units since 1601-01-01), for Thread-Index.
_FILETIME_UNIX_EPOCH = 116_444_736_000_000_000
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")

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
    :param timeout: seconds for the whole exchange with the server, from connecting to
        the end of the message (not per socket operation: a server trickling its replies
        cannot hold a send longer); then the server's reply to the message may take up
        to :data:`FINAL_REPLY_FACTOR` times as long, and QUIT once more the timeout.
    :param ssl_context: default :func:`ssl.create_default_context`, which verifies the
        server's certificate and host name.
    :param subject_prefix: ``None`` means ``"[<alert's app label>]"``.

    Connection problems, timeouts (the message may then have been delivered: it is
    sent again, a duplicate rather than a loss) and 4xx replies are transient (retried by
    the worker);
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
        if security not in SMTP_PORTS:
            choices = ", ".join(map(repr, SMTP_PORTS))
            raise ValueError(f"security must be one of {choices}, got {security!r}")
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
        self.port = port if port is not None else SMTP_PORTS[security]
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
        domain = message_id_domain(self.sender)
        # Every e-mail has an ID of its own (some providers drop a second message with the
        # ID of one they have), and all e-mails of one fingerprint answer the same root,
        # which no e-mail has: see "E-mail threads" in docs/notifiers.rst.
        msg["Message-ID"] = make_msgid(domain=domain)
        root = thread_root(alert, domain)
        msg["In-Reply-To"] = root
        msg["References"] = root
        msg["Thread-Index"] = thread_index(alert)
        msg["X-Alert-Fingerprint"] = alert.fingerprint
        msg["X-Alert-Severity"] = alert.severity
        msg.set_content(text_body(alert))
        msg.add_alternative(html_body(alert), subtype="html")
        return msg

    # -- sending ----------------------------------------------------------------------------

    def _context(self) -> ssl.SSLContext:
        return self.ssl_context or ssl.create_default_context()

    def _connect(self) -> _DeadlineSMTP:
        client: _DeadlineSMTP
        if self.security == "ssl":
            client = _DeadlineSMTP_SSL(timeout=self.timeout, context=self._context())
        else:
            client = _DeadlineSMTP(timeout=self.timeout)
        client._host = self.host  # what SMTP(host) sets
        client.deadline = time.monotonic() + self.timeout
        client.final_timeout = self.timeout * FINAL_REPLY_FACTOR
        with self._closed_on_error(client):
            client.connect(self.host, self.port)
            if self.security == "starttls":
                client.ehlo()
                client.starttls(context=self._context())
                client.ehlo()
        return client

    def send(self, alert: Alert) -> None:
        message = self.build_message(alert)
        client = self._connect()
        with self._closed_on_error(client):
            if self.username is not None:
                client.login(self.username, self._password or "")
            refused = client.send_message(
                message, from_addr=self.sender, to_addrs=list(self.recipients)
            )
        # The server has accepted the message: from here on nothing may raise, or the
        # worker would send it again (a failed QUIT is not a failed delivery).
        client.deadline = time.monotonic() + self.timeout
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

    @contextlib.contextmanager
    def _closed_on_error(self, client: _DeadlineSMTP) -> Iterator[None]:
        """Close ``client`` on any error; report running out of time as a TimeoutError."""
        try:
            yield
        except Exception as exc:
            client.close()
            timed_out = self._timed_out(client)
            if timed_out is None:
                raise
            raise timed_out from exc
        except BaseException:
            client.close()
            raise

    def _timed_out(self, client: _DeadlineSMTP) -> TimeoutError | None:
        """The error to report when ``client`` failed because its time was up."""
        if not client.expired:
            return None
        where = f"{self.host}:{self.port}"
        if client.awaiting_final_reply:
            return TimeoutError(
                f"timed out: {where} did not answer the end of the message within "
                f"{client.final_timeout:g} s ({FINAL_REPLY_FACTOR} x the timeout); it may "
                "have been delivered (sending it again can duplicate it)"
            )
        return TimeoutError(
            f"timed out: the SMTP exchange with {where} did not finish within "
            f"{self.timeout:g} s"
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


class _DeadlineSMTP(smtplib.SMTP):
    """:class:`smtplib.SMTP` whose whole exchange must end by :attr:`deadline`.

    smtplib applies its timeout to each socket operation, so a server that trickles a
    reply (one ``250-`` line a second, or one byte) holds it forever. Here connecting,
    every read and every write get only the time left until :attr:`deadline` (monotonic
    seconds); the reply to the end of the message gets :attr:`final_timeout` of its own.
    What smtplib does with the socket in between is unchanged (``self.file`` is the only
    attribute replaced: by a reader over the same socket that checks the time left).
    """

    deadline = math.inf
    final_timeout = math.inf
    _host = ""  # smtplib's: the server name TLS checks the certificate against
    #: Set while waiting for the reply to the end of the message.
    awaiting_final_reply = False
    #: Set when an operation failed because the time was up.
    expired = False
    _data_replies: int | None = None

    def remaining(self) -> float:
        """Seconds left; TimeoutError when none."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.expired = True
            raise TimeoutError("timed out")
        return left

    @contextlib.contextmanager
    def bounded(self) -> Iterator[None]:
        """Note a socket timeout (set to the time left) as the time being up."""
        try:
            yield
        except OSError as exc:
            if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
                self.expired = True
            raise

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # Implicit TLS wraps the socket (and shakes hands) with this timeout too: the
        # ssl module counts it for the whole handshake.
        with self.bounded():
            return super()._get_socket(host, port, self.remaining())  # type: ignore[misc, no-any-return]

    def send(self, s: Any) -> None:
        data = s.encode(self.command_encoding) if isinstance(s, str) else bytes(s)
        for start in range(0, max(len(data), 1), _CHUNK):
            # sendall() counts its timeout for all it sends (plain sockets), or per
            # write (TLS): pieces keep both within the time left.
            with self.bounded():
                if self.sock is not None:
                    self.sock.settimeout(self.remaining())
                super().send(data[start : start + _CHUNK])

    def getreply(self) -> tuple[int, bytes]:
        if self._data_replies is not None:
            self._data_replies += 1
            if self._data_replies == 2:  # DATA's 354, then the reply to the message
                self.deadline = time.monotonic() + self.final_timeout
                self.awaiting_final_reply = True
        if self.file is None and self.sock is not None:
            self.file = io.BufferedReader(_DeadlineReader(self))
        return super().getreply()

    def data(self, msg: Any) -> tuple[int, bytes]:
        self._data_replies = 0
        try:
            return super().data(msg)
        finally:
            self._data_replies = None


class _DeadlineSMTP_SSL(_DeadlineSMTP, smtplib.SMTP_SSL):  # noqa: N801 - as smtplib's
    """:class:`_DeadlineSMTP` over implicit TLS."""


class _DeadlineReader(io.RawIOBase):
    """Reads ``client.sock`` (which STARTTLS replaces) within the client's time left."""

    def __init__(self, client: _DeadlineSMTP) -> None:
        self.client = client

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        sock = self.client.sock
        if sock is None:
            raise OSError("not connected")
        with self.client.bounded():
            sock.settimeout(self.client.remaining())
            return sock.recv_into(buffer)


def message_id_domain(sender: str) -> str:
    """The domain of the Message-ID headers: the sender's when it is a plain host name,
    else ``localhost``.

    Not :func:`~email.utils.make_msgid`'s default, :func:`socket.getfqdn`, which can
    block on DNS; the sender may carry a display name (``Alerts <alerts@example.com>``).
    """
    domain = parseaddr(sender)[1].rpartition("@")[2]
    return domain if _DOMAIN.fullmatch(domain) else "localhost"


def thread_id(alert: Alert) -> uuid.UUID:
    """The e-mail thread of ``alert``: a name-based UUID of its ``app`` label and its
    fingerprint.

    Deterministic, so every process on every host names the same thread for the same
    fingerprint; a hash, so a fingerprint (any text, through ``alert(fingerprint=...)``)
    never reaches a threading header itself.
    """
    return uuid.uuid5(THREAD_NAMESPACE, f"{alert.labels.get('app', '')}\0{alert.fingerprint}")


def thread_root(alert: Alert, domain: str) -> str:
    """The Message-ID that every e-mail of ``alert``'s thread names in ``In-Reply-To``
    and ``References``: ``<{thread_id}.thread@{domain}>``. No e-mail carries it as its
    own Message-ID: mail clients that thread by references group the messages that
    share it (Thunderbird, Apple Mail; Gmail when their subjects match too)."""
    return f"<{thread_id(alert).hex}.thread@{domain}>"


def thread_index(alert: Alert) -> str:
    """The ``Thread-Index`` header, by which Outlook and Exchange group a conversation.

    The 22-byte header block of Microsoft's conversation index ([MS-OXOMSG] 2.2.1.3):
    a reserved ``0x01``, the alert's time as the 40 high bits of a FILETIME, and a GUID,
    here :func:`thread_id`: the GUID is what names the conversation, so it is the same in
    every e-mail of the thread.
    """
    stamp = alert.timestamp.timestamp()
    filetime = max(0, int(stamp * 10_000_000) + _FILETIME_UNIX_EPOCH)
    block = b"\x01" + ((filetime >> 24) & 0xFF_FFFF_FFFF).to_bytes(5, "big")
    return base64.b64encode(block + thread_id(alert).bytes).decode("ascii")


def _describe_refused(refused: dict[str, tuple[int, bytes]]) -> str:
    """``{"a@x": (550, b"no such user")}`` -> ``"a@x: 550 no such user"``."""
    parts = []
    for address, (code, reply) in refused.items():
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        parts.append(f"{address}: {code} {' '.join(text.split())}".rstrip())
    return "; ".join(parts)
