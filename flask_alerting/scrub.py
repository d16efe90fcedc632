"""Scrubbing and bounding: what an alert may carry out of the process, and how much.

Pure code: no Flask, no threads, no I/O. Two halves:

- *bounding* (:func:`cut`, :func:`bounded_copy`, :func:`bounded_items`) runs on the request
  path, while the request still exists: it copies at most a few kilobytes, so that later
  mutation of the request data cannot change the alert and a huge body cannot make it big;
- *scrubbing* (:class:`Scrubber`) runs later, on the dispatch thread, on those copies: the
  values of fields whose name looks sensitive become ``"[Filtered]"``.

A name is sensitive when, lowercased and with ``_``, ``-``, ``.`` and spaces removed, it
contains one of :data:`DEFAULT_FIELDS` (or of the extra names, ``ALERTING_SCRUB_FIELDS``)
treated the same way: ``X-Api-Key``, ``apiKey`` and ``api_key`` all match ``api_key``.
The short names of :data:`DEFAULT_WORDS` match only as whole words of a name (split at
separators and case changes): ``key`` matches ``X-Api-Key`` and ``sortKey``, not
``monkey``. Names given as *exact* (the app's session cookie names) match only
themselves, case aside.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote

#: What a scrubbed value is replaced with.
FILTERED = "[Filtered]"

#: Field names (or parts of names) whose values are always filtered.
DEFAULT_FIELDS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "auth",
    "authorization",
    "cookie",
    "session",
    "csrf",
    "credential",
    "private_key",
    "passphrase",
    "card_number",
    "signature",
)

#: Short names whose values are always filtered when they are a whole word of a field
#: name: ``pin`` filters ``pin`` and ``card_pin`` but not ``shipping``.
DEFAULT_WORDS: tuple[str, ...] = ("pin", "cvv", "sig", "code", "key", "otp", "sid", "jwt")

#: Headers whose value is filtered whatever the configuration (normalised names).
ALWAYS_FILTERED_HEADERS = frozenset({"cookie", "authorization", "proxyauthorization"})

#: Headers whose value is a URL (normalised names), scrubbed as the request URL is; so is
#: any header whose name ends in ``url`` or ``uri``, or whose value starts with
#: ``scheme://``.
URL_HEADERS = frozenset(
    {"referer", "referrer", "origin", "location", "contentlocation", "destination"}
)
_URL_VALUE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")

#: Single values longer than this are cut in request snapshots (characters).
MAX_VALUE_LENGTH = 2048
#: At most this many entries of one mapping (headers, query args, form fields ...).
MAX_ITEMS = 100
#: ... holding at most about this many characters (names and values).
ITEMS_BUDGET = 16 * 1024
#: Budget of a JSON body copy, in characters (roughly the size of its rendering).
JSON_BUDGET = 10 * 1024
#: Nesting deeper than this is not copied.
MAX_DEPTH = 20

TRUNCATED = "[truncated]"

_SEPARATORS = re.compile(r"[\s_.\-]+")
# Words of a name: runs of capitals (an acronym, not the capital starting the next
# word), capitalised or lower-case words, digits.
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_MAX_KNOWN = 4096


def normalise(name: str) -> str:
    """``"X-Api-Key"`` -> ``"xapikey"``: the form in which names are compared."""
    return _SEPARATORS.sub("", name.casefold())


def words(name: str) -> set[str]:
    """``"X-Hub-Signature-256"`` -> ``{"x", "hub", "signature", "256"}``; ``"apiKey"`` ->
    ``{"api", "key"}``: the whole words :data:`DEFAULT_WORDS` are compared with."""
    return {word.casefold() for word in _WORDS.findall(name)}


# -- bounding (request path) ---------------------------------------------------------------


def cut(text: str, limit: int = MAX_VALUE_LENGTH) -> str:
    """``text`` when short enough, else its first ``limit`` characters and a marker."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\u2026 [{len(text) - limit} more characters]"


def cut_middle(text: str, limit: int, what: str = "text") -> str:
    """``text`` when at most ``limit`` characters, else its head and its tail (cut at line
    ends when one is near) around a line saying how much of ``what`` was cut."""
    if len(text) <= limit:
        return text
    head, tail = _ends(text, limit // 2, limit - limit // 2)
    missing = len(text) - len(head) - len(tail)
    return f"{head}\n[\u2026 {missing} characters of the {what} cut \u2026]\n{tail}"


def cut_middle_bytes(text: str, limit: int) -> str:
    """Like :func:`cut_middle` for at most ``limit`` bytes of UTF-8 (marker included)."""
    size = len(text.encode("utf-8", "surrogatepass")) if not text.isascii() else len(text)
    if size <= limit:
        return text
    room = max(0, limit - 100)  # the marker
    # Characters take 1 to 4 bytes: cut by characters, then trim until the bytes fit.
    scale = room / size
    while True:
        head, tail = _ends(text, int(len(text) * scale / 2), int(len(text) * scale / 2))
        kept = len((head + tail).encode("utf-8", "surrogatepass"))
        if kept <= room:
            break
        scale *= room / kept * 0.99
    return (
        f"{head}\n\n[\u2026 {size - kept} bytes cut: the message was too long "
        f"(limit: {limit} bytes) \u2026]\n\n{tail}"
    )


def _ends(text: str, head: int, tail: int) -> tuple[str, str]:
    """The first ``head`` and last ``tail`` characters of ``text``, moved to a line end
    when one is within a tenth of them."""
    first = text[:head]
    newline = first.rfind("\n", head - head // 10)
    if newline >= 0:
        first = first[: newline + 1]
    last = text[len(text) - tail :] if tail else ""
    newline = last.find("\n", 0, tail // 10)
    if newline >= 0:
        last = last[newline + 1 :]
    return first, last


def bounded_items(
    pairs: Iterable[tuple[Any, Any]], limit: int = MAX_ITEMS, budget: int = ITEMS_BUDGET
) -> dict[str, Any]:
    """A dict of at most ``limit`` names, values cut; repeated names collect a list.

    Entries stop being added once they hold about ``budget`` characters.

    :param pairs: ``(name, value)`` pairs, e.g. ``MultiDict.items(multi=True)``.
    """
    out: dict[str, Any] = {}
    skipped = 0
    for name, value in pairs:
        if budget <= 0:
            skipped += 1
            continue
        key = cut(str(name), 200)
        text = cut(value) if isinstance(value, str) else value
        budget -= len(key) + (len(text) if isinstance(text, str) else 8)
        if key in out:
            previous = out[key]
            if isinstance(previous, list):
                if len(previous) < limit:
                    previous.append(text)
            else:
                out[key] = [previous, text]
        elif len(out) < limit:
            out[key] = text
        else:
            skipped += 1
    if skipped:
        out[TRUNCATED] = f"{skipped} more"
    return out


def safe_repr(value: Any) -> str:
    """``repr(value)``, or ``"[repr() failed: <error class>]"`` when that raises."""
    try:
        return repr(value)
    except Exception as exc:
        return f"[repr() failed: {type(exc).__name__}]"


def _name(key: Any) -> str:
    if isinstance(key, str):
        return str.__str__(key)
    try:
        return str(key)
    except Exception:
        return safe_repr(key)


def bounded_copy(value: Any, budget: int = JSON_BUDGET) -> tuple[Any, bool]:
    """A deep copy of JSON-like ``value`` holding roughly at most ``budget`` characters.

    Strings are cut, and lists and objects stop growing once the budget is spent (a
    ``"[truncated]"`` marker says so). Only dicts, lists, tuples, strings, numbers,
    booleans and None are kept as such; anything else becomes its ``repr`` (cut), taken
    now, or :func:`safe_repr`'s placeholder when ``repr`` raises. The copy is plain data:
    rendering it later calls no code of the original objects.

    :returns: ``(copy, truncated)``.
    """
    left = [budget]
    truncated = [False]

    def copy(item: Any, depth: int) -> Any:
        if isinstance(item, str):
            item = str.__str__(item)  # a plain str, also of a str subclass
            room = max(left[0], 16)
            left[0] -= len(item) + 2
            if len(item) > room:
                truncated[0] = True
                return cut(item, room)
            return item
        if item is None or isinstance(item, (bool, int, float)):
            left[0] -= 6
            return item
        if depth >= MAX_DEPTH:
            truncated[0] = True
            return TRUNCATED
        if isinstance(item, Mapping):
            out: dict[str, Any] = {}
            for index, (key, sub) in enumerate(item.items()):
                if left[0] <= 0:
                    truncated[0] = True
                    out[TRUNCATED] = f"{len(item) - index} more keys"
                    break
                name = cut(_name(key), 200)
                left[0] -= len(name) + 4
                out[name] = copy(sub, depth + 1)
            return out
        if isinstance(item, (list, tuple)):
            items: list[Any] = []
            for index, sub in enumerate(item):
                if left[0] <= 0:
                    truncated[0] = True
                    items.append(f"{TRUNCATED} {len(item) - index} more items")
                    break
                left[0] -= 2
                items.append(copy(sub, depth + 1))
            return items
        return copy(safe_repr(item), depth)

    result = copy(value, 0)
    return result, truncated[0]


# -- text safety -----------------------------------------------------------------------------


def clean_text(text: str) -> str:
    """``text`` made encodable as UTF-8 (lone surrogates become ``\\udcxx`` escapes).

    Such surrogates come from ``surrogateescape`` decoding of undecodable bytes; left in,
    they would make the e-mail impossible to encode, and the alert would be lost.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


# -- scrubbing (dispatch thread) -------------------------------------------------------------


class Scrubber:
    """Replaces the values of sensitive fields with :data:`FILTERED`.

    :param extra_fields: names added to :data:`DEFAULT_FIELDS` (``ALERTING_SCRUB_FIELDS``).
    :param exact: names that are sensitive as a whole only, case aside (the app's
        ``SESSION_COOKIE_NAME`` and ``REMEMBER_COOKIE_NAME``).
    """

    def __init__(self, extra_fields: Iterable[str] = (), exact: Iterable[str] = ()) -> None:
        self.extra_fields = tuple(extra_fields)
        names: list[str] = []
        for field in (*DEFAULT_FIELDS, *self.extra_fields):
            name = normalise(field)
            if name and name not in names:
                names.append(name)
        self.fields: tuple[str, ...] = tuple(names)
        self.words = frozenset(DEFAULT_WORDS)
        self.exact = frozenset(name.casefold() for name in exact if name)
        # Names seen before -> verdict (headers and keys repeat from alert to alert).
        self._known: dict[str, bool] = {}

    def including(self, exact: Iterable[str]) -> Scrubber:
        """A scrubber that also filters the ``exact`` names (shared, see :func:`get_scrubber`)."""
        names = tuple(sorted({name for name in exact if name}))
        if not names:
            return self
        return get_scrubber(self.extra_fields, tuple(sorted(self.exact.union(names))))

    def is_sensitive(self, name: object) -> bool:
        """Whether values of a field called ``name`` must be filtered."""
        text = str(name)
        known = self._known.get(text)
        if known is None:
            key = normalise(text)
            known = (
                any(field in key for field in self.fields)
                or not self.words.isdisjoint(words(text))
                or text.casefold() in self.exact
            )
            if len(self._known) >= _MAX_KNOWN:
                self._known.clear()
            self._known[text] = known
        return known

    def scrub(self, value: Any) -> Any:
        """A copy of ``value`` with sensitive keys filtered, at any depth.

        Mappings and lists are copied; strings are made safe for e-mail
        (:func:`clean_text`); other values are returned as they are.
        """
        if isinstance(value, str):
            return clean_text(value)
        if isinstance(value, Mapping):
            return {
                clean_text(str(k)): FILTERED if self.is_sensitive(k) else self.scrub(v)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.scrub(v) for v in value]
        return value

    def scrub_headers(
        self, headers: Mapping[str, Any], secrets: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Like :meth:`scrub`; ``Cookie`` and ``Authorization`` are filtered whatever the
        configuration, and URL-valued headers (``Referer``, ``Origin``, ``Location``,
        ``X-Original-URL`` ..., see :data:`URL_HEADERS`) are scrubbed like a URL (see
        :meth:`scrub_url`)."""
        out = self.scrub(headers)
        for name, value in out.items():
            key = normalise(name)
            if key in ALWAYS_FILTERED_HEADERS:
                out[name] = FILTERED
            elif isinstance(value, str) and value != FILTERED and _is_url(key, value):
                out[name] = self.scrub_url(value, secrets)
        return dict(out)

    def scrub_query(self, query: str) -> str:
        """A raw query string (``a=1&token=x``) with the values of sensitive names
        filtered; everything else is kept as it was written."""
        if not query:
            return query
        parts = []
        for part in re.split(r"([&;])", query):
            name, eq, _ = part.partition("=")
            if eq and self.is_sensitive(unquote(name.replace("+", " "))):
                part = f"{name}={FILTERED}"
            parts.append(part)
        return "".join(parts)

    def scrub_url(self, url: str, secrets: Iterable[str] = ()) -> str:
        """``url`` with sensitive query values, a password in the user info and each of
        ``secrets`` (e.g. the values of sensitive view arguments) in the path filtered."""
        base, hash_, fragment = url.partition("#")
        base, question, query = base.partition("?")
        scheme, sep, rest = base.partition("://")
        if sep:
            netloc, slash, path = rest.partition("/")
            userinfo, at, host = netloc.rpartition("@")
            if at and ":" in userinfo:
                userinfo = f"{userinfo.partition(':')[0]}:{FILTERED}"
            base = f"{scheme}{sep}{userinfo}{at}{host}{slash}{self._scrub_path(path, secrets)}"
        else:
            base = self._scrub_path(base, secrets)
        query = self.scrub_query(query)
        if fragment and self.is_sensitive(fragment.partition("=")[0]):
            fragment = FILTERED
        return clean_text(f"{base}{question}{query}{hash_}{fragment}")

    @staticmethod
    def _scrub_path(path: str, secrets: Iterable[str]) -> str:
        for secret in secrets:
            if len(secret) < 3:
                # A one- or two-character value would blank out unrelated parts.
                continue
            for form in {secret, quote(secret, safe=""), quote(secret)}:
                path = path.replace(form, FILTERED)
        return path


def _is_url(header: str, value: str) -> bool:
    return (
        header in URL_HEADERS
        or header.endswith(("url", "uri"))
        or _URL_VALUE.match(value) is not None
    )


@functools.lru_cache(maxsize=32)
def get_scrubber(extra_fields: tuple[str, ...] = (), exact: tuple[str, ...] = ()) -> Scrubber:
    """A shared :class:`Scrubber` for these extra field names (and exact names)."""
    return Scrubber(extra_fields, exact)
