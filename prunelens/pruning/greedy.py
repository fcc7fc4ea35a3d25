"""Exact greedy pruning: delete, one at a time, the reasoning token whose deletion lowers the objective least."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from prunelens.pruning.keep import n_keep
from prunelens.pruning.objectives import Objective
from prunelens.pruning.scorer import Scorer


@dataclass
class GreedyResult:
    """The outcome of greedy pruning one chain.

    ``candidate_scores[t, i]`` is the objective after deleting reasoning position i at step t
    (NaN where i was already gone); ``deletion_order[t]`` is the position deleted at step t and
    ``step_scores[t]`` its score.
    """

    deletion_order: list[int]
    step_scores: list[float]
    candidate_scores: np.ndarray
    base_score: float
    seconds: float


def planned_steps(n: int, keep: float, max_steps: int | None = None) -> int:
    """How many deletions take n tokens down to keep fraction ``keep``, capped by ``max_steps``."""
    steps = n - n_keep(n, keep)
    return steps if max_steps is None else min(steps, max_steps)


def greedy_prune(
    scorer: Scorer,
    prompt_ids: list[int],
    reasoning_ids: list[int],
    answer_ids: list[int],
    objective: Objective | str,
    keep: float = 0.5,
    max_steps: int | None = None,
    on_step: Callable[[int], None] | None = None,
) -> GreedyResult:
    """Greedy-prune ``reasoning_ids`` down to keep fraction ``keep`` (or ``max_steps`` deletions).

    Each step scores every remaining token's deletion and removes the argmax; ties go to the lowest
    position. Deleting either of two equal adjacent tokens gives the same sequence, so such
    candidates are scored once and share the score (the tie then picks the lower position).
    """
    objective = Objective.parse(objective)
    started = time.perf_counter()
    n = len(reasoning_ids)
    steps = planned_steps(n, keep, max_steps)
    base = float(scorer.score(prompt_ids, [reasoning_ids], answer_ids, objective)[0])
    alive = list(range(n))
    current = list(reasoning_ids)
    order, best_scores = [], []
    table = np.full((steps, n), np.nan)
    for step in range(steps):
        distinct = [k for k in range(len(current)) if k == 0 or current[k] != current[k - 1]]
        candidates = [current[:k] + current[k + 1 :] for k in distinct]
        distinct_scores = scorer.score(prompt_ids, candidates, answer_ids, objective, trunk=current)
        # expand back to every remaining position: a repeat shares its run-start's score
        scores = np.empty(len(current))
        slot = -1
        for k in range(len(current)):
            if slot + 1 < len(distinct) and distinct[slot + 1] == k:
                slot += 1
            scores[k] = distinct_scores[slot]
        best = int(np.argmax(scores))
        table[step, alive] = scores
        order.append(alive[best])
        best_scores.append(float(scores[best]))
        del alive[best], current[best]
        if on_step is not None:
            on_step(step)
    return GreedyResult(order, best_scores, table, base, time.perf_counter() - started)
