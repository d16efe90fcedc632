"""The extension object, created once and initialised per app in :func:`create_app`.

Kept in its own module so that ``model.py`` can decorate with it at import time without
importing the app factory.
"""

from __future__ import annotations

from flask_alerting import FlaskAlerting

alerting = FlaskAlerting()
