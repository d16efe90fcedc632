"""System metrics: probes (psutil, cgroups), rule state machines, the sampler thread, the
election of the one process of a host that samples, the states it records for others and
whether they are current."""

from .probes import CPUPercent, DiskPercent, LoadPerCore, MemoryPercent, ProcessRSS, SwapPercent
from .rules import Rule, RuleSpec, RuleStatus
from .sampler import CheckResult, Sampler
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
