"""``flask alerting`` commands (registered through the ``flask.commands`` entry point)."""

from __future__ import annotations

from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from .alert import Alert

alerting_cli = AppGroup("alerting", help="Check and test flask-alerting.")


def _state() -> Any:
    state = current_app.extensions.get("alerting")
    if state is None:
        raise click.ClickException(
            f"flask-alerting is not initialised on app {current_app.name!r} "
            "(call FlaskAlerting(app) or alerting.init_app(app) in the app factory)"
        )
    return state


@alerting_cli.command("test")
def test_command() -> None:
    """Send a test alert through every notifier, now, and report each result.

    Exit status 0 when every notifier delivered, 1 otherwise.
    """
    state = _state()
    alert = Alert(
        kind="custom",
        severity="info",
        title="Test alert from flask-alerting",
        message=(
            "This is a test alert sent by 'flask alerting test'. If you can read it, "
            f"alerts of app {current_app.name!r} reach you."
        ),
        labels=dict(state.labels),
    )
    failures = 0
    for notifier in state.notifiers:
        try:
            notifier.send(alert)
        except Exception as exc:  # any failure is reported, never a traceback
            failures += 1
            click.echo(f"FAILED  {notifier.name}: {notifier.describe_error(exc)}")
        else:
            click.echo(f"OK      {notifier.name}: {notifier.describe()}")
    if failures:
        click.echo(f"{failures} of {len(state.notifiers)} notifier(s) failed", err=True)
        raise SystemExit(1)
