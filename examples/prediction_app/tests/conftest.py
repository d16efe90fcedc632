"""Fixtures of the example app's tests, in pytest-flask's style: ``app`` builds the app,
pytest-flask provides ``client``, flask-alerting's plugin provides ``captured_alerts``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from prediction_app import alerting, create_app


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "app_config(**keys): configuration passed to create_app() for this test"
    )


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    config = {
        "TESTING": True,
        # Answer 500 as in production instead of raising into the test: that is the
        # path that alerts.
        "PROPAGATE_EXCEPTIONS": False,
        # The metrics sampler is off in testing; tests that turn it on get their own
        # lock file, so that a running copy of the app cannot take the sampling from them.
        "ALERTING_METRICS_LOCK_FILE": str(tmp_path / "metrics.lock"),
    }
    marker = request.node.get_closest_marker("app_config")
    if marker is not None:
        config.update(marker.kwargs)
    app = create_app(config)
    yield app
    alerting.shutdown(timeout=5)  # stops this app's threads (and any left by the test)
