"""pytest plugin (registered through the ``pytest11`` entry point).

Provides the ``captured_alerts`` fixture: the alerts raised by the test's ``app`` fixture
(pytest-flask's convention) during the test, recorded instead of delivered.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from .testing import record_alerts

if TYPE_CHECKING:
    from .alert import Alert


@pytest.fixture
def captured_alerts(request: pytest.FixtureRequest) -> Iterator[list[Alert]]:
    """A list receiving the alerts raised by the ``app`` fixture's app during the test.

    The alerts are not delivered to any notifier. Requires an ``app`` fixture returning a
    Flask app on which flask-alerting is initialised.
    """
    app = request.getfixturevalue("app")
    with record_alerts(app) as alerts:
        yield alerts
