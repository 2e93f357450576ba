"""How long a bench still needs, from the durations of its finished jobs per stage.

A job's duration is its wall time from submission to its record. The stages differ by orders of magnitude
(training an original model against one unlearning run), so each stage is estimated from its own finished
jobs; a stage with none finished yet borrows the mean of every finished job. The work left (every pending
job's estimate, and what a running job has left of its own) is shared by the executor's slots.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable


class Estimate:
    """Durations of finished jobs per stage -> the seconds the rest needs."""

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self.durations: dict[str, list[float]] = defaultdict(list)

    def finished(self, stage: str, seconds: float) -> None:
        self.durations[stage].append(seconds)

    def mean(self, stage: str) -> float | None:
        """The stage's mean duration; that of every finished job while the stage has none; None before any."""
        own = self.durations.get(stage)
        every = [s for d in self.durations.values() for s in d]
        chosen = own or every
        return math.fsum(chosen) / len(chosen) if chosen else None

    def left(self, pending: Iterable[str], running: Iterable[tuple[str, float]]) -> float | None:
        """Seconds until every job is done: `pending` jobs' stages, `running` jobs' (stage, seconds so far).
        None until a job has finished (nothing to estimate from)."""
        work = 0.0
        for stage in pending:
            mean = self.mean(stage)
            if mean is None:
                return None
            work += mean
        for stage, elapsed in running:
            mean = self.mean(stage)
            if mean is None:
                return None
            work += max(0.0, mean - elapsed)
        return work / self.slots


def duration(seconds: float | None) -> str:
    """'~40 s', '~12 min', '~1.5 h'; '0 s' when nothing is left; '?' when unknown."""
    if seconds is None:
        return "?"
    if seconds == 0:
        return "0 s"
    if seconds < 10:
        return f"~{max(1, round(seconds))} s"
    if seconds < 90:
        return f"~{round(seconds / 10) * 10} s"
    if seconds < 90 * 60:
        return f"~{round(seconds / 60)} min"
    return f"~{seconds / 3600:.1f} h"
