"""System metrics: probes (psutil, cgroups), rules and their state machines and alerts, the
sampler thread, the election of the one process of a host that samples, the states it
records for others and whether they are current."""

from .machine import RuleStatus
from .probes import CPUPercent, DiskPercent, LoadPerCore, MemoryPercent, ProcessRSS, SwapPercent
from .reading import CheckResult
from .rules import Rule, RuleSpec
from .sampler import Sampler
from .status import SamplingStatus

__all__ = [
    "CPUPercent",
    "CheckResult",
    "DiskPercent",
    "LoadPerCore",
    "MemoryPercent",
    "ProcessRSS",
    "Rule",
    "RuleSpec",
    "RuleStatus",
    "Sampler",
    "SamplingStatus",
    "SwapPercent",
]
