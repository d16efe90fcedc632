"""The exceptions of the store package.

Every failure of a store operation (a server down, a timeout, a locked or corrupt file, a
full disk, a file owned by another user) is a :class:`StoreError`: callers catch that one
type and fall back (see :class:`~flask_alerting.store.CircuitBreaker`). A bad storage URI is
an :class:`InvalidStorageURI`, raised when the URI is parsed, before any I/O.
"""

from __future__ import annotations


class StoreError(Exception):
    """A store operation failed; the store is unusable for now.

    The message never contains a password (URIs in it are masked). The original
    exception, if any, is the ``__cause__``.
    """


class ForeignFileError(StoreError):
    """A store file exists but is not a regular file owned by this user.

    Never opened: another local user could have planted it. The message names the file,
    its owner and what to do, so that the caller can log it and fall back.
    """


class InvalidStorageURI(ValueError):
    """A storage URI that cannot name a store (bad scheme, relative path, bad port...).

    Raised by :func:`~flask_alerting.store.parse_storage_uri` before any I/O; the message
    says what was expected and shows the URI with its password masked. The extension wraps
    it into a :class:`~flask_alerting.ConfigurationError` naming ``ALERTING_STORAGE_URI``.
    """
