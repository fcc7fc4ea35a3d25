"""How long exact greedy pruning of one chain takes: a cost model for the warning before a long chain and the
progress lines inside it.

Work is counted in token positions pushed through the model. Step t of a chain of n reasoning tokens scores
n − t candidates; the naive scorer runs each as a full forward (prompt + n − t − 1 reasoning tokens + answer),
the fast scorer only each candidate's suffix after the shared prefix (about half the reasoning, plus the answer).
Greedy's own forward of the whole chain (its base score) gives the seconds per position before the first step;
the steps done so far recalibrate it as the chain goes on, so the estimate of what is left improves with every
step.
"""

from __future__ import annotations

import time

HOUR = 3600.0
APPROXIMATE_MODES = "--screen M --window w, --screen-dtype bfloat16 or --block K (README: approximate modes)"


def step_work(n: int, prompt: int, answer: int, steps: int, scorer: str) -> list[float]:
    """Token positions each of the first ``steps`` exact greedy steps computes."""
    work = []
    for t in range(steps):
        m = n - t
        full = scorer != "fast"  # every other scorer computes each candidate's whole sequence
        per_candidate = prompt + m - 1 + answer if full else (m - 1) / 2 + answer + 1
        work.append(m * per_candidate)
    return work


class StepClock:
    """Estimates, from a per-step work list and a first calibration, the seconds a chain's steps take."""

    def __init__(self, work: list[float], seconds_per_position: float):
        self.work, self.rate = work, seconds_per_position
        self.done, self.started = 0, time.perf_counter()

    def total(self) -> float:
        """Estimated seconds for every step, from the calibration alone."""
        return self.rate * sum(self.work)

    def step(self, count: int = 1) -> float:
        """Record ``count`` finished steps; the estimated seconds left, recalibrated on the steps done."""
        self.done = min(self.done + count, len(self.work))
        elapsed = time.perf_counter() - self.started
        finished = sum(self.work[: self.done])
        if finished:
            self.rate = elapsed / finished
        return self.rate * sum(self.work[self.done :])

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def duration(seconds: float) -> str:
    """'45 s', '12 min', '3.4 h'."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * HOUR:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / HOUR:.1f} h"
