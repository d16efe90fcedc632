"""An error's fingerprint: exception class, code location and endpoint, never the message.

The code location names the file by its path relative to the ``sys.path`` entry that
holds it (:func:`source_key`: ``myapp/views.py``, ``app.py``), never by its absolute path:
hosts that deploy the same code at different paths (``/srv/a``, ``/srv/b``, a container's
``/app``) compute the same fingerprints, so a shared store gives their occurrences one
window. The same code at the same place keeps its fingerprint from run to run.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
from types import TracebackType

from ..alert import make_fingerprint

_LIB_DIRS = tuple(
    {os.path.abspath(p) for k, p in sysconfig.get_paths().items() if k in ("stdlib", "platstdlib")}
)
#: flask-alerting's own files: library code too.
_SELF_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def exception_name(exc: BaseException) -> str:
    """The class name, qualified with its module unless builtin."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


@functools.lru_cache(maxsize=4096)
def _is_library_file(filename: str) -> bool:
    if filename.startswith("<"):
        return True
    path = os.path.abspath(filename)
    return (
        "site-packages" in path
        or "dist-packages" in path
        or path.startswith(_SELF_DIR)
        or any(path.startswith(d + os.sep) for d in _LIB_DIRS)
    )


@functools.lru_cache(maxsize=4096)
def source_key(filename: str) -> str:
    """``filename`` relative to the longest ``sys.path`` entry that contains it, with
    ``/`` separators (``myapp/views.py``); its base name when none does; unchanged when
    it is no file (``<string>``). Cached per file name (``sys.path`` is read once per
    file)."""
    if filename.startswith("<"):
        return filename
    path = os.path.abspath(filename)
    best = ""
    for entry in sys.path:
        if not isinstance(entry, str):
            continue
        root = os.path.abspath(entry or os.curdir)
        if len(root) > len(best) and path.startswith(root.rstrip(os.sep) + os.sep):
            best = root
    relative = os.path.relpath(path, best) if best else os.path.basename(path)
    return relative.replace(os.sep, "/")


def code_location(tb: TracebackType | None) -> str:
    """``file:function:line`` of the innermost frame in the app's own code, the file as
    :func:`source_key` names it (the same wherever the code is deployed).

    Library frames (site-packages, the standard library, flask-alerting itself) are
    skipped; falls back to the innermost frame when every frame is library code. One
    plain loop over the traceback (a 20,000-frame recursion costs a few milliseconds).
    """
    innermost: TracebackType | None = None
    app_entry: TracebackType | None = None
    is_library = _is_library_file
    while tb is not None:
        innermost = tb
        if not is_library(tb.tb_frame.f_code.co_filename):
            app_entry = tb
        tb = tb.tb_next
    chosen = app_entry or innermost
    if chosen is None:
        return ""
    code = chosen.tb_frame.f_code
    return f"{source_key(code.co_filename)}:{code.co_name}:{chosen.tb_lineno}"


def error_fingerprint(exc: BaseException, endpoint: str | None) -> str:
    """Exception class + code location (+ endpoint); never the message text.

    Cheap enough for the request path: a walk over the traceback's frames (library
    checks are cached) and a cached hash.
    """
    return _fingerprint(exception_name(exc), code_location(exc.__traceback__), endpoint)


@functools.lru_cache(maxsize=1024)
def _fingerprint(name: str, location: str, endpoint: str | None) -> str:
    return make_fingerprint("error", name, location, endpoint)
