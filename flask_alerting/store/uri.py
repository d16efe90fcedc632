"""Storage URIs: which store a URI names, the default store, and masking passwords.

Accepted forms (``ALERTING_STORAGE_URI``):

* None or ``""``: the default, a per-host SQLite file (:func:`default_sqlite_path`);
* ``memory://``: this process only;
* ``sqlite:///absolute/path.sqlite3``: an explicit SQLite file (three slashes, then the
  absolute path);
* ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS) and
  ``unix:///path/redis.sock?db=0``: a Redis server (the ``redis`` extra).

:func:`parse_storage_uri` checks the URI and builds the store without any I/O (the first
operation connects), so a bad URI fails at once with :class:`InvalidStorageURI` and an
unreachable server fails later, per operation, with a StoreError the caller falls back on.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse

from .._files import default_directory
from .._urls import mask_uri
from .base import Limits, Store
from .errors import InvalidStorageURI

FORMS = (
    "memory://, sqlite:///absolute/path.sqlite3, redis://[:password@]host:port/db, "
    "rediss://..., or unix:///path/redis.sock?db=0"
)
_REDIS_SCHEMES = ("redis", "rediss", "unix")


def _slug(app_name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", app_name)[:60] or "app"
    digest = hashlib.sha1(app_name.encode("utf-8", "backslashreplace"), usedforsecurity=False)
    return f"{slug}-{digest.hexdigest()[:8]}"


def default_sqlite_path(app_name: str) -> str:
    """The default store of ``app_name``: ``flask-alerting-<uid>-<app>-<hash>.sqlite3``
    beside the metrics lock file, in a directory only this user can use:
    ``$XDG_RUNTIME_DIR`` when it is one, else ``<temp dir>/flask-alerting-<uid>`` (created
    ``0700`` when the store is first used; see :func:`flask_alerting._files.default_directory`).
    """
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return os.path.join(default_directory(), f"flask-alerting-{uid}-{_slug(app_name)}.sqlite3")


def default_namespace(app_name: str) -> str:
    """The Redis key namespace of ``app_name`` (its name, cut and cleaned, and a hash)."""
    return _slug(app_name)


def parse_storage_uri(
    uri: str | None,
    *,
    app_name: str = "flask",
    namespace: str | None = None,
    timeout: float | None = None,
    limits: Limits | None = None,
) -> Store:
    """The store that ``uri`` names (not connected yet).

    :param uri: see the module docstring; None or ``""``: the default SQLite file.
    :param app_name: names the default SQLite file and the default Redis namespace.
    :param namespace: prefix of every Redis key (default: from ``app_name``), so that
        several apps can share one Redis database.
    :param timeout: the bound of one operation in seconds (default: 50 ms).
    :param limits: the store's bounds (grace, cap and age of the outbox, ...).
    :raises InvalidStorageURI: the URI names no store, or needs a missing package.
    """
    if not uri:
        from .sqlite import SQLiteStore

        path = default_sqlite_path(app_name)
        return SQLiteStore(path, private_dir=True, limits=limits,
                           **({} if timeout is None else {"timeout": timeout}))
    masked = mask_uri(uri)
    scheme = uri.partition(":")[0].lower()
    if scheme == "memory":
        if uri.lower().rstrip("/") not in ("memory:", "memory:/"):
            raise InvalidStorageURI(f"memory:// takes nothing after it, got {masked!r}")
        from .memory import MemoryStore

        return MemoryStore(limits=limits)
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return _with_timeout(SQLiteStore, _sqlite_path(uri, masked), timeout, limits)
    if scheme in _REDIS_SCHEMES:
        from .redis import RedisStore

        try:
            return RedisStore(
                uri, namespace=namespace or default_namespace(app_name), timeout=timeout,
                limits=limits,
            )
        except ImportError as exc:
            raise InvalidStorageURI(
                f"{masked!r} needs the redis package: pip install flask-alerting[redis]"
            ) from exc
    raise InvalidStorageURI(f"not a storage URI: {masked!r}; expected {FORMS}")


def _sqlite_path(uri: str, masked: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    if not uri.lower().startswith("sqlite://"):
        raise InvalidStorageURI(f"expected sqlite:///absolute/path.sqlite3, got {masked!r}")
    if parts.netloc:
        raise InvalidStorageURI(
            f"a SQLite URI names an absolute path after three slashes "
            f"(sqlite:///absolute/path.sqlite3), got {masked!r}"
        )
    if parts.query or parts.fragment:
        raise InvalidStorageURI(f"a SQLite URI takes no query or fragment, got {masked!r}")
    path = urllib.parse.unquote(parts.path)
    if not path.startswith("/") or path.endswith("/") or "\x00" in path:
        raise InvalidStorageURI(
            f"a SQLite URI needs an absolute file path (sqlite:///absolute/path.sqlite3), "
            f"got {masked!r}"
        )
    # sqlite:////abs/path (SQLAlchemy's spelling) names the same file.
    return os.path.normpath("/" + path.lstrip("/"))


def _with_timeout(cls: type, path: str, timeout: float | None, limits: Limits | None) -> Store:
    store: Store = cls(path, limits=limits) if timeout is None else cls(
        path, timeout=timeout, limits=limits
    )
    return store
