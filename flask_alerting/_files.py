"""Opening the files flask-alerting shares between the processes of one user, safely.

The metrics lock file (with the rule states it records) and the SQLite store's files live
at predictable paths, possibly in a directory other users can write to. Another local
user must not be able to plant a file there that we then trust: one they can lock (so
that no process of ours ever samples), one holding forged state (so that nothing ever
alerts), a FIFO (so that opening it hangs), or a link to a file of ours (so that we
overwrite it). The rules, in one place so that every such file follows them:

* a directory made for us is created ``0700`` and must belong to us and be closed to
  others (:func:`private_directory`);
* a file is created ``0600`` and opened with ``O_NOFOLLOW`` (a symbolic link is refused)
  and ``O_NONBLOCK`` (a FIFO does not hang the open); then, on the open descriptor, it
  must be a regular file, belong to this process's effective uid and have one link;
  a file of ours that others may read or write is narrowed to ``0600``
  (:func:`open_private`).

Anything else raises :class:`UnsafeFileError`: the caller names the path in a warning
and carries on without the file (its alerts still flow).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile

#: Open flags that every shared file gets (0 where the OS lacks one).
_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK: int = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY: int = getattr(os, "O_DIRECTORY", 0)


class UnsafeFileError(OSError):
    """A file or directory that another user could control; never used.

    The message names the path and says why.
    """


def our_uid() -> int | None:
    """This process's effective uid (None where the OS has none)."""
    geteuid = getattr(os, "geteuid", None)
    return geteuid() if geteuid is not None else None


def default_directory() -> str:
    """Where flask-alerting keeps its files by default: ``$XDG_RUNTIME_DIR`` when it is a
    directory of ours closed to others (as the XDG specification requires), else
    ``<temp dir>/flask-alerting-<uid>`` (to be made with :func:`private_directory`)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        try:
            info = os.stat(runtime)
        except OSError:
            info = None
        if (
            info is not None
            and stat.S_ISDIR(info.st_mode)
            and info.st_uid == our_uid()
            and not info.st_mode & 0o077
            and os.access(runtime, os.W_OK)
        ):
            return runtime
    uid = our_uid()
    return os.path.join(tempfile.gettempdir(), f"flask-alerting-{uid if uid is not None else 0}")


def private_directory(path: str) -> None:
    """Make sure ``path`` is a directory only this user can use, creating it ``0700``.

    Only the last component is created. A directory of ours that others may enter is
    narrowed to ``0700``.

    :raises UnsafeFileError: when it is a symbolic link or not a directory, or belongs to
        another user.
    :raises OSError: when it cannot be created or opened.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    try:
        fd = os.open(path, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) or os.path.islink(path):
            raise UnsafeFileError(
                exc.errno, f"{path} is a symbolic link or not a directory"
            ) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISDIR(info.st_mode):  # pragma: no cover - O_DIRECTORY refused it
            raise UnsafeFileError(errno.ENOTDIR, f"{path} is not a directory")
        _check_owner(info, path)
        if info.st_mode & 0o077 and hasattr(os, "fchmod"):
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def open_private(path: str, flags: int = os.O_RDWR, *, create: bool = True) -> int:
    """Open ``path`` for the processes of this user only; return the descriptor.

    :param flags: ``os.O_RDWR`` or ``os.O_RDONLY`` (more flags are added).
    :param create: create a missing file (``0600``).
    :raises UnsafeFileError: when the path is a symbolic link, not a regular file (a
        FIFO, a device, a directory), belongs to another user or has other hard links.
    :raises OSError: when it cannot be opened (missing directory, no permission ...).
    """
    if not _NOFOLLOW and os.path.islink(path):  # pragma: no cover - no O_NOFOLLOW (Windows)
        raise UnsafeFileError(errno.ELOOP, f"{path} is a symbolic link")
    flags |= _NOFOLLOW | _NONBLOCK | _CLOEXEC
    if create:
        flags |= os.O_CREAT
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EMLINK and os.path.islink(path)):
            raise UnsafeFileError(exc.errno, f"{path} is a symbolic link") from None
        raise
    try:
        check_private(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_private(fd: int, path: str) -> None:
    """The checks of :func:`open_private` on an open descriptor (narrows its mode).

    :raises UnsafeFileError: see :func:`open_private`.
    """
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO, not" if stat.S_ISFIFO(info.st_mode) else "not"
        raise UnsafeFileError(errno.EINVAL, f"{path} is {kind} a regular file")
    _check_owner(info, path)
    if info.st_nlink != 1:
        raise UnsafeFileError(
            errno.EMLINK, f"{path} has {info.st_nlink} hard links (it could be another file)"
        )
    if info.st_mode & 0o077 and hasattr(os, "fchmod"):
        os.fchmod(fd, 0o600)


def _check_owner(info: os.stat_result, path: str) -> None:
    uid = our_uid()
    if uid is not None and info.st_uid != uid:
        raise UnsafeFileError(
            errno.EPERM, f"{path} is owned by uid {info.st_uid}, not by this process's uid {uid}"
        )
