"""A real SMTP server on 127.0.0.1 for the tests (aiosmtpd), with TLS from trustme.

Not a mock: the notifier talks SMTP over a real socket, with real STARTTLS / implicit TLS
and AUTH. Received messages are kept as raw bytes and parsed :class:`EmailMessage` objects;
tests wait for them through a condition with a timeout, never by sleeping.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import threading
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USERNAME = "alerts@example.com"
PASSWORD = "s3cr3t-Pa55word-xyz"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler:
    def __init__(self, server: SMTPServer) -> None:
        self.server = server

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.server.refuse_recipients:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return self.server.quit_reply or "221 Bye"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.server.delay:
            await asyncio.sleep(self.server.delay)
        if self.server.temp_fail:
            return "451 4.3.0 try again later"
        self.server.record(envelope)
        return "250 Message accepted for delivery"


class SMTPServer:
    """aiosmtpd on 127.0.0.1.

    :param security: ``"none"``, ``"starttls"`` or ``"ssl"`` (implicit TLS).
    :param server_context: the server's TLS context (trustme), required for TLS modes.
    :param auth: require AUTH with :data:`USERNAME` / :data:`PASSWORD`.
    :param port: default: a free port.
    """

    def __init__(
        self,
        *,
        security: str = "none",
        server_context: ssl.SSLContext | None = None,
        auth: bool = False,
        port: int | None = None,
    ) -> None:
        self.security = security
        self.server_context = server_context
        self.auth = auth
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.delay = 0.0
        self.temp_fail = False
        self.refuse_recipients: set[str] = set()
        #: Reply to QUIT instead of "221 Bye" (e.g. "421 ..."), after a message was accepted.
        self.quit_reply: str | None = None
        self.raw: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[str] = []
        self._cond = threading.Condition()
        self._controller: Controller | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == USERNAME
            and auth_data.password.decode() == PASSWORD
        ):
            self.logins.append(auth_data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> SMTPServer:
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "ready_timeout": 10.0,
        }
        if self.security == "ssl":
            kwargs["ssl_context"] = self.server_context
        elif self.security == "starttls":
            kwargs["tls_context"] = self.server_context
            kwargs["require_starttls"] = True
        if self.auth:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            # With implicit TLS aiosmtpd does not see the session as TLS, so it would hide
            # AUTH if TLS were required; the channel is encrypted all the same.
            kwargs["auth_require_tls"] = self.security == "starttls"
        else:
            kwargs["auth_require_tls"] = False
        # aiosmtpd warns "Requiring AUTH while not requiring TLS" for every connection of
        # the plain and implicit-TLS servers with AUTH: deliberate here, and ignored by the
        # filterwarnings entry in pyproject.toml.
        self._controller = Controller(_Handler(self), **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    # -- received mail --------------------------------------------------------------------

    def record(self, envelope: Any) -> None:
        with self._cond:
            data = envelope.original_content or envelope.content
            self.raw.append(bytes(data))
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self._cond.notify_all()

    @property
    def messages(self) -> list[EmailMessage]:
        with self._cond:
            raw = list(self.raw)
        return [
            email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[misc]
            for data in raw
        ]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Wait until ``count`` messages arrived (AssertionError on timeout)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.raw) >= count, timeout)
        assert ok, f"expected {count} message(s) within {timeout}s, got {len(self.raw)}"
        return self.messages
