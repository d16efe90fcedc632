"""Opening files that may sit in a shared directory (the temp dir) without trusting them.

The same rules as the metrics lock file: never follow a symbolic link, create with mode
0600, and after opening check that it is a regular file owned by this user. A file that
fails is refused with :class:`~flask_alerting.store.ForeignFileError` (never used, never
changed): another local user could have planted it.
"""

from __future__ import annotations

import errno
import os
import stat

from .errors import ForeignFileError, StoreError

#: 0 where the OS lacks the flag; then :func:`check_private_file` refuses links itself.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def check_private_file(path: str, *, create: bool = True) -> bool:
    """Make sure ``path`` is a regular file of this user's (creating it, mode 0600).

    :param create: create it when missing; otherwise a missing file is fine.
    :return: whether the file exists now.
    :raises ForeignFileError: it is a symbolic link, not a regular file, or owned by
        another user.
    :raises StoreError: it cannot be opened or created (missing directory, no permission).
    """
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0) | _NOFOLLOW
    if create:
        flags |= os.O_CREAT
    if not _NOFOLLOW and os.path.islink(path):  # pragma: no cover - every POSIX has it
        raise ForeignFileError(f"{path} is a symbolic link: it is never followed")
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ENOENT and not create:
            return False
        if exc.errno == errno.ELOOP:
            raise ForeignFileError(
                f"{path} is a symbolic link: it is never followed; remove it"
            ) from exc
        raise StoreError(f"cannot open {path}: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(info.st_mode):
        raise ForeignFileError(f"{path} is not a regular file: it is never used; remove it")
    uid = os.geteuid() if hasattr(os, "geteuid") else info.st_uid
    if info.st_uid != uid:
        raise ForeignFileError(
            f"{path} is owned by uid {info.st_uid}, not by this user (uid {uid}): it is "
            "never used. Remove it, or choose a path of your own (ALERTING_STORAGE_URI)"
        )
    return True
