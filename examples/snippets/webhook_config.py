"""A webhook channel from configuration (docs/notifiers.rst): JSON, or Slack/Mattermost."""

from __future__ import annotations

from flask import Flask

from flask_alerting import FlaskAlerting

app = Flask(__name__)
app.config.update(
    ALERTING_WEBHOOK_URL="https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX",
    ALERTING_WEBHOOK_FORMAT="slack",  # or "json" (the default): the alert as JSON
)
# The URL is the secret: keep it out of the code, e.g.
#   export FLASK_ALERTING_WEBHOOK_URL='https://hooks.slack.com/services/...'
app.config.from_prefixed_env()
alerting = FlaskAlerting(app)
