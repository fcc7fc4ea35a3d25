"""Greedy pruning equals an independent brute-force reference; keep-fraction helpers."""

import numpy as np
import pytest
import torch
from conftest import tiny_model

from prunelens.errors import PrunelensError
from prunelens.pruning.greedy import (
    Approximation,
    _neighbors,
    greedy_prune,
    window_costs,
)
from prunelens.pruning.keep import (
    kept_positions,
    marked_text,
    n_keep,
    pruned_ids,
    pruned_text,
)
from prunelens.pruning.prefix_scorer import PrefixCacheScorer
from prunelens.pruning.scorer import HFScorer


def reference_greedy(model, prompt, reasoning, answer, objective, n_steps):
    """Naive: one full forward per candidate, a plain loop, strict '>' so ties keep the lowest position."""

    def objective_of(seq):
        ids = torch.tensor([prompt + seq + answer])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
        first = len(prompt) if objective == "joint" else len(prompt) + len(seq)
        return sum(logprobs[t - 1, ids[0, t]].item() for t in range(first, ids.shape[1]))

    positions, order, scores = list(range(len(reasoning))), [], []
    for _ in range(n_steps):
        best, best_score = None, -np.inf
        for k in range(len(positions)):
            seq = [reasoning[p] for j, p in enumerate(positions) if j != k]
            value = objective_of(seq)
            if value > best_score:
                best, best_score = k, value
        order.append(positions.pop(best))
        scores.append(best_score)
    return order, scores


@pytest.mark.parametrize("kind,objective", [("llama", "joint"), ("llama", "answer"), ("qwen2", "joint"), ("gpt2", "answer")])
def test_greedy_matches_brute_force(kind, objective):
    model = tiny_model(kind, seed=3)
    rng = np.random.default_rng(4)
    prompt, reasoning, answer = (rng.integers(0, 96, k).tolist() for k in (5, 10, 3))
    result = greedy_prune(HFScorer(model, token_budget=64), prompt, reasoning, answer, objective, keep=0.5)
    order, scores = reference_greedy(model, prompt, reasoning, answer, objective, 5)
    assert result.deletion_order == order
    np.testing.assert_allclose(result.step_scores, scores, atol=1e-9)


def test_candidate_table_records_every_step_with_nan_for_deleted():
    model = tiny_model("llama", seed=5)
    rng = np.random.default_rng(6)
    prompt, reasoning, answer = (rng.integers(0, 96, k).tolist() for k in (4, 8, 2))
    result = greedy_prune(HFScorer(model), prompt, reasoning, answer, "joint", keep=0.5)
    table = result.candidate_scores
    assert table.shape == (4, 8)
    for step, deleted in enumerate(result.deletion_order):
        assert np.isnan(table[step, result.deletion_order[:step]]).all()
        assert np.isfinite(np.delete(table[step], result.deletion_order[:step])).all()
        assert table[step, deleted] == np.nanmax(table[step]) == result.step_scores[step]


def test_equal_tokens_tie_to_lowest_position_and_are_scored_once():
    model = tiny_model("llama", seed=7)
    scorer = HFScorer(model)
    result = greedy_prune(scorer, [1, 2, 3], [9] * 6, [4], "joint", keep=0.5)
    assert result.deletion_order == [0, 1, 2]
    # every step has one distinct candidate: 1 base forward + 3 single-candidate steps
    assert scorer.stats.tokens_computed == 10 + 9 + 8 + 7


def test_max_steps_stops_early():
    model = tiny_model("llama")
    result = greedy_prune(HFScorer(model), [1, 2], list(range(10, 20)), [3], "answer", keep=0.1, max_steps=1)
    assert len(result.deletion_order) == 1 and result.candidate_scores.shape == (1, 10)


def test_keep_fraction_helpers():
    from prunelens.ranking import Ranking

    assert n_keep(41, 0.5) == 21 and n_keep(40, 0.5) == 20 and n_keep(7, 1.0) == 7 and n_keep(5, 0.0) == 0
    ranking = Ranking(id="e", method="test", model="m", reasoning="A b c d", reasoning_ids=[10, 11, 12, 13],
                      reasoning_tokens=["A", " b", " c", " d"], offsets=[[0, 1], [1, 3], [3, 5], [5, 7]],
                      deletion_order=[2, 0])  # fmt: skip
    assert kept_positions(ranking.deletion_order, 4, 0.5) == [1, 3]
    assert ranking.text(0.75) == pruned_text(ranking, 0.75) == "A b d"
    assert ranking.ids(0.5) == pruned_ids(ranking.to_dict(), 0.5) == [11, 13]
    assert ranking.marked(0.5) == marked_text(ranking, 0.5) == "[-A-] b[- c-] d"
    assert ranking.marked(1.0) == "A b c d" and ranking.deepest_keep == 0.5
    with pytest.raises(ValueError, match="not reached"):
        ranking.text(0.25)


class AdditiveScorer:
    """Objective = the sum of per-token values kept: each deletion costs its token's value, whatever
    else is gone. Counts the candidates it scores."""

    def __init__(self, values):
        self.values, self.scored = values, 0

    def score(self, prompt_ids, candidates, answer_ids, objective, trunk=None):
        self.scored += len(candidates)
        return np.array([sum(self.values[t] for t in c) for c in candidates], dtype=float)


def test_lazy_screening_is_exact_when_deletion_costs_do_not_fall():
    values = np.random.default_rng(5).permutation(40).astype(float) + 1
    reasoning = list(range(40))
    exact_scorer, lazy_scorer = AdditiveScorer(values), AdditiveScorer(values)
    exact = greedy_prune(exact_scorer, [], reasoning, [], "joint", keep=0.25)
    lazy = greedy_prune(lazy_scorer, [], reasoning, [], "joint", keep=0.25,
                        approximation=Approximation(screen=3, rescore_every=0, neighbors=1))  # fmt: skip
    assert lazy.deletion_order == exact.deletion_order == list(np.argsort(values)[:30])
    assert lazy.step_scores == exact.step_scores
    assert lazy_scorer.scored < exact_scorer.scored / 4


def test_lazy_screening_widens_when_a_stale_cost_undercuts_the_fresh_best():
    class Rising(AdditiveScorer):
        """Keeping token 7 costs 100 per pair of deleted tokens: from the second deletion on, deleting 7 is cheapest."""

        def score(self, prompt_ids, candidates, answer_ids, objective, trunk=None):
            base = super().score(prompt_ids, candidates, answer_ids, objective, trunk)
            gone = [10 - len(c) for c in candidates]
            return base - 100 * np.array([g * (g - 1) / 2 if 7 in c else 0 for c, g in zip(candidates, gone)])

    values = np.arange(10, dtype=float) + 1
    scorer = Rising(values)
    out = greedy_prune(scorer, [], list(range(10)), [], "joint", keep=0.5,
                       approximation=Approximation(screen=2, rescore_every=0, neighbors=0))  # fmt: skip
    assert out.deletion_order[:2] == [0, 7]  # 7 was never among the two cheapest but is found lazily


def test_neighbors_are_the_nearest_survivors_of_a_deletion():
    alive = [0, 1, 3, 4, 6, 9]
    assert _neighbors(alive, [5], 1, 1) == {3, 4}  # 4 and 6
    assert _neighbors(alive, [5], 2, 2) == {2, 3, 4, 5}
    assert _neighbors(alive, [5], 2, 1) == {2, 3, 4}
    assert _neighbors(alive, [2, 10], 1, 1) == {1, 2, 5}
    assert _neighbors(alive, [5], 0, 0) == set()


class CountingScorer(AdditiveScorer):
    """An additive scorer that records how many candidates each call scores."""

    def __init__(self, values):
        super().__init__(values)
        self.calls = []

    def score(self, prompt_ids, candidates, answer_ids, objective, trunk=None):
        self.calls.append(len(candidates))
        return super().score(prompt_ids, candidates, answer_ids, objective, trunk)


def test_window_screening_is_exact_for_local_costs_and_refreshes_only_near_the_deletion():
    values = np.random.default_rng(6).permutation(60).astype(float) + 1
    reasoning = list(range(60))
    exact = greedy_prune(AdditiveScorer(values), [], reasoning, [], "joint", keep=0.5)
    scorer = CountingScorer(values)
    window = greedy_prune(scorer, [], reasoning, [], "joint", keep=0.5,
                          approximation=Approximation(screen=3, rescore_every=0, window=4))  # fmt: skip
    assert window.deletion_order == exact.deletion_order
    # calls per round: window before / after, then exact; round 0 estimates all 55 inner candidates,
    # later rounds at most the 2w + 1 around the last deletion
    assert scorer.calls[1:3] == [55, 55] and scorer.calls[3] == 3 + 5
    assert max(scorer.calls[4:]) <= 2 * 4 + 1 + 3 + 5 and np.isnan(window.candidate_scores[1]).sum() > 40


def test_window_covering_the_chain_scores_every_candidate_exactly():
    model = tiny_model("llama", seed=7)
    rng = np.random.default_rng(8)
    prompt, reasoning, answer = (rng.integers(0, 96, k).tolist() for k in (4, 12, 2))
    exact = greedy_prune(HFScorer(model), prompt, reasoning, answer, "joint", keep=0.5)
    covering = greedy_prune(HFScorer(model), prompt, reasoning, answer, "joint", keep=0.5,
                            approximation=Approximation(screen=1, rescore_every=0, window=12))  # fmt: skip
    assert covering.deletion_order == exact.deletion_order
    np.testing.assert_allclose(covering.candidate_scores, exact.candidate_scores, atol=1e-9)


def test_window_costs_are_local_log_prob_changes():
    model = tiny_model("qwen2", seed=9)
    rng = np.random.default_rng(10)
    prompt, current = rng.integers(0, 96, 5).tolist(), rng.integers(0, 96, 10).tolist()
    naive = HFScorer(model)
    costs = window_costs(PrefixCacheScorer(model), prompt, current, [0, 3, 5], 3)
    for k, cost in costs.items():
        whole, cut = current[: k + 4], current[:k] + current[k + 1 : k + 4]
        expected = naive.score(prompt, [whole], [], "joint")[0] - naive.score(prompt, [cut], [], "joint")[0]
        assert cost == pytest.approx(expected, abs=1e-4)


def test_window_screening_needs_the_joint_objective():
    with pytest.raises(PrunelensError, match="joint"):
        greedy_prune(AdditiveScorer(np.ones(5)), [], list(range(5)), [], "answer",
                     approximation=Approximation(screen=2, window=2))  # fmt: skip


def test_only_lazy_screening_rescores_the_chain_after_a_block_deletion():
    values = np.arange(30, dtype=float) + 1
    calls = {}
    for name, approximation in {"lazy": Approximation(block=2, screen=3, rescore_every=0),
                                "window": Approximation(block=2, screen=3, rescore_every=0, window=4)}.items():  # fmt: skip
        scorer = CountingScorer(values)
        greedy_prune(scorer, [], list(range(30)), [], "joint", keep=0.5, approximation=approximation)
        calls[name] = scorer.calls.count(1)  # the base score, then one chain score per round if needed
    assert calls == {"lazy": 1 + 7, "window": 1}  # 15 deletions in 8 rounds; the last leaves no round after it
