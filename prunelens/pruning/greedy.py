"""Greedy pruning: delete, one at a time, the reasoning token whose deletion lowers the objective least.

Exact by default. ``Approximation`` opts into two cheaper modes that the output record marks:
block deletion (several tokens per scoring round) and candidate screening (score only the most
promising candidates, lazily, with a full rescore every few rounds).
"""

from __future__ import annotations

import bisect
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

    ``screen``: lazy screening. A candidate's last known *cost* is how much its deletion lowered the
    objective when it was last scored. A round scores the m candidates of lowest last known cost and
    the ``neighbors`` nearest surviving tokens on each side of the last round's deletions (whose
    costs a deletion changes most), then m more while some unscored candidate's last known cost is
    below the best fresh one (lazy greedy: exact whenever costs only grow as the chain shrinks).
    Every ``rescore_every``-th round scores all candidates (0: only the first round)."""

    block: float = 1
    screen: int | None = None
    rescore_every: int = 5
    neighbors: int = 1

    @property
    def exact(self) -> bool:
        return self.block == 1 and self.screen is None

    def deletions(self, remaining: int) -> int:
        if self.block >= 1:
            return int(self.block)
        return max(1, int(round(self.block * remaining)))

    def full_round(self, round_index: int, remaining: int) -> bool:
        """Whether this round scores every candidate."""
        if self.screen is None or self.screen >= remaining or round_index == 0:
            return True
        return self.rescore_every > 0 and round_index % self.rescore_every == 0

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
    level = base  # the objective of the current chain
    cost = np.full(n, np.nan)  # last known objective drop of deleting each position
    order, best_scores, rows, last_deleted = [], [], [], []
    while len(order) < steps:
        score_of = _score_round(scorer, prompt_ids, current, answer_ids, objective, approximation, len(rows),
                                _neighbors(alive, last_deleted, approximation.neighbors), cost, alive, level)  # fmt: skip
        chosen = sorted(score_of)
        row = np.full(n, np.nan)
        row[[alive[k] for k in chosen]] = [score_of[k] for k in chosen]
        rows.append(row)
        cost[[alive[k] for k in chosen]] = [level - score_of[k] for k in chosen]
        count = min(steps - len(order), approximation.deletions(len(current)))
        ranked = sorted(chosen, key=lambda k: (-score_of[k], k))[:count]
        last_deleted = [alive[k] for k in ranked]
        order += last_deleted
        best_scores += [float(score_of[k]) for k in ranked]
        for k in sorted(ranked, reverse=True):
            del alive[k], current[k]
        if count == 1:
            level = best_scores[-1]
        elif approximation.screen is not None and current:  # several deleted: the new level is not a score
            level = float(scorer.score(prompt_ids, [current], answer_ids, objective, trunk=current)[0])
        if on_step is not None:
            on_step(len(ranked))
    table = np.array(rows) if rows else np.empty((0, n))
    return GreedyResult(order, best_scores, table, base, time.perf_counter() - started)


def _neighbors(alive: list[int], deleted: list[int], width: int) -> set[int]:
    """Indices into ``alive`` of the ``width`` nearest survivors on each side of each deleted position."""
    near = set()
    for position in deleted:
        at = bisect.bisect_left(alive, position)
        near.update(range(max(0, at - width), min(len(alive), at + width)))
    return near


def _score_round(scorer, prompt_ids, current, answer_ids, objective, approximation, round_index, near, cost,
                 alive, level) -> dict[int, float]:  # fmt: skip
    """This round's scores, {index into ``current``: objective after deleting it}: every candidate, or
    a lazily screened subset (see ``Approximation``)."""
    everything = list(range(len(current)))
    if approximation.full_round(round_index, len(current)):
        return dict(zip(everything, _score_deletions(scorer, prompt_ids, current, answer_ids, objective, everything)))
    m = approximation.screen
    queue = sorted(everything, key=lambda k: (cost[alive[k]], k))  # cheapest known deletions first
    wanted = set(queue[:m]) | near
    score_of: dict[int, float] = {}
    while wanted:
        fresh = sorted(wanted)
        score_of.update(zip(fresh, _score_deletions(scorer, prompt_ids, current, answer_ids, objective, fresh)))
        waiting = [k for k in queue if k not in score_of]
        best_cost = level - max(score_of.values())
        wanted = set(waiting[:m]) if waiting and cost[alive[waiting[0]]] < best_cost else set()
    return score_of


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
