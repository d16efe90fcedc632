"""``flask alerting`` commands (registered through the ``flask.commands`` entry point).

``test`` sends a test alert through every notifier, ``status`` shows the effective
configuration and the state of the pipeline, ``check`` samples the metric rules once (a
health check). They print readable lines, never a traceback or a password.
"""

from __future__ import annotations

import functools
import os
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from typing import ParamSpec, TypeVar

import click
from flask import current_app
from flask.cli import AppGroup, ScriptInfo

from ._state import State, get_state
from ._version import installed_version
from .alert import Alert
from .config import SMTP_PORTS, ConfigurationError, ConfigVars
from .metrics.machine import RuleStatus
from .metrics.status import SamplingStatus
from .notifiers.base import Notifier
from .notifiers.smtp import SMTPNotifier
from .render import fmt_duration
from .store import StoreError

alerting_cli = AppGroup("alerting", help="Check and test flask-alerting.")

P = ParamSpec("P")
R = TypeVar("R")

#: Exit status of a command whose app could not be configured (click's usage errors).
EXIT_CONFIGURATION = 2


class ConfigurationProblem(click.ClickException):
    """A :class:`~flask_alerting.ConfigurationError` raised while the app was loaded:
    printed as one ``Error:`` line, exit status 2."""

    exit_code = EXIT_CONFIGURATION


def _with_app(f: Callable[P, R]) -> Callable[P, R]:
    """Like Flask's ``with_appcontext``, but a configuration error raised while the app
    is created (``FlaskAlerting(app)`` at import, or ``init_app`` in a factory) is one
    readable line and exit status 2, never a traceback."""

    @click.pass_context
    def decorator(ctx: click.Context, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if not current_app:
            try:
                app = ctx.ensure_object(ScriptInfo).load_app()
            except ConfigurationError as exc:
                raise ConfigurationProblem(
                    f"flask-alerting configuration: {exc}"
                ) from None
            ctx.with_resource(app.app_context())
        return ctx.invoke(f, *args, **kwargs)

    return functools.update_wrapper(decorator, f)

#: Units of the built-in rules' values, for display.
_UNITS = {"cpu": "%", "memory": "%", "disk": "%", "swap": "%", "rss": "MiB"}

#: ``flask alerting check`` exit statuses: 0 healthy, 1 not (a breach, or a probe that
#: failed: its value is unknown). 2 is left alone: container health checks reserve it.
EXIT_OK = 0
EXIT_BREACHED = 1
EXIT_PROBE_FAILED = 1


def _state() -> State:
    try:
        return get_state(current_app)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None


@alerting_cli.command("test", with_appcontext=False)
@_with_app
def test_command() -> None:
    """Send a test alert through every notifier, now, and report each result.

    Exit status 0 when every notifier delivered, 1 otherwise (also when alerts are only
    logged because no notifier is configured: nothing would reach a person).
    """
    state = _state()
    if state.fallback:
        click.echo(
            "FAILED  nothing would reach a person: no ALERTING_SMTP_HOST and no notifiers, "
            "so alerts are only logged (logger 'flask_alerting.notify')"
        )
        raise SystemExit(1)
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
    secret = state.config.smtp_password
    for notifier in state.notifiers:
        try:
            notifier.send(alert)
        except Exception as exc:  # any failure is reported, never a traceback
            failures += 1
            reason = _mask(_one_line(notifier.describe_error(exc)), secret)
            target = _target(notifier)
            hint = _hint(notifier, exc)
            click.echo(
                f"FAILED  {notifier.name}{' ' + target if target else ''}: {reason}"
                + (f" (hint: {hint})" if hint else "")
            )
        else:
            click.echo(f"OK      {notifier.name}: {_mask(notifier.describe(), secret)}")
    if failures:
        click.echo(f"{failures} of {len(state.notifiers)} notifier(s) failed", err=True)
        raise SystemExit(1)


# -- status -------------------------------------------------------------------------------


def _target(notifier: Notifier) -> str:
    """Where a notifier delivers, for a FAILED line (``smtp://host:port``)."""
    if isinstance(notifier, SMTPNotifier):
        return f"smtp://{notifier.host}:{notifier.port}"
    return ""


def _hint(notifier: Notifier, exc: BaseException) -> str | None:
    """The likely cause of a failure, where it is known."""
    if not isinstance(notifier, SMTPNotifier):
        return None
    if isinstance(exc, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(exc):
        if notifier.security == "ssl":
            others = [security for security in SMTP_PORTS if security != "ssl"]
            return (
                f"the server on port {notifier.port} does not start with TLS; port "
                f"{'/'.join(str(SMTP_PORTS[security]) for security in others)} usually "
                f"means {ConfigVars.SMTP_SECURITY}={'/'.join(map(repr, others))}"
            )
    if (
        isinstance(exc, smtplib.SMTPAuthenticationError)
        and notifier.username is not None
        and not notifier.has_password
    ):
        return (
            f"EMAIL_PASSWORD is not set (nor {ConfigVars.SMTP_PASSWORD}), so the login "
            "was tried without a password"
        )
    if (
        isinstance(exc, smtplib.SMTPNotSupportedError)
        and notifier.security == "none"
        and notifier.username is not None
    ):
        return (
            "the server offers no login on a plain connection; "
            f"{ConfigVars.SMTP_SECURITY}='starttls' usually does"
        )
    return None


@alerting_cli.command("status", with_appcontext=False)
@_with_app
def status_command() -> None:
    """Show the configuration (secrets masked), notifiers, metric rules, delivery
    counters and slow-call timings.

    Rule states come from the process that samples the metrics on this host (for
    example a gunicorn worker), with the age of its last sample; when that process is
    not running, is stopped or has not sampled for a few intervals, the rules show as
    "unknown". Delivery counters and timings are this process's.
    """
    click.echo("\n".join(_status_lines(_state())))


def _status_lines(state: State) -> list[str]:
    config = state.config
    enabled = "enabled" if config.enabled else "DISABLED (ALERTING_ENABLED is false)"
    lines = [
        f"flask-alerting {_version()} for app {current_app.name!r} "
        f"(pid {os.getpid()} on {socket.gethostname()}): {enabled}",
        "",
        "Configuration (secrets masked):",
    ]
    public = config.as_public_dict()
    width = max(len(key) for key in public)
    for key, value in public.items():
        text = _config_value(key, value)
        if key == "ALERTING_METRICS_LOCK_FILE" and value is None:
            text = f"None (default: {state.sampler.lock_path})"
        elif key == "ALERTING_STORAGE_URI" and value is None:
            text = f"None (default: {state.store.uri})"
        lines.append(f"  {key:<{width}}  {text}")

    lines += ["", "Notifiers:"]
    secret = config.smtp_password
    lines += _table(
        None,
        [(n.name, _mask(_one_line(n.describe()), secret)) for n in state.notifiers],
    )

    sampling = state.extension.sampling_status()
    lines += ["", f"Metric rules: {_sampler_line(state, sampling)}"]
    if sampling.rules:
        lines += _table(
            ("RULE", "STATE", "VALUE", "THRESHOLD", "RESOLVES BELOW", "FOR", "SINCE", "NOTE"),
            [_rule_row(rule, sampling) for rule in sampling.rules],
        )
    else:
        lines.append("  (none)")

    stats = state.extension.stats()
    windows: dict[str, int] = stats["throttle_windows"]
    lines += [
        "",
        "Delivery (this process):",
        f"  raised {stats['raised']}, suppressed {stats['suppressed']}, "
        f"digests {stats['digests']}, folded {stats['folded']}, dropped {stats['dropped']}",
        f"  queue depth {stats['inbound']} (waiting for the dispatch thread)",
        f"  throttle windows holding a digest: {len(windows)} "
        f"(ALERTING_THROTTLE_SECONDS {_number(config.throttle_seconds)})",
    ]
    if windows:
        lines += _table(
            ("FINGERPRINT", "COUNTED"),
            [(fp, str(count)) for fp, count in sorted(windows.items())],
            indent="    ",
        )
    lines += _table(
        ("NOTIFIER", "QUEUED", "SENT", "FAILED"),
        [
            (name, str(n["queued"]), str(n["sent"]), str(n["failed"]))
            for name, n in stats["notifiers"].items()
        ],
    )

    lines += _store_lines(state)

    timings = state.extension.timing_stats()
    lines += ["", "Slow-call timing (this process):"]
    if timings:
        lines += _table(
            ("NAME", "CALLS", "SLOW", "MEAN", "P95", "MAX"),
            [
                (
                    name,
                    str(t.count),
                    str(t.slow),
                    *(_seconds(v) if t.count else "-" for v in (t.mean, t.p95, t.max)),
                )
                for name, t in sorted(timings.items())
            ],
        )
    else:
        lines.append("  (no timed call yet)")
    return lines


#: Windows listed at most by ``status`` (the soonest to end).
STATUS_WINDOWS = 20


def _store_lines(state: State) -> list[str]:
    """The shared store: its open windows (every process's) and registered processes."""
    store = state.store
    if not store.shared:
        return []
    if store.scheme == "redis":
        who = "every host that reaches it"
    elif state.config.storage_uri is None:
        who = "the processes of this host"
    else:
        who = "the processes that open this file"
    lines = ["", f"Throttle store (shared by {who}): {store.uri}"]
    now = time.time()
    try:
        windows = store.windows(now=now)
        processes = store.processes(now=now)
    except StoreError as exc:
        return [*lines, f"  does not answer: {exc} (each process throttles on its own)"]
    alive = sum(1 for p in processes if p.alive)
    lines.append(
        f"  open windows: {len(windows)}; processes registered: {len(processes)} "
        f"({alive} alive)"
    )
    if windows:
        lines += _table(
            ("FINGERPRINT", "COUNTED", "ENDS IN"),
            [
                (w.fingerprint, str(w.count), fmt_duration(max(0.0, w.end - now)))
                for w in windows[:STATUS_WINDOWS]
            ],
            indent="    ",
        )
        if len(windows) > STATUS_WINDOWS:
            lines.append(f"    ... and {len(windows) - STATUS_WINDOWS} more")
    return lines


def _sampler_line(state: State, sampling: SamplingStatus) -> str:
    """Who samples, when last, and whether the states below are current: one line."""
    config = state.config
    every = f"every {_number(sampling.interval)} s"
    ago = None if sampling.last_sample_age is None else _ago(sampling.last_sample_age)
    if sampling.this_process:
        who = f"this process (pid {sampling.pid})"
        if sampling.current:
            line = f"sampled {every} by {who}, last sample {ago}"
        elif ago is None:
            line = f"sampled {every} by {who}; no sample yet"
        else:
            why = (
                f"whose sampler {sampling.reason}"
                if sampling.reason in ("is stopped", "retired")
                else f"which {sampling.reason}"
            )
            line = f"last sampled {ago} by {who}, {why}: states below are not current"
    elif sampling.pid is None or ago is None:
        line = "no sample recorded"
    elif sampling.current:
        line = f"sampled {every} by pid {sampling.pid}, last sample {ago}"
    else:
        line = (
            f"last sampled {ago} by pid {sampling.pid}, which {sampling.reason}: "
            "states below are not current"
        )
    if sampling.lock_path is not None:
        held = {True: ", held", False: ", free", None: ""}[sampling.lock_held]
        line += f" (lock {sampling.lock_path}{held})"
        if sampling.pid is None and sampling.lock_held is False:
            line += f": no process of this host samples app {current_app.name!r}"
    if sampling.standing_by:
        line += "; this process stands by"
    if not config.enabled or not config.metrics_enabled:
        off = "ALERTING_ENABLED" if not config.enabled else "ALERTING_METRICS_ENABLED"
        line += f"; this process does not sample ({off} is false)"
    return line


def _ago(seconds: float) -> str:
    return "just now" if seconds < 1 else f"{fmt_duration(seconds)} ago"


def _rule_row(rule: RuleStatus, sampling: SamplingStatus) -> tuple[str, ...]:
    unit = _UNITS.get(rule.name, "")
    value = "-" if rule.value is None else _with_unit(rule.value, unit)
    if rule.current:
        note = f"probe failed: {rule.error}" if rule.error else ""
    elif rule.last_state is not None:
        note = f"last sample: {rule.last_state}, {value}"
    elif sampling.current and rule.note:
        note = rule.note  # this rule only: never sampled, or another definition
    else:
        note = "never sampled"
    return (
        rule.name,
        rule.state,
        value if rule.current else "-",
        _with_unit(rule.threshold, unit),
        _with_unit(rule.resolve_below, unit),
        fmt_duration(rule.for_),
        "-" if rule.since is None else fmt_duration(rule.since),
        _one_line(note),
    )


# -- check --------------------------------------------------------------------------------


@alerting_cli.command("check", with_appcontext=False)
@click.option(
    "--window",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    help="Seconds over which CPU percent is measured.",
)
@_with_app
def check_command(window: float) -> None:
    """Sample every metric rule once and compare it with its threshold.

    Changes no rule state and sends nothing. Exit status 0 when no rule is above its
    threshold, 1 when one is or when a probe failed (its value is unknown): usable as a
    health check.
    """
    results = _state().extension.check(window=window)
    if not results:
        click.echo("no metric rules (all built-in rules are off and none was added)")
        return
    rows = []
    breached = failed = 0
    for result in results:
        unit = _UNITS.get(result.name, "")
        if result.error is not None:
            failed += 1
            verdict = f"ERROR  {_one_line(result.error)}"
        elif result.breached:
            breached += 1
            verdict = "ABOVE"
        else:
            verdict = "ok"
        value = "-" if result.value is None else _with_unit(result.value, unit)
        rows.append((result.name, value, _with_unit(result.threshold, unit), verdict))
    click.echo("\n".join(_table(("RULE", "VALUE", "THRESHOLD", "RESULT"), rows, indent="")))
    if breached:
        click.echo(f"{breached} of {len(results)} rule(s) above the threshold")
        raise SystemExit(EXIT_BREACHED)
    if failed:
        click.echo(f"{failed} of {len(results)} probe(s) failed")
        raise SystemExit(EXIT_PROBE_FAILED)
    click.echo(f"all {len(results)} rule(s) below their threshold")


# -- formatting ---------------------------------------------------------------------------


def _table(
    header: Sequence[str] | None, rows: Iterable[Sequence[str]], indent: str = "  "
) -> list[str]:
    """Left-aligned columns two spaces apart (trailing blanks removed)."""
    all_rows = ([list(header)] if header else []) + [list(row) for row in rows]
    if not all_rows:
        return [f"{indent}(none)"]
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(all_rows[0]))]
    lines = []
    for row in all_rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def _number(value: float) -> str:
    """``85.04``, ``150``, ``0.05``: two decimals at most, no float noise."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _with_unit(value: float, unit: str) -> str:
    return f"{_number(value)} {unit}".rstrip()


def _seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _config_value(key: str, value: object) -> str:
    if value is None:
        return "(not set)" if key.endswith("PASSWORD") else "None"
    if isinstance(value, (tuple, list)):
        return ", ".join(str(item) for item in value) if value else "(none)"
    if isinstance(value, float):
        return _number(value)
    return _one_line(str(value))


def _one_line(text: str) -> str:
    return " ".join(text.split())


#: Shorter passwords are not looked for in text: they would blank out unrelated parts.
MIN_MASKED_LENGTH = 6


def _mask(text: str, secret: str | None) -> str:
    """``text`` without the SMTP password. Belt and braces for notifiers written by users:
    the built-in ones never put it in their descriptions."""
    if secret and len(secret) >= MIN_MASKED_LENGTH:
        return text.replace(secret, "***")
    return text


def _version() -> str:
    return installed_version(default="(development)")


__all__ = ["ConfigurationProblem", "alerting_cli"]
