"""The fast prefix-cache scorer agrees with the naive scorer; packed suffixes never see each other."""

import numpy as np
import pytest
from conftest import tiny_model

from prunelens.pruning.greedy import Approximation, greedy_prune
from prunelens.pruning.prefix_scorer import PrefixCacheScorer, common_prefix
from prunelens.pruning.scorer import HFScorer

# Llama/Qwen2 RMSNorm runs in float32 even in a float64 model, so agreement there is ~1e-6.
TOLERANCE = 1e-4


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gpt2"])
@pytest.mark.parametrize("objective", ["joint", "answer"])
@pytest.mark.parametrize("budget", [8, 4096])
def test_fast_greedy_equals_naive(kind, objective, budget):
    model = tiny_model(kind, seed=11)
    rng = np.random.default_rng(12)
    prompt, reasoning, answer = (rng.integers(0, 96, k).tolist() for k in (6, 14, 3))
    naive = greedy_prune(HFScorer(model), prompt, reasoning, answer, objective, keep=0.0)
    fast = greedy_prune(PrefixCacheScorer(model, token_budget=budget), prompt, reasoning, answer, objective, keep=0.0)
    assert fast.deletion_order == naive.deletion_order
    np.testing.assert_allclose(fast.candidate_scores, naive.candidate_scores, atol=TOLERANCE)
    assert fast.base_score == pytest.approx(naive.base_score, abs=TOLERANCE)


def test_arbitrary_candidates_without_trunk():
    model = tiny_model("gpt2", seed=13)
    rng = np.random.default_rng(14)
    prompt, answer = rng.integers(0, 96, 5).tolist(), rng.integers(0, 96, 2).tolist()
    candidates = [rng.integers(0, 96, 7).tolist() for _ in range(6)]
    candidates.append(candidates[0][:3] + candidates[1][3:])  # shares a prefix with the first
    for objective in ("joint", "answer"):
        np.testing.assert_allclose(
            PrefixCacheScorer(model, token_budget=10).score(prompt, candidates, answer, objective),
            HFScorer(model).score(prompt, candidates, answer, objective),
            atol=1e-10,
        )


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_packed_suffixes_are_isolated(kind):
    """A random model's output changes with any extra visible token, so equal scores alone vs packed
    (and under every pack layout) show that no suffix sees another candidate's tokens."""
    model = tiny_model(kind, seed=15)
    rng = np.random.default_rng(16)
    prompt, trunk, answer = (rng.integers(0, 96, k).tolist() for k in (4, 10, 3))
    candidates = [trunk[:k] + trunk[k + 1 :] for k in range(len(trunk))]
    alone = [PrefixCacheScorer(model).score(prompt, [c], answer, "joint", trunk=trunk)[0] for c in candidates]
    packed = PrefixCacheScorer(model, token_budget=10_000).score(prompt, candidates, answer, "joint", trunk=trunk)
    np.testing.assert_allclose(packed, alone, atol=1e-12 if kind == "gpt2" else TOLERANCE)
    # a leak would move scores by far more than the tolerance: check the test could see one
    leaky = HFScorer(model).score(prompt, [[trunk[0]] + c[:-1] for c in candidates], answer, "joint")
    assert np.abs(leaky - packed).max() > 1e-2


def test_trunk_is_reused_and_only_its_tail_recomputed():
    model = tiny_model("llama", seed=17)
    scorer = PrefixCacheScorer(model, token_budget=4096)
    prompt, trunk, answer = [1, 2, 3, 4], list(range(10, 20)), [5, 6]
    scorer.score(prompt, [trunk], answer, "joint", trunk=trunk)
    after_first = scorer.stats.tokens_computed  # prompt 4 + trunk 10 + answer suffix (1 token fed)
    assert after_first == 4 + 10 + 1
    new_trunk = trunk[:7] + trunk[8:]
    scorer.score(prompt, [new_trunk], answer, "joint", trunk=new_trunk)
    assert scorer.stats.tokens_computed - after_first == 2 + 1  # the trunk tail after position 7, then the answer


@pytest.mark.parametrize("objective", ["joint", "answer"])
def test_chosen_deletion_becomes_the_trunk_without_recomputation(objective):
    model = tiny_model("llama", seed=18)
    rng = np.random.default_rng(19)
    prompt, trunk, answer = (rng.integers(0, 96, k).tolist() for k in (4, 9, 2))
    scorer = PrefixCacheScorer(model, token_budget=12)  # several batches: the best may come from any
    candidates = [trunk[:k] + trunk[k + 1 :] for k in range(len(trunk))]
    scores = scorer.score(prompt, candidates, answer, objective, trunk=trunk)
    best = candidates[int(np.argmax(scores))]
    before = scorer.stats.tokens_computed
    scorer.score(prompt, [best], answer, objective, trunk=best)
    assert scorer.stats.tokens_computed - before == len(answer) - 1  # only the answer suffix is fed
    fresh = PrefixCacheScorer(model)
    fresh.score(prompt, [best], answer, objective, trunk=best)
    np.testing.assert_allclose(scorer._trunk_logprobs.numpy(), fresh._trunk_logprobs.numpy(), atol=TOLERANCE)
    following = [best[:k] + best[k + 1 :] for k in range(len(best))]
    np.testing.assert_allclose(scorer.score(prompt, following, answer, objective, trunk=best),
                               HFScorer(model).score(prompt, following, answer, objective), atol=TOLERANCE)  # fmt: skip


def test_common_prefix():
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2 and common_prefix([1], [1, 2]) == 1 and common_prefix([], [3]) == 0


def test_approximate_modes_run_and_delete_the_requested_amount():
    model = tiny_model("llama", seed=19)
    rng = np.random.default_rng(20)
    prompt, reasoning, answer = (rng.integers(0, 96, k).tolist() for k in (4, 20, 2))
    exact = greedy_prune(HFScorer(model), prompt, reasoning, answer, "joint", keep=0.5)
    block = greedy_prune(HFScorer(model), prompt, reasoning, answer, "joint", keep=0.5,
                         approximation=Approximation(block=3))  # fmt: skip
    assert len(block.deletion_order) == 10 and block.candidate_scores.shape[0] == 4  # 3+3+3+1
    assert block.deletion_order[:1] == exact.deletion_order[:1]
    scorer = HFScorer(model)
    screened = greedy_prune(scorer, prompt, reasoning, answer, "joint", keep=0.5,
                            approximation=Approximation(screen=4, rescore_every=3, neighbors=0))  # fmt: skip
    assert len(screened.deletion_order) == 10 and len(set(screened.deletion_order)) == 10
    assert not np.isnan(screened.candidate_scores[0]).any()  # round 0 scores everything
    scored = (~np.isnan(screened.candidate_scores[1])).sum()  # 4, or 8, 12, … when the lazy check widens
    assert scored % 4 == 0 and 4 <= scored <= 19
    assert not Approximation(block=3).exact and Approximation().exact
