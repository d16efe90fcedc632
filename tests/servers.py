"""Real servers for the tests: finding their binaries, and a real ``redis-server``.

:func:`require_binary` skips a test when a server's binary is missing, with the package to
install, except where ``FLASK_ALERTING_REQUIRE_SERVERS=1`` (CI sets it): there a missing
binary fails the test, so CI never silently skips what it must run.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

REQUIRE_SERVERS = "FLASK_ALERTING_REQUIRE_SERVERS"


def require_binary(name: str, package: str | None = None) -> str:
    """The path of the executable ``name``; skip (or fail, see module doc) when missing.

    :param package: the Debian package that provides it, named in the message.
    """
    path = shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if path:
        return path
    how = f"install the {package!r} package (apt-get install {package})" if package else ""
    message = f"{name} is not installed{': ' + how if how else ''}"
    if os.environ.get(REQUIRE_SERVERS) == "1":
        pytest.fail(f"{message}; {REQUIRE_SERVERS}=1 forbids skipping", pytrace=False)
    pytest.skip(message)


def _pause(seconds: float) -> None:
    select.select([], [], [], seconds)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A ``redis-server`` on 127.0.0.1 (a free port) and a unix socket, no persistence.

    :param directory: its working directory (a tmp_path) holding the socket and its log.
    """

    def __init__(self, directory: Path) -> None:
        self.binary = require_binary("redis-server", "redis-server")
        self.directory = directory
        self.socket_path = str(directory / "redis.sock")
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.tls: tuple[str, str, str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def start(
        self,
        *,
        port: int | None = None,
        password: str | None = None,
        tls: tuple[str, str, str] | None = None,
    ) -> RedisServer:
        """Start (again): on ``port``, or on a free one (retried if it was taken).

        :param tls: ``(certificate, key, CA)`` files: TLS only on the port.
        """
        self.tls = tls
        for _attempt in range(5):
            self.port = port or free_port()
            listen = ["--port", str(self.port)]
            if tls:
                listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", tls[0],
                          "--tls-key-file", tls[1], "--tls-ca-cert-file", tls[2],
                          "--tls-auth-clients", "no"]
            args = [
                self.binary, *listen, "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory),
                "--unixsocket", self.socket_path, "--unixsocketperm", "700",
                "--daemonize", "no", "--loglevel", "warning",
            ]
            if password:
                args += ["--requirepass", password]
            log = open(self.directory / "redis.log", "ab")
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            if self._wait_ready(password):
                return self
            self.stop()
            if port:
                break
        raise RuntimeError(f"redis-server did not start; see {self.directory / 'redis.log'}")

    def _wait_ready(self, password: str | None, timeout: float = 15.0) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        hello = (f"AUTH {password}\r\n" if password else "") + "PING\r\n"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with contextlib.ExitStack() as stack:
                    sock = stack.enter_context(
                        socket.create_connection(("127.0.0.1", self.port), timeout=1.0)
                    )
                    if self.tls:
                        context = ssl.create_default_context(cafile=self.tls[2])
                        sock = stack.enter_context(
                            context.wrap_socket(sock, server_hostname="127.0.0.1")
                        )
                    sock.sendall(hello.encode())
                    reply = b""
                    while b"PONG" not in reply and len(reply) < 200:
                        chunk = sock.recv(200)
                        if not chunk:
                            break
                        reply += chunk
                    if b"PONG" in reply:
                        return True
            except OSError:
                pass
            _pause(0.02)
        return False

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 10 s); a stopped server is not resumed."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)  # a paused server could not exit
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def pause(self) -> None:
        """Freeze it (SIGSTOP): it accepts connections but never answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

