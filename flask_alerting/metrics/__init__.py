"""System metrics: probes (psutil, cgroups), rule state machines, the sampler thread."""

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
