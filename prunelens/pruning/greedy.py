"""Greedy pruning: delete, one at a time, the reasoning token whose deletion lowers the objective least.

Exact by default. ``Approximation`` opts into two cheaper modes that the output record marks:
block deletion (several tokens per scoring round) and candidate screening (score only the most
promising candidates, with a full rescore every few rounds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from prunelens.pruning.keep import n_keep
from prunelens.pruning.objectives import Objective
from prunelens.pruning.scorer import Scorer


@dataclass(frozen=True)
class Approximation:
    """``block``: deletions per round; an integer k ≥ 1, or a fraction < 1 of the remaining tokens.
    ``screen``: score only the m candidates whose last known score is highest; every
    ``rescore_every``-th round scores all of them exactly."""

    block: float = 1
    screen: int | None = None
    rescore_every: int = 5

    @property
    def exact(self) -> bool:
        return self.block == 1 and self.screen is None

    def deletions(self, remaining: int) -> int:
        if self.block >= 1:
            return int(self.block)
        return max(1, int(round(self.block * remaining)))

    def describe(self) -> dict:
        return {} if self.exact else asdict(self)


EXACT = Approximation()


@dataclass
class GreedyResult:
    """The outcome of greedy pruning one chain.

    ``candidate_scores[t, i]`` is the objective after deleting reasoning position i in scoring round t
    (NaN where i was already gone, or was not scored in a screened round); ``deletion_order`` lists
    positions, first deleted first, and ``step_scores`` each deletion's score. In exact mode every round
    deletes one token, so rounds and steps coincide.
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
    approximation: Approximation = EXACT,
) -> GreedyResult:
    """Greedy-prune ``reasoning_ids`` down to keep fraction ``keep`` (or ``max_steps`` deletions).

    Each round scores the remaining tokens' deletions and removes the argmax; ties go to the lowest
    position. Deleting either of two equal adjacent tokens gives the same sequence, so such
    candidates are scored once and share the score (the tie then picks the lower position).
    ``on_step`` is called with the number of deletions made in each round.
    """
    objective = Objective.parse(objective)
    started = time.perf_counter()
    n = len(reasoning_ids)
    steps = planned_steps(n, keep, max_steps)
    base = float(scorer.score(prompt_ids, [reasoning_ids], answer_ids, objective)[0])
    alive = list(range(n))
    current = list(reasoning_ids)
    last_known = np.full(n, -np.inf)
    order, best_scores, rows = [], [], []
    while len(order) < steps:
        chosen = _candidates_to_score(approximation, len(rows), alive, last_known)
        scores = _score_deletions(scorer, prompt_ids, current, answer_ids, objective, chosen)
        row = np.full(n, np.nan)
        row[[alive[k] for k in chosen]] = scores
        rows.append(row)
        last_known[[alive[k] for k in chosen]] = scores
        count = min(steps - len(order), approximation.deletions(len(current)))
        ranked = sorted(range(len(chosen)), key=lambda j: (-scores[j], chosen[j]))[:count]
        for j in ranked:
            order.append(alive[chosen[j]])
            best_scores.append(float(scores[j]))
        for k in sorted((chosen[j] for j in ranked), reverse=True):
            del alive[k], current[k]
        if on_step is not None:
            on_step(len(ranked))
    table = np.array(rows) if rows else np.empty((0, n))
    return GreedyResult(order, best_scores, table, base, time.perf_counter() - started)


def _candidates_to_score(approximation: Approximation, round_index: int, alive, last_known) -> list[int]:
    """Indices into ``alive`` to score this round: all of them, or a screened top-m (ascending)."""
    everything = list(range(len(alive)))
    m = approximation.screen
    if m is None or m >= len(alive) or round_index % approximation.rescore_every == 0:
        return everything
    ranked = sorted(everything, key=lambda k: (-last_known[alive[k]], k))
    return sorted(ranked[:m])


def _score_deletions(scorer, prompt_ids, current, answer_ids, objective, chosen) -> np.ndarray:
    """Scores of deleting each chosen index of ``current``; each distinct sequence is scored once."""
    run_start = []
    for k in range(len(current)):
        run_start.append(k if k == 0 or current[k] != current[k - 1] else run_start[k - 1])
    distinct = sorted({run_start[k] for k in chosen})
    slot = {k: index for index, k in enumerate(distinct)}
    candidates = [current[:k] + current[k + 1 :] for k in distinct]
    values = scorer.score(prompt_ids, candidates, answer_ids, objective, trunk=current)
    return np.array([values[slot[run_start[k]]] for k in chosen])
