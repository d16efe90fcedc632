"""The installed version of flask-alerting (``flask alerting status``, the User-Agent)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def installed_version(default: str) -> str:
    """The version of the installed distribution; ``default`` when it is not installed."""
    try:
        return version("flask-alerting")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return default
