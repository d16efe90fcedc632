"""URLs that carry secrets: shown masked, parsed once.

Webhook and chat URLs often *are* the secret (a Slack hook's path, a token in the query
string, ``user:password@`` in the authority), so wherever a URL is shown (logs, errors,
``flask alerting status``, ``describe()``) only its scheme, host and port remain
(:func:`mask_url`). A storage URI keeps its path and database, and loses only its
password (:func:`mask_uri`).

Pure code: no Flask, no I/O.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable

#: What stands for a hidden part of a URL.
MASK = "***"

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Separators between several URLs in one string: commas or blanks, but only where the
#: next URL starts, so a comma inside a query string (``?to=a@x.com,b@x.com``) stays.
_URL_SEPARATOR = re.compile(r"[\s,]+(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def _split_authority(rest: str) -> tuple[str, str]:
    """What follows ``scheme://``, as its authority (``user:pw@host:port``) and the rest
    (path, query, fragment)."""
    ends = [index for index in map(rest.find, "/?#") if index != -1]
    end = min(ends, default=len(rest))
    return rest[:end], rest[end:]


def mask_url(url: str) -> str:
    """``url`` with its credentials hidden: user info, path, query and fragment.

    ``https://user:pw@hooks.example.com:8443/services/T0/B0/XYZ?token=1`` becomes
    ``https://***@hooks.example.com:8443/***?***``. A path of ``/`` is kept; anything
    that does not parse as ``scheme://...`` becomes ``***``.
    """
    text = str(url).strip()
    match = _SCHEME.match(text)
    if not match:
        return MASK
    scheme = match.group(0)
    authority, tail = _split_authority(text[len(scheme) :])
    userinfo, at, hostport = authority.rpartition("@")
    shown = f"{scheme.lower()}{MASK + '@' if at else ''}{hostport}"
    if any(ch.isspace() or not ch.isprintable() for ch in shown):
        return MASK
    path, _, _ = tail.partition("#")
    path, question, query = path.partition("?")
    if path not in ("", "/"):
        shown += "/" + MASK
    elif path:
        shown += "/"
    if question and query:
        shown += "?" + MASK
    return shown


def mask_scheme_only(url: str) -> str:
    """``slack://***``: for URLs (Apprise's) that carry tokens anywhere, host included."""
    scheme, sep, _ = str(url).strip().partition("://")
    return f"{scheme.lower()}://{MASK}" if sep and _SCHEME.match(scheme + sep) else MASK


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that :func:`mask_url` hides, as they could appear in text
    (raw and percent-decoded), longest first."""
    text = str(url).strip()
    match = _SCHEME.match(text)
    authority, tail = _split_authority(text[len(match.group(0)) :] if match else text)
    userinfo, at, _ = authority.rpartition("@")
    parts: set[str] = set()
    if at and userinfo:
        parts.add(userinfo)
        user, colon, password = userinfo.partition(":")
        if colon and password:
            parts.add(password)
    tail = tail.lstrip("/")
    if tail:
        parts.add(tail)
        path, _, query = tail.partition("#")[0].partition("?")
        if path:
            parts.add(path)
        if query:
            parts.add(query)
            for _, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
                parts.add(value)
    if not match:
        parts.add(text)
    found = set()
    for part in parts:
        found.add(part)
        found.add(urllib.parse.unquote(part))
    # Short values ("1", "ab") would blank out unrelated text.
    return sorted((p for p in found if len(p) >= 4), key=len, reverse=True)


def mask_secrets(text: str, urls: Iterable[str]) -> str:
    """``text`` with every secret part of ``urls`` replaced by ``***``."""
    secrets: list[str] = []
    for url in urls:
        secrets += url_secrets(url)
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def split_urls(value: str) -> list[str]:
    """Several URLs in one string, separated by commas or blanks.

    ``"slack://a/b, json://host/x?to=a,b"`` -> ``["slack://a/b", "json://host/x?to=a,b"]``:
    a separator counts only where the next URL's ``scheme://`` starts.
    """
    parts = (part.strip(" \t\r\n,") for part in _URL_SEPARATOR.split(value.strip()))
    return [part for part in parts if part]


def is_http_url(url: str) -> bool:
    """Whether ``url`` is an ``http://`` or ``https://`` URL with a host."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not any(ch.isspace() or not ch.isprintable() for ch in url)
    )


_QUERY_SECRET = re.compile(r"(?i)((?:^|[?&;])(?:password|pass|pwd|token)=)[^&;#]*")


def mask_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (for logs, errors and reprs)."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    head, qmark, query = rest.partition("?")
    # The authority may hold a raw "/" inside a password: look up to the last "@"
    # before the query, except for unix sockets whose path follows the authority.
    authority = head.split("/", 1)[0] if scheme.lower() == "unix" else head
    if "@" in authority:
        userinfo, _, _ = authority.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        masked = f"{user}:***" if colon else "***"
        head = masked + head[len(userinfo) :]
    query = _QUERY_SECRET.sub(r"\1***", query)
    return f"{scheme}{sep}{head}{qmark}{query}"
