"""POST JSON with the standard library, and sort the failures into transient and permanent.

Shared by :class:`~flask_alerting.WebhookNotifier` and
:class:`~flask_alerting.AlertmanagerNotifier`. Every exception raised here is built
outside of ``except`` blocks, from masked text: neither its message nor its chained
context holds the URL, whose path or query is often the secret.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from .._urls import mask_secrets, mask_url
from .._version import installed_version
from .base import TransientError

#: Bytes of an error response kept for the error message.
MAX_ERROR_BODY = 300


class DeliveryRefused(Exception):
    """The receiver refused the alert for good (HTTP 4xx other than 408 and 429, a
    redirect, a certificate it cannot verify): sending it again will not help."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class HTTPTransientError(TransientError):
    """The receiver is unavailable for now (connection error, timeout, HTTP 408, 429 or
    5xx); the alert is retried, no sooner than ``retry_after`` seconds when set."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would POST the alert (and its headers)
    somewhere nobody configured."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


USER_AGENT = f"flask-alerting/{installed_version(default='dev')}"


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """An HTTP ``Retry-After`` value (seconds, or an HTTP date) in seconds from now."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def split_credentials(url: str) -> tuple[str, str | None]:
    """``url`` without its user info, and the ``Authorization: Basic`` value made of it
    (urllib does not use ``user:password@`` of a URL by itself)."""
    parts = urllib.parse.urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return url, None
    user, _, password = userinfo.partition(":")
    token = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    authorization = "Basic " + base64.b64encode(token.encode("utf-8")).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=hostport)), authorization


def post_json(
    url: str,
    payload: Any,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """POST ``payload`` as JSON to ``url``; return when the answer is 2xx.

    :raises HTTPTransientError: connection error, timeout, HTTP 408, 429 (with the
        ``Retry-After`` it gave) or 5xx.
    :raises DeliveryRefused: any other answer, a redirect, a certificate error.
    """
    # ASCII escapes: text that is not valid Unicode (lone surrogates from undecodable
    # bytes) still makes valid JSON.
    body = json.dumps(payload, separators=(",", ":")).encode("ascii")
    all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    where = mask_url(url)
    failure: Exception | None = None
    try:
        target, authorization = split_credentials(url)
        if authorization:
            all_headers["Authorization"] = authorization
        all_headers.update(headers or {})
        request = urllib.request.Request(target, data=body, headers=all_headers, method="POST")
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
        opener = urllib.request.build_opener(*handlers)
        with opener.open(request, timeout=timeout) as response:
            response.read(MAX_ERROR_BODY)
    except urllib.error.HTTPError as exc:
        failure = _http_failure(exc, where)
    except urllib.error.URLError as exc:
        failure = _connection_failure(exc.reason, where, timeout)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # Timeouts while waiting for the answer, resets, garbled answers, a malformed URL.
        failure = _connection_failure(exc, where, timeout)
    if failure is not None:
        # Raised here, outside the except blocks: no traceback or __context__ keeps the
        # urllib exception, whose attributes hold the full URL.
        message = mask_secrets(str(failure), [url])
        if isinstance(failure, HTTPTransientError):
            raise HTTPTransientError(
                message, status=failure.status, retry_after=failure.retry_after
            )
        status = failure.status if isinstance(failure, DeliveryRefused) else None
        raise DeliveryRefused(message, status=status)


def _http_failure(exc: urllib.error.HTTPError, where: str) -> Exception:
    status = exc.code
    try:
        excerpt = exc.read(MAX_ERROR_BODY).decode("utf-8", "replace")
    except Exception:
        excerpt = ""
    retry_after = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None)
    exc.close()
    excerpt = " ".join(excerpt.split())
    text = f"HTTP {status} {exc.reason or ''}".rstrip() + f" from {where}"
    if excerpt:
        text += f": {excerpt}"
    if status == 429 or status == 408 or status >= 500:
        if retry_after is not None:
            text += f" (retry after {retry_after:g} s)"
        return HTTPTransientError(text, status=status, retry_after=retry_after)
    if 300 <= status < 400:
        return DeliveryRefused(
            f"HTTP {status} redirect from {where} not followed (configure the final URL)",
            status=status,
        )
    return DeliveryRefused(text, status=status)


def _connection_failure(reason: object, where: str, timeout: float) -> Exception:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return DeliveryRefused(f"TLS certificate of {where} not trusted: {reason.verify_message}")
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return HTTPTransientError(f"no answer from {where} within {timeout:g} s")
    if isinstance(reason, ValueError):
        return DeliveryRefused(f"invalid URL {where}: {reason}")
    if isinstance(reason, ssl.SSLError) and not isinstance(
        reason, (ssl.SSLEOFError, ssl.SSLZeroReturnError)
    ):
        return DeliveryRefused(f"TLS with {where} failed: {reason}")
    text = " ".join(str(reason).split()) or type(reason).__name__
    return HTTPTransientError(f"cannot reach {where}: {text}")
