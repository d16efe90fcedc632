"""The statistics of timed names: a count, a count of slow calls, and a window of recent
durations per name, from which :class:`TimingStats` (mean, max, p95) are computed when
they are read.

They are written by the ``timed`` wrappers and timers (:mod:`.timing`) without a lock.
Under thread races an increment can be lost now and then (two threads read the same
count): :attr:`TimingStats.count` may then be a little low and a window slot written
twice. That is the price of a hot path without locks; the figures stay right to within
those rare lost updates.
"""

from __future__ import annotations

import dataclasses
import math

#: Recent durations kept per name for ``mean``, ``max`` and ``p95`` (a power of two). A
#: full window takes about 16 KiB, so at most about 16 MiB for :data:`MAX_NAMES` names.
WINDOW = 512


@dataclasses.dataclass(frozen=True)
class TimingStats:
    """A snapshot of the timings of one name.

    ``count`` and ``slow`` count every call since the start; ``mean``, ``max`` and ``p95``
    describe the last ``window`` calls (at most :data:`WINDOW`), in seconds.

    :param count: calls timed.
    :param slow: calls over their threshold.
    :param mean: mean duration over the window.
    :param max: longest duration in the window.
    :param p95: 95th percentile (nearest rank) over the window.
    :param window: how many recent calls ``mean``, ``max`` and ``p95`` cover.
    """

    count: int
    slow: int
    mean: float
    max: float
    p95: float
    window: int


class Recorder:
    """Live counters of one name. ``ring[count & mask]`` holds the latest duration.

    A list, not an ``array``: storing into a list is the cheaper of the two.
    """

    __slots__ = ("name", "count", "slow", "ring", "mask")

    def __init__(self, name: str, size: int = WINDOW) -> None:
        self.name = name
        self.count = 0
        self.slow = 0
        self.ring = [0.0] * size
        self.mask = size - 1

    def snapshot(self) -> TimingStats:
        count = self.count
        ring = self.ring.copy()
        samples = ring if count >= len(ring) else ring[1 : count + 1]
        # Durations are clamped here, not on the hot path: a clock that went backwards
        # gives a negative one, which never reaches the slow path (bounds are >= 0).
        samples = [d if d > 0.0 else 0.0 for d in samples]
        if not samples:
            return TimingStats(count, self.slow, 0.0, 0.0, 0.0, 0)
        ordered = sorted(samples)
        rank = max(1, math.ceil(0.95 * len(ordered)))
        return TimingStats(
            count=count,
            slow=self.slow,
            mean=math.fsum(ordered) / len(ordered),
            max=ordered[-1],
            p95=ordered[rank - 1],
            window=len(ordered),
        )

