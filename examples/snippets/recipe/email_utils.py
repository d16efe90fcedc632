"""The recipe's e-mail helpers, before flask-alerting (the "before" of docs/migrating.rst)."""

import os
import smtplib
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText


def send_error_email(traceback_str):
    sender_email = "your_email@example.com"
    receiver_email = "admin@example.com"
    password = os.getenv("EMAIL_PASSWORD")

    message = MIMEMultipart("alternative")
    message["Subject"] = "Error in Flask Application"
    message["From"] = sender_email
    message["To"] = receiver_email

    text = f"An error occurred in your Flask application:\n\n{traceback_str}"
    part = MIMEText(text, "plain")

    message.attach(part)

    try:
        with smtplib.SMTP_SSL("smtp.example.com", 465) as server:
            server.login(sender_email, password)
            server.sendmail(sender_email, receiver_email, message.as_string())
    except Exception as e:
        print(f"Failed to send email: {e}")


def send_metrics_alert(metric, value, threshold):
    sender_email = "your_email@example.com"
    receiver_email = "admin@example.com"
    password = os.getenv("EMAIL_PASSWORD")

    message = MIMEMultipart("alternative")
    message["Subject"] = "Metrics Alert in Flask Application"
    message["From"] = sender_email
    message["To"] = receiver_email

    text = (
        f"The {metric} has exceeded the threshold:\n\n"
        f"Current Value: {value}\nThreshold: {threshold}"
    )
    part = MIMEText(text, "plain")

    message.attach(part)

    try:
        with smtplib.SMTP_SSL("smtp.example.com", 465) as server:
            server.login(sender_email, password)
            server.sendmail(sender_email, receiver_email, message.as_string())
    except Exception as e:
        print(f"Failed to send email: {e}")
