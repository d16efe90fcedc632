"""Chat and paging services through Apprise (docs/notifiers.rst).

Needs the extra: pip install "flask-alerting[apprise]".
"""

from __future__ import annotations

import os

from flask import Flask

from flask_alerting import FlaskAlerting

app = Flask(__name__)
# One or more Apprise URLs (a list, or one string separated by commas or blanks); they
# hold tokens, so they come from the environment here.
app.config["ALERTING_APPRISE_URLS"] = os.environ.get(
    "APPRISE_URLS",
    "slack://TokenA/TokenB/TokenC, ntfys://my-team-alerts",
)
app.config.from_prefixed_env()  # FLASK_ALERTING_* keys from the environment
alerting = FlaskAlerting(app)
