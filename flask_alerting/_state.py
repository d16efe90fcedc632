"""The per-app state (``app.extensions["alerting"]``): how it is built, found and ended.

:func:`find_state` is the one lookup; :func:`get_state` is the same with an actionable
error, for the extension's methods, the CLI and the test helpers. Sources reach the
delivery pipeline through :meth:`State.submit` and :meth:`State.counts_only`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import socket
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from flask import Flask

from . import _alert_log
from ._lifecycle import guard
from ._parsers import STORAGE_FORMS
from .alert import AlertItem
from .config import Config, ConfigurationError, ConfigVars
from .delivery import Pipeline, RetryPolicy, store_link
from .dispatch import Clock
from .metrics.builtin import build_sampler
from .metrics.rules import RuleSpec
from .metrics.sampler import Sampler
from .notifiers._config import notifiers_from_config
from .notifiers.base import Notifier
from .notifiers.log import LogNotifier
from .store import InvalidStorageURI, Limits, Store, parse_storage_uri

if TYPE_CHECKING:
    from ._extension import FlaskAlerting

logger = logging.getLogger("flask_alerting")

EXTENSION_KEY = "alerting"


@dataclasses.dataclass(eq=False)
class State:
    """Everything flask-alerting keeps for one app (``app.extensions["alerting"]``).

    Nothing here refers to the app (only weakly): the app holds its state, never the
    other way round, so an app is freed as soon as its last reference goes.
    """

    extension: FlaskAlerting
    app_ref: weakref.ref[Flask]
    config: Config
    notifiers: tuple[Notifier, ...]
    labels: dict[str, str]
    pipeline: Pipeline
    sampler: Sampler
    alert_log: logging.Logger
    #: Where throttle windows live (``ALERTING_STORAGE_URI``); used only by the
    #: pipeline's dispatch thread, closed at shutdown.
    store: Store
    log_handler: logging.Handler | None = None
    #: The only notifier is the LogNotifier used when none was configured.
    fallback: bool = False

    @property
    def app(self) -> Flask | None:
        """The app (None once it was freed)."""
        return self.app_ref()

    def submit(self, item: AlertItem) -> None:
        """Hand an alert, or a builder of one, to the pipeline. Never blocks."""
        self.pipeline.submit(item)

    def counts_only(self, fingerprint: str) -> bool:
        """Whether an already-logged occurrence of ``fingerprint`` would only be counted
        (into a digest, or into a flood summary), so its source may skip capturing details
        (see :meth:`~flask_alerting.delivery.Pipeline.counts_only`)."""
        return self.pipeline.counts_only(fingerprint)

    def shutdown(self, timeout: float | None) -> bool:
        """Stop the sampler, shut the pipeline down (this process leaves the store),
        close the store and the log file. True when nothing was lost."""
        self.sampler.stop()
        ok = self.pipeline.shutdown(timeout)
        with guard("closing the alert store"):
            self.store.close()
        _alert_log.close_alert_log(self.alert_log, self.log_handler)
        return ok


def find_state(app: object) -> State | None:
    """The state of ``app``, or None when flask-alerting is not initialised on it."""
    extensions = getattr(app, "extensions", None)
    state = extensions.get(EXTENSION_KEY) if isinstance(extensions, dict) else None
    return state if isinstance(state, State) else None


def get_state(app: Flask, extension: FlaskAlerting | None = None) -> State:
    """The state of ``app`` (initialised by ``extension``, when given).

    :raises RuntimeError: saying what to call, when there is none.
    """
    state = find_state(app)
    if state is None or (extension is not None and state.extension is not extension):
        raise RuntimeError(
            f"flask-alerting is not initialised on app {app.name!r}: did you call "
            "FlaskAlerting(app) or alerting.init_app(app)?"
        )
    return state


def open_store(config: Config, app_name: str) -> Store:
    """The store ``ALERTING_STORAGE_URI`` names (None: this host's default SQLite file),
    with the outbox's bounds (``ALERTING_OUTBOX_MAX_AGE``, ``ALERTING_OUTBOX_MAX_RECORDS``),
    not connected yet: the dispatch thread connects when it first needs it. Each
    operation is bounded by :data:`~flask_alerting.delivery.store_link.TIMEOUT`.

    :raises ConfigurationError: naming the key, for a URI that names no store (or needs
        a package that is not installed).
    """
    limits = Limits(max_age=config.outbox_max_age, max_records=config.outbox_max_records)
    try:
        return parse_storage_uri(
            config.storage_uri, app_name=app_name, timeout=store_link.TIMEOUT, limits=limits
        )
    except InvalidStorageURI as exc:
        raise ConfigurationError(
            ConfigVars.STORAGE_URI, f"None or a storage URI ({STORAGE_FORMS}): {exc}"
        ) from None


def create_state(
    app: Flask,
    config: Config,
    *,
    extension: FlaskAlerting,
    notifiers: Sequence[Notifier],
    specs: Iterable[RuleSpec],
    clock: Clock = time.monotonic,
    retry_policy: RetryPolicy | None = None,
) -> State:
    """Build the state of ``app``: its store (not connected yet), notifiers (those of
    the configuration, then ``notifiers``; a :class:`LogNotifier` when there is none),
    alert log, pipeline and metrics sampler (not started). When the app is freed, its
    threads deliver what it raised and end, and its store is closed.

    :raises ConfigurationError: naming the key of a notifier, file or store that cannot
        be used.
    """
    store = open_store(config, app.name)
    built = [*notifiers_from_config(config), *notifiers]
    fallback = not built
    if fallback:
        built.append(LogNotifier())
        logger.warning(
            "flask-alerting: no ALERTING_SMTP_HOST and no notifiers for app %r; alerts "
            "will only be logged (logger 'flask_alerting.notify')",
            app.name,
        )
    labels = {"app": app.name, "host": socket.gethostname()}
    alert_log, handler = _alert_log.open_alert_log(app.name, config.log_file)
    pipeline = Pipeline(
        sender=app,
        name=app.name,
        notifiers=built,
        queue_size=config.queue_size,
        throttle_seconds=config.throttle_seconds,
        retry=retry_policy or RetryPolicy(give_up_after=config.retry_seconds),
        log=functools.partial(_alert_log.write, alert_log),
        log_logged=functools.partial(_alert_log.write_logged, alert_log),
        wants_logged=lambda: bool(_alert_log.logged_handlers(alert_log)),
        clock=clock,
        shutdown_timeout=config.shutdown_timeout,
        rate_limit=config.rate_limit,
        labels=labels,
        store=store,
    )
    sampler = build_sampler(
        config, app_name=app.name, specs=specs, submit=pipeline.submit, labels=labels,
        clock=clock, sender=app,
    )
    weakref.finalize(app, _app_freed, pipeline, sampler, alert_log, handler, store).atexit = False
    return State(
        extension=extension,
        app_ref=weakref.ref(app),
        config=config,
        notifiers=tuple(built),
        labels=labels,
        pipeline=pipeline,
        sampler=sampler,
        alert_log=alert_log,
        store=store,
        log_handler=handler,
        fallback=fallback,
    )


def _app_freed(
    pipeline: Pipeline,
    sampler: Sampler,
    alert_log: logging.Logger,
    handler: logging.Handler | None,
    store: Store,
) -> None:
    """An app was freed: its sampler stops, its pipeline delivers what it raised and
    ends its threads (leaving the store), then its store and log file are closed. Never
    waits."""
    with guard("stopping the metrics sampler of a freed app"):
        sampler.close_soon()

    def close() -> None:
        with guard("closing the alert store of a freed app"):
            store.close()
        _alert_log.close_alert_log(alert_log, handler)

    with guard("retiring the pipeline of a freed app"):
        pipeline.retire(then=close)
