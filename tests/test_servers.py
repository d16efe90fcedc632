"""The test servers' own rules: a missing server skips here and fails in CI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.servers import REQUIRE_SERVERS, require_binary

ROOT = Path(__file__).resolve().parent.parent


def test_a_missing_server_skips_with_its_package_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_SERVERS, raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install no-such-pkg"):
        require_binary("no-such-server-binary", package="no-such-pkg")


def test_a_missing_server_fails_where_servers_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(REQUIRE_SERVERS, "1")
    with pytest.raises(pytest.fail.Exception, match="no-such-server-binary not found"):
        require_binary("no-such-server-binary", package="no-such-pkg")


def test_a_present_server_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_SERVERS, "1")
    assert require_binary("no-such-server-binary", package="x", paths=(sys.executable,)) == (
        sys.executable
    )


def test_ci_installs_the_servers_and_requires_them() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install = max(
        ci.index("install_server prometheus-alertmanager prometheus-alertmanager"),
        ci.index("install_server redis-server redis-server"),
    )
    required = ci.index(f"export {REQUIRE_SERVERS}=1")
    first_tests = ci.index("== tests")
    assert install < required < first_tests
    assert "DEBIAN_FRONTEND=noninteractive apt-get install" in ci
