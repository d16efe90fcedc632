"""The hand-written recipe's settings, as flask-alerting configuration (docs/migrating.rst)."""

from __future__ import annotations

RECIPE_SETTINGS = {
    # email_utils.py: smtplib.SMTP_SSL("smtp.example.com", 465), then
    # server.login(sender_email, os.getenv("EMAIL_PASSWORD"))
    "ALERTING_SMTP_HOST": "smtp.example.com",
    "ALERTING_SMTP_SECURITY": "ssl",  # the default: implicit TLS, port 465
    "ALERTING_SMTP_USERNAME": "your_email@example.com",
    # No ALERTING_SMTP_PASSWORD: the EMAIL_PASSWORD environment variable, as before.
    "ALERTING_MAIL_SENDER": "your_email@example.com",
    "ALERTING_MAIL_RECIPIENTS": "admin@example.com",
    # logging.basicConfig(filename="error.log", format="%(asctime)s:%(levelname)s:...")
    "ALERTING_LOG_FILE": "error.log",
    # check_system_metrics(): 80 % CPU and memory. The recipe alerted on the first sample
    # above; the default (30 s) waits for a breach to last, which avoids most noise.
    "ALERTING_CPU_THRESHOLD": 80.0,
    "ALERTING_MEMORY_THRESHOLD": 80.0,
    "ALERTING_METRICS_FOR": 0,
    # if execution_time > 2: ... (the default threshold of @alerting.timed)
    "ALERTING_SLOW_THRESHOLD": 2.0,
}
