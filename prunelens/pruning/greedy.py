"""Greedy pruning: delete, one at a time, the reasoning token whose deletion lowers the objective least.

Exact by default. ``Approximation`` opts into cheaper modes that the output record marks: block
deletion (several tokens per scoring round), candidate screening (score exactly only the most promising
candidates, picked by their last known costs, by a cheap local estimate or by a trained attention →
score surrogate) and rounded screening (a copy of the model in a lower precision scores each round, and
the exact scorer rescores only its best few).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from prunelens.core.errors import SettingsError
from prunelens.core.keep import n_keep
from prunelens.core.objectives import Objective
from prunelens.pruning.scorer import Scorer

SCREEN_BY = ("cost", "surrogate")
Predictor = Callable[[list[int], list[int], list[int]], np.ndarray]  # (prompt, chain, answer) → score per chain token


@dataclass(frozen=True)
class Approximation:
    """``block``: deletions per round; an integer k ≥ 1, or a fraction < 1 of the remaining tokens.

    ``screen``: score exactly only m candidates per round, chosen one of three ways.

    - ``window`` = 0, lazy screening: a candidate's last known *cost* is how much its deletion lowered
      the objective when it was last scored. A round scores the m candidates of lowest last known
      cost and the ``neighbors`` nearest survivors on each side of the last round's deletions (whose
      costs a deletion changes most), then m more while some unscored candidate's last known cost is
      below the best fresh one (lazy greedy: exact whenever costs only grow as the chain shrinks).
    - ``window`` = w > 0, window screening (joint objective): every candidate's cost is estimated
      locally, from the log-probs of the w chain tokens after it (the rest of the chain and the answer
      taken as unchanged), at w − 1 recomputed tokens per candidate with the fast scorer, and after
      the first round re-estimated only within w of the last deletion; the m of lowest estimate are
      scored exactly, as are the candidates whose window reaches the chain's end. With ``anchored``,
      a candidate scored before is estimated as its cost then plus the change in its window estimate
      since (the part beyond the window taken as unchanged since), others as their window estimate plus
      the median of the window's misses (exact cost − window estimate, over first scorings so far); after
      the m of lowest estimate the round widens, m more at a time, while an unscored candidate's estimate
      plus the lowest residual (exact cost − the round's estimate) its kind of estimate has had so far is
      at most the best fresh cost.
    - ``screen_by`` = "surrogate", surrogate screening (``greedy_prune``'s ``predictor``): each round
      predicts every candidate's post-deletion score from the current chain's attention features and
      scores exactly the m predicted highest, the ``neighbors`` nearest survivors of the last deletions
      and, with ``window`` = w > 0, also the candidates window screening would pick. It then widens,
      m more at a time in predicted order, while some unscored candidate could beat the best fresh
      score: its last known cost (if it was ever scored) is below the best fresh cost, as in lazy
      screening, or its calibrated cost is (a least-squares line of exact cost on prediction over every
      candidate of this chain scored so far; off while it has under 3 points or a slope that is not
      negative, i.e. while predictions say nothing about costs).

    Every ``rescore_every``-th round scores all candidates (0: none; lazy screening always scores all
    in the first round, where it has no costs yet).

    ``rounded`` = a dtype (e.g. "bfloat16"), rounded screening: a round's work (scoring every candidate,
    or window screening's estimates and picks) is done by ``greedy_prune``'s ``screener``, a scorer over
    a copy of the model in that dtype; the exact scorer then rescores the ``verify`` best by those
    scores (``verify`` − 1 more than the round deletes), and the deletion is the best of them by exact
    score. Lazy and surrogate screening measure costs against the exact objective and do not take it."""

    block: float = 1
    screen: int | None = None
    rescore_every: int = 5
    neighbors: int = 1
    window: int = 0
    screen_by: str = "cost"
    rounded: str | None = None
    verify: int = 3
    anchored: bool = False

    def __post_init__(self):
        """The one check of which approximation settings go together, in field terms (``SettingsError``)."""
        if self.screen_by not in SCREEN_BY:
            raise SettingsError("unknown {screen_by} {value!r} (known: {known})", value=self.screen_by,
                                known=", ".join(SCREEN_BY))  # fmt: skip
        if self.anchored and (self.screen is None or not self.window or self.by_surrogate):
            raise SettingsError("{anchored} anchors window screening's estimates: it needs {screen} and {window}, "
                                "and no surrogate screening")  # fmt: skip
        if self.verify < 1:
            raise SettingsError("{verify} must be at least 1, not {value}", value=self.verify)
        if self.rounded is None and self.verify != Approximation.verify:
            raise SettingsError("{verify} counts the candidates rounded screening rescores: give {rounded} too")
        if self.rounded is not None and self.screen is not None and (not self.window or self.by_surrogate):
            raise SettingsError("rounded screening ({rounded}) combines with full rounds or {window} screening, not "
                                "with lazy or surrogate screening")  # fmt: skip

    @property
    def exact(self) -> bool:
        return self.block == 1 and self.screen is None and self.rounded is None

    @property
    def by_surrogate(self) -> bool:
        return self.screen is not None and self.screen_by == "surrogate"

    def deletions(self, remaining: int) -> int:
        if self.block >= 1:
            return int(self.block)
        return max(1, int(round(self.block * remaining)))

    def full_round(self, round_index: int, remaining: int) -> bool:
        """Whether this round scores every candidate."""
        if self.screen is None or self.screen >= remaining:
            return True
        if round_index == 0 and not self.window and self.screen_by == "cost":
            return True
        return self.rescore_every > 0 and round_index % self.rescore_every == 0

    def describe(self) -> dict:
        """The settings a ranking records: none when exact, rounded screening's only when it is on."""
        if self.exact:
            return {}
        settings = asdict(self)
        if self.rounded is None:
            del settings["rounded"], settings["verify"]
        if not self.anchored:
            del settings["anchored"]
        return settings


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
    on_start: Callable[[float], None] | None = None,
    approximation: Approximation = EXACT,
    predictor: Predictor | None = None,
    screener: Scorer | None = None,
) -> GreedyResult:
    """Greedy-prune ``reasoning_ids`` down to keep fraction ``keep`` (or ``max_steps`` deletions).

    Each round scores the remaining tokens' deletions and removes the argmax; ties go to the lowest
    position. Deleting either of two equal adjacent tokens gives the same sequence, so such
    candidates are scored once and share the score (the tie then picks the lower position).
    ``on_start`` is called with the seconds the whole chain's forward (its base score) took, before the first
    round; ``on_step`` with the number of deletions made in each round. Surrogate screening needs
    ``predictor`` (e.g. ``prunelens.pruning.surrogate_screen.SurrogatePredictor``) and rounded screening
    ``screener`` (``make_screener``); nothing else takes them. In rounded screening's rows of
    ``candidate_scores`` only the verified candidates have (exact) scores.
    """
    objective = Objective.parse(objective)
    if approximation.window and objective is not Objective.JOINT:
        raise SettingsError("{window} screening estimates costs from chain log-probs: it needs {objective} joint")
    if approximation.by_surrogate != (predictor is not None):
        raise SettingsError("surrogate screening needs {screen} and a predictor (a trained surrogate) together")
    if (approximation.rounded is not None) != (screener is not None):
        raise SettingsError("rounded screening needs {rounded} and a screener over the model in that dtype together")
    started = time.perf_counter()
    n = len(reasoning_ids)
    steps = planned_steps(n, keep, max_steps)
    base = float(scorer.score(prompt_ids, [reasoning_ids], answer_ids, objective)[0])
    if on_start is not None:
        on_start(time.perf_counter() - started)
    level = base if screener is None else float(screener.score(prompt_ids, [reasoning_ids], answer_ids, objective)[0])
    chain = _Chain(screener or scorer, prompt_ids, list(reasoning_ids), answer_ids, objective, level)
    screen = _Screen(approximation, n, predictor)
    order, best_scores, rows = [], [], []
    while len(order) < steps:
        count = min(steps - len(order), approximation.deletions(len(chain.current)))
        screened = screen.round_scores(chain, len(rows))
        score_of = screened if screener is None else chain.verified(scorer, screened, count + approximation.verify - 1)
        chosen = sorted(score_of)
        row = np.full(n, np.nan)
        row[[chain.alive[k] for k in chosen]] = [score_of[k] for k in chosen]
        rows.append(row)
        ranked = sorted(chosen, key=lambda k: (-score_of[k], k))[:count]
        deleted = [chain.alive[k] for k in ranked]
        screen.record(chain, screened, deleted)
        order += deleted
        best_scores += [float(score_of[k]) for k in ranked]
        chain.delete(ranked, screened[ranked[0]] if count == 1 else None, refresh_level=screen.needs_level)
        if on_step is not None:
            on_step(len(ranked))
    table = np.array(rows) if rows else np.empty((0, n))
    return GreedyResult(order, best_scores, table, base, time.perf_counter() - started)


class _Chain:
    """The chain being pruned: its surviving positions, tokens and objective (``level``); ``scorer`` does
    the rounds' screening and scoring (rounded screening's screener, else the exact scorer)."""

    def __init__(self, scorer, prompt_ids, reasoning_ids, answer_ids, objective, level: float):
        self.scorer, self.prompt_ids, self.answer_ids, self.objective = scorer, prompt_ids, answer_ids, objective
        self.alive, self.current, self.level = list(range(len(reasoning_ids))), reasoning_ids, level

    def deletion_scores(self, indices, scorer: Scorer | None = None) -> dict[int, float]:
        """{index into ``current``: the objective after deleting it}, by ``scorer`` (default: the chain's)."""
        values = _score_deletions(scorer or self.scorer, self.prompt_ids, self.current, self.answer_ids,
                                  self.objective, indices)  # fmt: skip
        return dict(zip(indices, values))

    def verified(self, exact_scorer: Scorer, screened: dict[int, float], count: int) -> dict[int, float]:
        """Exact scores of the ``count`` best candidates by their ``screened`` scores (ties: lowest index)."""
        return self.deletion_scores(sorted(sorted(screened, key=lambda k: (-screened[k], k))[:count]), exact_scorer)

    def delete(self, indices, new_level: float | None, refresh_level: bool) -> None:
        """Delete indices into ``current``; ``new_level`` is the new chain's objective when known, else
        it is scored if ``refresh_level`` (lazy screening's costs need it)."""
        for k in sorted(indices, reverse=True):
            del self.alive[k], self.current[k]
        if new_level is not None:
            self.level = new_level
        elif refresh_level and self.current:
            scores = self.scorer.score(self.prompt_ids, [self.current], self.answer_ids, self.objective,
                                       trunk=self.current)  # fmt: skip
            self.level = float(scores[0])


class _Screen:
    """Which candidates a round scores (see ``Approximation``), with what screening remembers, by
    original position: each candidate's last known cost and window estimate (and, anchored, the estimate
    when it was last scored, and the residuals); and for surrogate screening the (prediction, exact cost)
    pairs its calibration line is fitted to. Under rounded screening all of it is on the screener's scale."""

    def __init__(self, approximation: Approximation, n: int, predictor: Predictor | None = None):
        self.approximation, self.predictor = approximation, predictor
        self.cost = np.full(n, np.nan)
        self.estimate = np.full(n, np.nan)
        self.estimate_when_scored = np.full(n, np.nan)
        # anchored window screening: exact cost − window estimate at first scorings, and exact cost − the
        # anchored estimate at later ones
        self.misses: list[float] = []
        self.drifts: list[float] = []
        self.last_deleted: list[int] = []
        self.pairs: list[tuple[float, float]] = []

    @property
    def needs_level(self) -> bool:
        """Whether rounds need the current chain's objective: lazy, surrogate and anchored window screening
        measure costs from it."""
        approximation = self.approximation
        measures_costs = not approximation.window or approximation.by_surrogate or approximation.anchored
        return approximation.screen is not None and measures_costs

    def record(self, chain: _Chain, score_of: dict[int, float], deleted: list[int]) -> None:
        for k, value in score_of.items():
            self.cost[chain.alive[k]] = chain.level - value
            self.estimate_when_scored[chain.alive[k]] = self.estimate[chain.alive[k]]
        self.last_deleted = deleted

    def round_scores(self, chain: _Chain, round_index: int) -> dict[int, float]:
        everything = list(range(len(chain.current)))
        if self.approximation.full_round(round_index, len(chain.current)):
            if self.approximation.anchored:  # the estimates these exact scores anchor
                self._refresh_estimates(chain)
            return chain.deletion_scores(everything)
        if self.approximation.by_surrogate:
            return self._surrogate_round(chain)
        if self.approximation.anchored:
            return self._anchored_window_round(chain)
        if self.approximation.window:
            return chain.deletion_scores(sorted(self._window_picks(chain)))
        return self._lazy_round(chain)

    def _lazy_round(self, chain: _Chain) -> dict[int, float]:
        m, cost, alive = self.approximation.screen, self.cost, chain.alive
        queue = sorted(range(len(alive)), key=lambda k: (cost[alive[k]], k))  # cheapest known deletions first
        width = self.approximation.neighbors
        wanted = set(queue[:m]) | _neighbors(alive, self.last_deleted, width, width)
        score_of: dict[int, float] = {}
        while wanted:
            score_of.update(chain.deletion_scores(sorted(wanted)))
            waiting = [k for k in queue if k not in score_of]
            best_cost = chain.level - max(score_of.values())
            wanted = set(waiting[:m]) if waiting and cost[alive[waiting[0]]] < best_cost else set()
        return score_of

    def _surrogate_round(self, chain: _Chain) -> dict[int, float]:
        m, cost, alive = self.approximation.screen, self.cost, chain.alive
        predicted = np.asarray(self.predictor(chain.prompt_ids, chain.current, chain.answer_ids), dtype=float)
        queue = sorted(range(len(alive)), key=lambda k: (-predicted[k], k))  # predicted cheapest first
        width = self.approximation.neighbors
        wanted = set(queue[:m]) | _neighbors(alive, self.last_deleted, width, width)
        if self.approximation.window:
            wanted.update(self._window_picks(chain))
        score_of: dict[int, float] = {}
        while wanted:
            fresh = chain.deletion_scores(sorted(wanted))
            score_of.update(fresh)
            self.pairs += [(predicted[k], chain.level - value) for k, value in fresh.items()]
            best_cost = chain.level - max(score_of.values())
            expected = calibrated_costs(self.pairs, predicted)
            could_beat = [k for k in queue if k not in score_of
                          and (cost[alive[k]] < best_cost or expected[k] < best_cost)]  # fmt: skip
            wanted = set(could_beat[:m])
        return score_of

    def _anchored_window_round(self, chain: _Chain) -> dict[int, float]:
        m, alive = self.approximation.screen, chain.alive
        inner = self._refresh_estimates(chain)
        offset = float(np.median(self.misses)) if self.misses else 0.0
        known = ~np.isnan(self.cost) & ~np.isnan(self.estimate_when_scored)
        anchored = np.where(known, self.cost + self.estimate - self.estimate_when_scored, self.estimate + offset)
        expected = {k: anchored[alive[k]] for k in inner}
        queue = sorted(inner, key=lambda k: (expected[k], k))
        wanted = set(queue[:m]) | set(range(len(inner), len(alive)))  # and those whose window reaches the end
        score_of: dict[int, float] = {}
        while wanted:
            fresh = chain.deletion_scores(sorted(wanted))
            score_of.update(fresh)
            for k, value in fresh.items():
                if k in expected:
                    cost = chain.level - value
                    if known[alive[k]]:
                        self.drifts.append(cost - expected[k])
                    else:
                        self.misses.append(cost - self.estimate[alive[k]])
            best_cost = chain.level - max(score_of.values())
            slack = {True: min(self.drifts, default=0.0), False: min(self.misses, default=0.0) - offset}
            wanted = set([k for k in queue if k not in score_of
                          and expected[k] + slack[bool(known[alive[k]])] <= best_cost][:m])  # fmt: skip
        return score_of

    def _window_picks(self, chain: _Chain) -> list[int]:
        """The m candidates of lowest window estimate, and those whose window reaches the chain's end."""
        inner, alive = self._refresh_estimates(chain), chain.alive
        ranked = sorted(inner, key=lambda k: (self.estimate[alive[k]], k))[: self.approximation.screen]
        return ranked + list(range(len(inner), len(alive)))

    def _refresh_estimates(self, chain: _Chain) -> list[int]:
        """Window estimates of the candidates whose window lies inside the chain (returned, as indices),
        refreshed only where the last deletion can have changed them: for the candidates whose window
        reaches it and the w after it (and any never estimated)."""
        w, alive = self.approximation.window, chain.alive
        inner = [k for k in range(len(alive)) if k + 1 + w < len(alive)]
        stale = {k for k in inner if np.isnan(self.estimate[alive[k]])}
        stale.update(k for k in _neighbors(alive, self.last_deleted, w + 1, w) if k < len(inner))
        fresh = window_costs(chain.scorer, chain.prompt_ids, chain.current, sorted(stale), w)
        for k, value in fresh.items():
            self.estimate[alive[k]] = value
        return inner


def calibrated_costs(pairs: list[tuple[float, float]], predicted: np.ndarray) -> np.ndarray:
    """Expected exact cost of each prediction: the least-squares line of cost on prediction through
    ``pairs``; +inf everywhere (no evidence) with under 3 pairs, constant predictions or a slope ≥ 0."""
    if len(pairs) < 3:
        return np.full(len(predicted), np.inf)
    x, y = np.array(pairs).T
    if np.ptp(x) == 0:
        return np.full(len(predicted), np.inf)
    slope, intercept = np.polyfit(x, y, 1)
    return intercept + slope * predicted if slope < 0 else np.full(len(predicted), np.inf)


def _neighbors(alive: list[int], deleted: list[int], before: int, after: int) -> set[int]:
    """Indices into ``alive`` of the ``before`` nearest survivors left of each deleted position and
    the ``after`` nearest right of it."""
    near = set()
    for position in deleted:
        at = bisect.bisect_left(alive, position)
        near.update(range(max(0, at - before), min(len(alive), at + after)))
    return near


def window_costs(scorer, prompt_ids, current, indices, window: int) -> dict[int, float]:
    """For each index k, how much deleting current[k] lowers the joint log-prob of the chain up to
    the ``window`` tokens after k (the local part of its cost), {k: estimate}."""
    if not indices:
        return {}
    whole = [current[: k + 1 + window] for k in indices]
    cut = [current[:k] + current[k + 1 : k + 1 + window] for k in indices]
    before = scorer.score(prompt_ids, whole, [], Objective.JOINT, trunk=current)
    after = scorer.score(prompt_ids, cut, [], Objective.JOINT, trunk=current)
    return dict(zip(indices, before - after))


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
