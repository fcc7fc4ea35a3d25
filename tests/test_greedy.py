"""Greedy pruning equals an independent brute-force reference; keep-fraction helpers."""

import numpy as np
import pytest
import torch
from conftest import tiny_model

from prunelens.core.errors import PrunelensError
from prunelens.pruning.greedy import (
    Approximation,
    _neighbors,
    greedy_prune,
    window_costs,
)
from prunelens.core.keep import kept_positions, n_keep
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
    from prunelens.core.ranking import Ranking

    assert n_keep(41, 0.5) == 21 and n_keep(40, 0.5) == 20 and n_keep(7, 1.0) == 7 and n_keep(5, 0.0) == 0
    ranking = Ranking(id="e", method="test", model="m", reasoning="A b c d", reasoning_ids=[10, 11, 12, 13],
                      reasoning_tokens=["A", " b", " c", " d"], offsets=[[0, 1], [1, 3], [3, 5], [5, 7]],
                      deletion_order=[2, 0])  # fmt: skip
    assert kept_positions(ranking.deletion_order, 4, 0.5) == [1, 3]
    assert ranking.text(0.75) == "A b d"
    assert ranking.ids(0.5) == [11, 13]
    assert ranking.marked(0.5) == "[-A-] b[- c-] d"
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


class NoisyScorer(AdditiveScorer):
    """An additive scorer whose scores carry uniform noise, drawn anew for every candidate it scores: a
    stand-in for a rounded model."""

    def __init__(self, values, noise, seed):
        super().__init__(values)
        self.noise, self.rng = noise, np.random.default_rng(seed)

    def score(self, prompt_ids, candidates, answer_ids, objective, trunk=None):
        exact = super().score(prompt_ids, candidates, answer_ids, objective, trunk)
        return exact + self.rng.uniform(-self.noise, self.noise, len(candidates))


def test_rounded_screening_verifies_its_best_few_exactly():
    values = np.random.default_rng(11).permutation(40).astype(float) * 3 + 1  # costs 3 apart
    reasoning = list(range(40))
    exact_scorer = CountingScorer(values)
    exact = greedy_prune(exact_scorer, [], reasoning, [], "joint", keep=0.5)
    verifier = CountingScorer(values)
    # noise up to ±4 swaps neighbours in the screener's order, never beyond its best three
    rounded = greedy_prune(verifier, [], reasoning, [], "joint", keep=0.5, screener=NoisyScorer(values, 4, seed=1),
                           approximation=Approximation(rounded="bfloat16", verify=3))  # fmt: skip
    assert rounded.deletion_order == exact.deletion_order
    assert rounded.step_scores == exact.step_scores  # the deletions' scores are the exact scorer's
    assert verifier.calls == [1] + [3] * 20  # the base score, then three candidates per round
    assert (np.isfinite(rounded.candidate_scores).sum(axis=1) == 3).all()
    # a round deleting 2 verifies verify − 1 = 2 candidates beyond them
    blocks = CountingScorer(values)
    greedy_prune(blocks, [], reasoning, [], "joint", keep=0.5, screener=NoisyScorer(values, 4, seed=2),
                 approximation=Approximation(block=2, rounded="bfloat16", verify=3))  # fmt: skip
    assert blocks.calls == [1] + [4] * 10


def test_rounded_screening_without_verification_room_follows_the_screener():
    values = np.arange(10, dtype=float) + 1
    screener = AdditiveScorer(values[::-1].copy())  # ranks the costliest deletion first
    out = greedy_prune(AdditiveScorer(values), [], list(range(10)), [], "joint", keep=0.9, screener=screener,
                       approximation=Approximation(rounded="bfloat16", verify=1))  # fmt: skip
    assert out.deletion_order == [9]  # the exact scorer only saw the screener's pick


@pytest.mark.parametrize("approximation, screener, message", [
    (dict(rounded="bfloat16"), None, "needs rounded and a screener"),
    (dict(), "screener", "needs rounded and a screener"),
    (dict(verify=5), "screener", "verify counts the candidates rounded screening rescores: give rounded too"),
    (dict(rounded="bfloat16", screen=2), "screener", "not with lazy or surrogate"),
    (dict(rounded="bfloat16", screen=2, window=4, screen_by="surrogate"), "screener", "not with lazy or surrogate"),
])  # fmt: skip
def test_rounded_screening_refusals(approximation, screener, message):
    scorer = AdditiveScorer(np.ones(6))
    with pytest.raises(PrunelensError, match=message):
        greedy_prune(scorer, [], list(range(6)), [], "joint", approximation=Approximation(**approximation),
                     screener=scorer if screener else None)  # fmt: skip


def test_rounded_screening_with_a_bfloat16_copy_keeps_the_exact_scores_it_verifies():
    from prunelens.models import rounded_copy
    from prunelens.pruning.prefix_scorer import PrefixCacheScorer

    model = tiny_model("llama", seed=12)
    rng = np.random.default_rng(13)
    prompt, reasoning, answer = (rng.integers(0, 96, k).tolist() for k in (4, 14, 2))
    exact = greedy_prune(PrefixCacheScorer(model), prompt, reasoning, answer, "joint", keep=0.5)
    bfloat16 = rounded_copy(model, "bfloat16")
    # verifying every candidate: exact, whatever the screener says
    everything = greedy_prune(PrefixCacheScorer(model), prompt, reasoning, answer, "joint", keep=0.5,
                              approximation=Approximation(rounded="bfloat16", verify=14),
                              screener=PrefixCacheScorer(bfloat16))  # fmt: skip
    assert everything.deletion_order == exact.deletion_order
    np.testing.assert_allclose(everything.candidate_scores, exact.candidate_scores, atol=1e-4)
    # with window screening: round 0 verifies the 2 best of the window's picks (2 + the 4 whose window reaches the end)
    screener = PrefixCacheScorer(bfloat16)
    windowed = greedy_prune(PrefixCacheScorer(model), prompt, reasoning, answer, "joint", keep=0.5, screener=screener,
                            approximation=Approximation(screen=2, rescore_every=0, window=3, rounded="bfloat16",
                                                        verify=2))  # fmt: skip
    verified = np.isfinite(windowed.candidate_scores[0])
    assert verified.sum() == 2 and screener.stats.tokens_computed > 0
    np.testing.assert_allclose(windowed.candidate_scores[0][verified], exact.candidate_scores[0][verified], atol=1e-4)


class RemoteGainScorer(AdditiveScorer):
    """Additive, plus a gain ``remote[t]`` for each deleted token t that only the answer sees: window
    estimates (scored without the answer) miss it."""

    def __init__(self, values, remote):
        super().__init__(values)
        self.remote = remote

    def score(self, prompt_ids, candidates, answer_ids, objective, trunk=None):
        local = super().score(prompt_ids, candidates, answer_ids, objective, trunk)
        gone = [set(range(len(self.values))) - set(c) for c in candidates]
        return local + np.array([sum(self.remote.get(t, 0.0) for t in g) if answer_ids else 0.0 for g in gone])


@pytest.mark.parametrize("rescore_every", [0, 100])
def test_anchored_window_screening_finds_a_cost_the_window_misses(rescore_every):
    values = np.arange(20, dtype=float) + 1  # deleting t costs t + 1 in its window, token 5 costs 4
    values[5] = 4.0
    scorer = RemoteGainScorer(values, {0: 3.0, 5: 3.0})  # exact costs: token 0 −2, token 5 1
    exact = greedy_prune(scorer, [], list(range(20)), [99], "joint", keep=0.9)
    assert exact.deletion_order == [0, 5]
    screen = dict(screen=1, rescore_every=rescore_every, window=2)
    plain = greedy_prune(scorer, [], list(range(20)), [99], "joint", keep=0.9, approximation=Approximation(**screen))
    anchored = greedy_prune(scorer, [], list(range(20)), [99], "joint", keep=0.9,
                            approximation=Approximation(**screen, anchored=True))  # fmt: skip
    assert plain.deletion_order == [0, 1]
    # rescore_every 0: token 0's window missed its cost by −3, so round 1 widens from token 1 (cost 2) to every
    # never-scored candidate whose estimate minus 3 is at most 2, token 5 among them;
    # 100: round 0 scores all, and token 5's exact cost anchors its round-1 estimate
    assert anchored.deletion_order == [0, 5]
    if rescore_every == 0:
        assert np.isfinite(anchored.candidate_scores[1]).sum() == 3 + 4  # the 3 tails, then 1, 2, 3 and 5


def test_anchoring_needs_window_screening():
    for settings in (dict(screen=2), dict(window=4)):
        with pytest.raises(PrunelensError, match="anchored anchors .*: it needs screen and window"):
            Approximation(**settings, anchored=True)


class OffsetScorer(AdditiveScorer):
    """Additive scores shifted by a constant: a screener whose rounding moves every score alike."""

    def __init__(self, values, offset):
        super().__init__(values)
        self.offset, self.seen = offset, []

    def score(self, prompt_ids, candidates, answer_ids, objective, trunk=None):
        self.seen.append([tuple(c) for c in candidates])
        return super().score(prompt_ids, candidates, answer_ids, objective, trunk) + self.offset


def test_rounded_screening_measures_its_costs_on_the_screeners_scale():
    values = np.random.default_rng(14).permutation(20).astype(float) + 1

    def screened_candidates(offset):
        screener = OffsetScorer(values, offset)
        approximation = Approximation(screen=2, rescore_every=0, window=2, anchored=True, rounded="bfloat16")
        greedy_prune(AdditiveScorer(values), [], list(range(20)), [], "joint", keep=0.5, screener=screener,
                     approximation=approximation)  # fmt: skip
        return screener.seen

    # costs against the exact base score would be 50 too low in round 0 and widen every later round
    assert screened_candidates(50.0) == screened_candidates(0.0)
