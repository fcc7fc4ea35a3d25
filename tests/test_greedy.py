"""Greedy pruning equals an independent brute-force reference; keep-fraction helpers."""

import numpy as np
import pytest
import torch

from conftest import tiny_model
from prunelens.pruning.greedy import Approximation, _neighbors, greedy_prune
from prunelens.pruning.keep import kept_positions, marked_text, n_keep, pruned_ids, pruned_text
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
    assert n_keep(41, 0.5) == 21 and n_keep(40, 0.5) == 20 and n_keep(7, 1.0) == 7 and n_keep(5, 0.0) == 0
    record = {
        "reasoning_tokens": ["A", " b", " c", " d"],
        "reasoning_ids": [10, 11, 12, 13],
        "deletion_order": [2, 0],
    }
    assert kept_positions(record["deletion_order"], 4, 0.5) == [1, 3]
    assert pruned_text(record, 0.75) == "A b d"
    assert pruned_ids(record, 0.5) == [11, 13]
    assert marked_text(record, 0.5) == "[-A-] b[- c-] d"
    assert marked_text(record, 1.0) == "A b c d"
    with pytest.raises(ValueError, match="not reached"):
        pruned_text(record, 0.25)


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
    assert _neighbors(alive, [5], 1) == {3, 4}  # 4 and 6
    assert _neighbors(alive, [5], 2) == {2, 3, 4, 5}
    assert _neighbors(alive, [2, 10], 1) == {1, 2, 5}
    assert _neighbors(alive, [5], 0) == set()
