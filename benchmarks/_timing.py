"""Wall time per phase of a benchmark script, summed over the phase's laps."""

from __future__ import annotations

import time


class Laps:
    """``laps.lap("train")`` adds the time since the previous lap to "train"; ``laps.times``
    keeps the sums in the order the phases first came."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + now - self._start
        self._start = now
