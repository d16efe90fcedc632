"""The parsers of configuration values: each takes a raw value and returns the clean one.

A value a parser refuses raises :class:`Invalid` saying what was expected;
:func:`flask_alerting.config.load_config` turns it into a
:class:`~flask_alerting.ConfigurationError` naming the key and showing the value (masked
where it may hold a secret). The key table that says which parser reads which key is
:data:`flask_alerting.config.KEYS`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ._addresses import parse_addresses
from ._urls import is_http_url, split_urls

T = TypeVar("T")

#: A parser: raw value -> clean value, or :class:`Invalid`.
Parser = Callable[[Any], Any]


class Invalid(ValueError):
    """A raw value that a parser refuses; ``expected`` says what it wanted."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise Invalid("a boolean")


def number(value: Any) -> float:
    if isinstance(value, bool):
        raise Invalid("a number")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise Invalid("a number") from None
    if not math.isfinite(result):
        raise Invalid("a finite number")
    return result


def bounded(expected: str, ok: Callable[[float], bool]) -> Callable[[Any], float]:
    """A :func:`number` for which ``ok(number)`` holds."""

    def parse(value: Any) -> float:
        result = number(value)
        if not ok(result):
            raise Invalid(expected)
        return result

    return parse


positive = bounded("a number of seconds > 0", lambda n: n > 0)
non_negative = bounded("a number of seconds >= 0", lambda n: n >= 0)
percent = bounded("a percentage between 0 and 100", lambda n: 0 <= n <= 100)
positive_amount = bounded("a number > 0", lambda n: n > 0)


def optional(parser: Callable[[Any], T]) -> Callable[[Any], T | None]:
    """``parser``, or None for None."""

    def parse(value: Any) -> T | None:
        return None if value is None else parser(value)

    return parse


def int_at_least(minimum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise Invalid(f"an integer >= {minimum}")
        try:
            result = int(value)
        except (TypeError, ValueError):
            raise Invalid(f"an integer >= {minimum}") from None
        fractional = not isinstance(value, str) and result != value
        if fractional or result < minimum:
            raise Invalid(f"an integer >= {minimum}")
        return result

    return parse


def rate_limit(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int_at_least(0)(value)
    except Invalid:
        raise Invalid("an integer >= 0 (alerts a minute; 0 or None: no limit)") from None


def port(value: Any) -> int | None:
    if value is None:
        return None
    result = int_at_least(1)(value)
    if result > 65535:
        raise Invalid("a TCP port between 1 and 65535")
    return result


def text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise Invalid("a non-empty string")
    if any(ch in value for ch in "\r\n\0"):
        raise Invalid("a string without line breaks or NUL")
    return value.strip()


#: The forms of ALERTING_STORAGE_URI, for error messages.
STORAGE_FORMS = (
    "memory://, sqlite:///absolute/path.sqlite3, redis://[:password@]host:port/db, "
    "rediss://... or unix:///path/redis.sock?db=0"
)


def storage_uri(value: Any) -> str | None:
    """None or blank: the default store. The URI itself is checked by the store package
    when the state is built (:func:`flask_alerting.store.parse_storage_uri`)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or any(ch in value for ch in "\r\n\0"):
        raise Invalid(f"None or a storage URI ({STORAGE_FORMS})")
    return value.strip()


def secret(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid("a string")
    return value


def one_of(choices: Iterable[str]) -> Callable[[Any], str]:
    """One of ``choices`` (lower case), in any case, blanks around it ignored."""
    allowed = tuple(choices)
    quoted = [repr(choice) for choice in allowed]
    expected = (
        f"{quoted[0]} or {quoted[1]}"
        if len(quoted) == 2
        else f"one of {', '.join(quoted)}"
    )

    def parse(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in allowed:
            return value.strip().lower()
        raise Invalid(expected)

    return parse


def existing_path(value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise Invalid("a path")
    path = os.fspath(value)
    if not os.path.exists(path):
        raise Invalid("an existing path")
    return path


def file(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise Invalid("a file path")
    return os.fspath(value)


def writable_file(value: Any) -> str | None:
    # The log handler opens the file lazily: check now, so a typo fails at init_app.
    path = file(value)
    if path is None:
        return None
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(directory):
        raise Invalid("a file path in an existing directory")
    target = path if os.path.exists(path) else directory
    if not os.access(target, os.W_OK):
        raise Invalid("a writable file path")
    return path


def existing_file(value: Any) -> str | None:
    path = file(value)
    if path is not None and not os.path.isfile(path):
        raise Invalid("the path of an existing PEM file")
    return path


def _string_items(value: Any, expected: str) -> list[str]:
    """A list of strings, or a comma-separated string, as a list of stripped strings."""
    items: Iterable[Any]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        raise Invalid(expected)
    if not all(isinstance(item, str) for item in items):
        raise Invalid(expected)
    return [item.strip() for item in items]


def addresses(value: Any) -> list[str]:
    if not isinstance(value, (str, list, tuple, set, frozenset)):
        raise Invalid("e-mail addresses: a list, or a string separated by commas")
    try:
        return parse_addresses(value)
    except ValueError as exc:
        raise Invalid(f"e-mail addresses like admin@example.com ({exc})") from None


def recipients(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(addresses(value))


def sender(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise Invalid("an e-mail address")
    found = addresses(value)
    if len(found) != 1:
        raise Invalid("one e-mail address")
    return found[0]


def error_response(value: Any) -> str | None:
    if value is False or value is None:
        return None
    if isinstance(value, str):
        return value
    raise Invalid("a string, or None/False to keep Flask's own error response")


def field_names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    names: list[str] = []
    for name in _string_items(
        value, "field names: a list of strings or a comma-separated string"
    ):
        if not name and not isinstance(value, str):
            raise Invalid("non-empty field names")
        if name and name not in names:
            names.append(name)
    return tuple(sorted(names))


def http_url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not is_http_url(value.strip()):
        raise Invalid("an http:// or https:// URL")
    return value.strip()


def url_list(value: Any) -> tuple[str, ...]:
    expected = "a list of URLs or a string of URLs separated by commas or blanks"
    if value is None:
        return ()
    if isinstance(value, str):
        urls = split_urls(value)
    elif isinstance(value, (list, tuple)):
        if not all(isinstance(url, str) for url in value):
            raise Invalid(expected)
        urls = [url.strip() for url in value if url.strip()]
    else:
        raise Invalid(expected)
    for url in urls:
        scheme, sep, rest = url.partition("://")
        if not sep or not scheme or not rest or any(ch.isspace() for ch in url):
            raise Invalid("URLs like slack://... or json://host/path")
    return tuple(urls)
