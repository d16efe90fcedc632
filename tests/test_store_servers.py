"""The test helpers for real servers: a missing binary skips, or fails where CI requires it."""

from __future__ import annotations

import pytest

from tests.servers import REQUIRE_SERVERS, require_binary


def test_a_present_binary_is_found() -> None:
    assert require_binary("sh").endswith("/sh")


def test_a_missing_binary_skips_with_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(REQUIRE_SERVERS, raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install no-such-package"):
        require_binary("no-such-server-binary", "no-such-package")


def test_a_missing_binary_fails_where_servers_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(REQUIRE_SERVERS, "1")
    with pytest.raises(pytest.fail.Exception, match="forbids skipping"):
        require_binary("no-such-server-binary", "no-such-package")
