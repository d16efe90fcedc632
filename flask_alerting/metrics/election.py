"""Which process of a host samples an app's metrics: an election through ``fcntl.flock``.

Several processes serving the same app on one host (gunicorn workers, the Werkzeug
reloader's parent and child) would each alert about the same host. So only the process
holding an exclusive ``fcntl.flock`` on a lock file samples; the others retry the
non-blocking lock every interval and take over within one interval when the holder dies
(the kernel releases a dead process's locks). The holder also records its rules' states
in the file (:mod:`.shared` says what and why); this module reads and writes its bytes.

After ``fork()`` the child never unlocks the parent's lock: flock locks belong to the
open file, which parent and child share, so the child only closes its copy
(:meth:`Election.forget`).

Another local user must not be able to silence the alerts through that file (by locking
it, or by writing a forged state into it), so it is opened as :mod:`flask_alerting._files`
says: by default in a directory only this user can use (``$XDG_RUNTIME_DIR``, else
``<temp dir>/flask-alerting-<uid>/``, created ``0700``), created ``0600``, never through
a symbolic link, and used only when it is a regular file of ours with one link. Any other
file is refused with an error naming it; the process then samples on its own (alerts
still flow, possibly once per process). A configured ``ALERTING_METRICS_LOCK_FILE`` that
is a symbolic link is a :class:`~flask_alerting.ConfigurationError` (:func:`check_lock_file`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re

from .._files import UnsafeFileError, default_directory, open_private, private_directory
from ..config import ConfigurationError, ConfigVars

try:  # pragma: no cover - always there on POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: every process samples
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("flask_alerting")

#: At most this many bytes of the lock file are read (the states take a few KiB).
MAX_READ = 1 << 20


def default_lock_path(app_name: str) -> str:
    """``<dir>/flask-alerting-<uid>-<app>-<hash>.lock`` in a directory only this user can
    use: ``$XDG_RUNTIME_DIR``, else ``<temp dir>/flask-alerting-<uid>`` (see
    :func:`~flask_alerting._files.default_directory`; created when the lock is first
    taken)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", app_name)[:60] or "app"
    digest = hashlib.sha1(app_name.encode("utf-8", "backslashreplace"), usedforsecurity=False)
    uid = os.getuid() if hasattr(os, "getuid") else 0
    name = f"flask-alerting-{uid}-{slug}-{digest.hexdigest()[:8]}.lock"
    return os.path.join(default_directory(), name)


def check_lock_file(path: str | None) -> None:
    """Refuse a configured lock file that is a symbolic link (it is never followed).

    :raises ConfigurationError: naming ``ALERTING_METRICS_LOCK_FILE``.
    """
    if path is not None and os.path.islink(path):
        raise ConfigurationError(
            ConfigVars.METRICS_LOCK_FILE,
            "a path that is not a symbolic link (the lock file is never followed)",
            path,
        )


class Election:
    """The lock file of one app's sampler, and whether this process samples.

    Not thread-safe: the sampler calls it with its own lock held (or from its thread).

    :param path: the lock file; None: no election, this process samples.
    :param app_name: for log lines.
    :param interval: seconds between two tries, for log lines.
    :param private_dir: the file's directory is ours to create (``0700``) and must be
        closed to other users (the default path's directory).
    """

    def __init__(
        self, path: str | None, *, app_name: str, interval: float, private_dir: bool = False
    ) -> None:
        self.path = path
        self.app_name = app_name
        self.interval = interval
        self.private_dir = private_dir
        #: The open lock file (None: not open).
        self.fd: int | None = None
        #: This process samples: it holds the lock, or there is no (usable) lock file.
        self.leader = path is None or fcntl is None
        self._warned = False
        self._standing_by = False

    @property
    def locked(self) -> bool:
        """True while this process holds the lock (and so may write the file)."""
        return self.fd is not None and self.leader

    @property
    def standing_by(self) -> bool:
        """True when this process tried the lock, found it held by another and does not
        hold it now (it retries every interval)."""
        return self._standing_by and not self.leader

    def elect(self) -> bool:
        """Try the lock once (never blocks). True when this process samples from now on.

        That is when it took the lock (:attr:`locked`), and also when the file cannot be
        used: then it samples on its own, as each process of the app will (said once,
        naming the file).
        """
        assert self.path is not None and fcntl is not None
        if self.fd is None:
            try:
                if self.private_dir:
                    private_directory(os.path.dirname(self.path))
                self.fd = open_private(self.path)
            except UnsafeFileError as exc:
                self.refuse(exc)
                self.leader = True
                return True
            except OSError as exc:
                if not self._warned:
                    self._warned = True
                    logger.warning(
                        "flask-alerting: cannot open the metrics lock file %s (%s); "
                        "sampling without it, so each process of app %r may alert "
                        "(set ALERTING_METRICS_LOCK_FILE to a writable path)",
                        self.path,
                        exc,
                        self.app_name,
                    )
                self.leader = True
                return True
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if not self._standing_by:
                self._standing_by = True
                logger.info(
                    "flask-alerting: pid %d stands by: another process samples the "
                    "metrics of app %r (lock %s)",
                    os.getpid(),
                    self.app_name,
                    self.path,
                )
            logger.debug(
                "flask-alerting: pid %d: metrics lock of app %r busy, retrying in %g s",
                os.getpid(),
                self.app_name,
                self.interval,
            )
            return False
        self.leader = True
        return True

    def refuse(self, exc: UnsafeFileError) -> None:
        """Say (once) that the lock file is not used, and why."""
        if self._warned:
            return
        self._warned = True
        logger.error(
            "flask-alerting: refusing the metrics lock file %s: %s; it could be another "
            "user's, so it is neither locked, read nor written, and each process of app %r "
            "samples on its own (remove it, or set ALERTING_METRICS_LOCK_FILE to a path in "
            "a directory only this user can write)",
            self.path,
            exc.strerror or exc,
            self.app_name,
        )

    def release(self) -> None:
        """Give the lock back and close the file (for another process to take over)."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            if self.leader and fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:  # pragma: no cover
            pass
        finally:
            os.close(fd)
            self.leader = self.path is None

    def forget(self) -> None:
        """In the child after ``fork()``: close the inherited file without unlocking it
        (that would release the parent's lock). Make a new :class:`Election` after."""
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:  # pragma: no cover
                pass

    # -- the file's content -------------------------------------------------------------------

    def write(self, payload: bytes) -> None:
        """Overwrite the file with ``payload`` while holding the lock (else do nothing).

        Padded with spaces over what a longer earlier content left, in one write and
        without a truncate: no moment (and no crash) leaves a file that holds anything but
        ``payload`` and spaces. The file stays at its largest size, a few KiB.
        """
        fd = self.fd
        if fd is None or not self.leader:
            return
        try:
            size = os.fstat(fd).st_size
            if size > len(payload):
                payload += b" " * (size - len(payload))
            view = memoryview(payload)
            offset = 0
            while offset < len(view):
                written = os.pwrite(fd, view[offset:], offset)
                if written <= 0:  # pragma: no cover - a regular file never does this
                    raise OSError("the lock file accepted no bytes")
                offset += written
        except OSError as exc:  # pragma: no cover - disk full and the like
            logger.debug("flask-alerting: could not write the metrics state: %s", exc)

    def read(self) -> bytes | None:
        """The file's content, through the open file (None: not open, or unreadable)."""
        fd = self.fd
        if fd is None:
            return None
        return _pread(fd)

    def held(self) -> bool | None:
        """Whether some process holds the lock, told without taking part in the election.

        The file is opened anew read-only and a *shared* lock tried without blocking: it
        is refused only while another open file holds the exclusive one (a sampling
        process, or this one's own :class:`Election`). Taken, it is given back at once;
        a process trying the exclusive lock at that very moment finds it busy and
        retries one interval later, as it would behind any holder.

        :return: True: held; False: free (or no file); None: cannot be told (a refused
            file, no ``flock``).
        """
        assert self.path is not None
        if fcntl is None:  # pragma: no cover - Windows
            return None
        try:
            fd = open_private(self.path, os.O_RDONLY, create=False)
        except UnsafeFileError as exc:
            self.refuse(exc)
            return None
        except FileNotFoundError:
            return False
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return None
        finally:
            os.close(fd)  # also gives a shared lock back
        return False

    def peek(self) -> bytes | None:
        """The file's content, opened anew read-only: what the holder last wrote, seen
        from any process (None: no file, or one that is refused)."""
        assert self.path is not None
        try:
            fd = open_private(self.path, os.O_RDONLY, create=False)
        except UnsafeFileError as exc:
            self.refuse(exc)
            return None
        except OSError:
            return None
        try:
            return _pread(fd)
        finally:
            os.close(fd)


def _pread(fd: int) -> bytes | None:
    try:
        return os.pread(fd, MAX_READ, 0)
    except OSError:
        return None
