"""An app's sampler as its configuration asks: the built-in rules it enables, and the
``ALERTING_METRICS_*`` defaults that the rules of ``add_rule`` get."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from ..alert import Alert
from ..config import Config
from ..dispatch import Clock
from .election import check_lock_file, default_lock_path
from .probes import (
    CPUPercent,
    DiskPercent,
    LoadPerCore,
    MemoryPercent,
    ProcessRSS,
    SwapPercent,
)
from .processes import ProcessTable
from .rules import Rule, RuleSpec, default_hysteresis
from .sampler import Sampler


class _BuiltinProbe(Protocol):
    """What the built-in probes have besides being callable: their name in e-mails and
    the unit of their values."""

    @property
    def display_name(self) -> str: ...

    @property
    def unit(self) -> str: ...

    def __call__(self) -> float: ...


def default_rules(config: Config) -> list[Rule]:
    """The built-in rules enabled by ``config``.

    CPU and memory percent by default; disk, swap, process RSS and load per core when
    their threshold is set. RSS (MiB) and load per core are not percentages: for them
    ``ALERTING_METRICS_HYSTERESIS`` is read as a percentage of the threshold. Either way
    the hysteresis is at most half the threshold (:func:`.rules.default_hysteresis`), so
    a low threshold (``ALERTING_CPU_THRESHOLD = 3``) still resolves.
    """
    rules: list[Rule] = []

    def add(
        name: str, probe: _BuiltinProbe, threshold: float | None, relative: bool = False
    ) -> None:
        if threshold is None:
            return
        rules.append(
            Rule(
                name=name,
                probe=probe,
                threshold=threshold,
                hysteresis=default_hysteresis(
                    threshold, config.metrics_hysteresis, relative=relative
                ),
                display_name=probe.display_name,
                unit=probe.unit,
                for_=config.metrics_for,
                repeat_seconds=config.metrics_repeat_seconds,
            )
        )

    add("cpu", CPUPercent(), config.cpu_threshold)
    add("memory", MemoryPercent(), config.memory_threshold)
    if config.disk_threshold is not None:
        add("disk", DiskPercent(config.disk_path), config.disk_threshold)
    add("swap", SwapPercent(), config.swap_threshold)
    add("rss", ProcessRSS(), config.rss_threshold, relative=True)
    add("load", LoadPerCore(), config.load_threshold, relative=True)
    return rules


def resolve_spec(spec: RuleSpec, config: Config) -> Rule:
    """``spec`` with the app's ``ALERTING_METRICS_*`` defaults where it has None.

    A custom rule's unit is unknown (jobs, errors per second...), so without an explicit
    ``hysteresis`` it gets ``ALERTING_METRICS_HYSTERESIS`` percent of its threshold (at
    most half of it): ``threshold=1.0`` resolves below 0.95, ``threshold=100`` below 95.
    """
    return spec.build(
        for_=config.metrics_for,
        hysteresis=default_hysteresis(spec.threshold, config.metrics_hysteresis, relative=True),
        repeat_seconds=config.metrics_repeat_seconds,
    )


def build_sampler(
    config: Config,
    *,
    app_name: str,
    specs: Iterable[RuleSpec],
    submit: Callable[[Alert], None],
    labels: Mapping[str, str],
    clock: Clock = time.monotonic,
    sender: object | None = None,
) -> Sampler:
    """The sampler of one app: built-in rules from ``config``, then the ``add_rule`` ones.

    :param sender: the sender of the delivery pipeline's signals (the app): the sampler
        hears which of its alerts were delivered (:meth:`.sampler.Sampler.listen`).
    :raises ValueError: when two rules have the same name.
    :raises ConfigurationError: when ``ALERTING_METRICS_LOCK_FILE`` is a symbolic link.
    """
    check_lock_file(config.metrics_lock_file)
    sampler = Sampler(
        name=app_name,
        rules=[*default_rules(config), *(resolve_spec(spec, config) for spec in specs)],
        submit=submit,
        labels=labels,
        interval=config.metrics_interval,
        lock_path=config.metrics_lock_file or default_lock_path(app_name),
        private_dir=config.metrics_lock_file is None,
        clock=clock,
        processes=ProcessTable(),
    )
    if sender is not None:
        sampler.listen(sender)
    return sampler
