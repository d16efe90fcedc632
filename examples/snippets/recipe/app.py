"""A hand-written try/except recipe, before flask-alerting (the "before" of docs/migrating.rst).

The code of the design document, made complete enough to compile: every route wraps its
body in try/except, logs the traceback and e-mails it (email_utils.py); the prediction is
timed by hand; check_system_metrics() blocks its caller for one second per call.
"""

import logging
import time
import traceback

import psutil
from email_utils import send_error_email, send_metrics_alert
from flask import Flask, render_template, request
from model import model, prediction_from_model

# Configuration du logger
logging.basicConfig(
    filename="error.log", level=logging.ERROR, format="%(asctime)s:%(levelname)s:%(message)s"
)

app = Flask(__name__)


@app.route("/", methods=["GET", "POST"])
def index():
    try:
        cat_predict = None
        if request.method == "POST":
            selected_hour = int(request.form["hour"])

            # Mesurer le temps d'exécution de la prédiction
            start_time = time.time()
            cat_predict = prediction_from_model(model, selected_hour)
            end_time = time.time()
            execution_time = end_time - start_time

            if execution_time > 2:
                alert_message = (
                    f"prediction_from_model took {execution_time} seconds to execute, "
                    "exceeding the 2-second threshold."
                )
                logging.warning(alert_message)
                send_metrics_alert("Prediction Execution Time", execution_time, 2)

        return render_template("index.html", prediction=cat_predict)
    except Exception:
        error_message = traceback.format_exc()
        logging.error(error_message)
        send_error_email(error_message)
        return "An error occurred. The administrators have been notified."


def check_system_metrics():
    cpu_usage = psutil.cpu_percent(interval=1)
    memory_info = psutil.virtual_memory()
    memory_usage = memory_info.percent

    cpu_threshold = 80.0  # Seuil pour l'utilisation du CPU en pourcentage
    memory_threshold = 80.0  # Seuil pour l'utilisation de la RAM en pourcentage

    if cpu_usage > cpu_threshold:
        alert_message = (
            f"CPU Usage has exceeded the threshold: Current Value: {cpu_usage}, "
            f"Threshold: {cpu_threshold}"
        )
        logging.warning(alert_message)
        send_metrics_alert("CPU Usage", cpu_usage, cpu_threshold)

    if memory_usage > memory_threshold:
        alert_message = (
            f"Memory Usage has exceeded the threshold: Current Value: {memory_usage}, "
            f"Threshold: {memory_threshold}"
        )
        logging.warning(alert_message)
        send_metrics_alert("Memory Usage", memory_usage, memory_threshold)
