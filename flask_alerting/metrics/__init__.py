"""System metrics: probes (psutil, cgroups), rule state machines, the sampler thread, the
election of the one process of a host that samples and the states it records for others."""

from .probes import CPUPercent, DiskPercent, LoadPerCore, MemoryPercent, ProcessRSS, SwapPercent
from .rules import Rule, RuleSpec, RuleStatus
from .sampler import CheckResult, Sampler

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
    "SwapPercent",
]
