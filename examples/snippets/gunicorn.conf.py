"""gunicorn settings for an app using flask-alerting (docs/deployment.rst).

    gunicorn -c gunicorn.conf.py "prediction_app:create_app()"
"""

import os

bind = "0.0.0.0:8000"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))

# A stopping worker first flushes its pending alerts and digests, for at most
# ALERTING_SHUTDOWN_TIMEOUT seconds (5 by default): give it more time than that.
graceful_timeout = 30
