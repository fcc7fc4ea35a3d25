"""The HF scorer's objective equals per-token log-probs summed directly from the model's logits."""

import numpy as np
import pytest
import torch

from conftest import tiny_model
from prunelens.pruning.objectives import Objective
from prunelens.pruning.scorer import HFScorer


def direct_objective(model, prompt, reasoning, answer, objective):
    ids = torch.tensor([prompt + reasoning + answer])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
    first = len(prompt) if objective == "joint" else len(prompt) + len(reasoning)
    return sum(logprobs[t - 1, ids[0, t]].item() for t in range(first, ids.shape[1]))


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gpt2"])
@pytest.mark.parametrize("objective", ["joint", "answer"])
def test_scores_equal_direct_logprob_sums(kind, objective):
    model = tiny_model(kind)
    rng = np.random.default_rng(1)
    prompt, answer = rng.integers(0, 96, 7).tolist(), rng.integers(0, 96, 3).tolist()
    candidates = [rng.integers(0, 96, 9).tolist() for _ in range(5)]
    scores = HFScorer(model).score(prompt, candidates, answer, Objective(objective))
    expected = [direct_objective(model, prompt, c, answer, objective) for c in candidates]
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-9)


def test_token_budget_splits_batches_without_changing_scores():
    model = tiny_model("llama")
    rng = np.random.default_rng(2)
    prompt, answer = rng.integers(0, 96, 4).tolist(), rng.integers(0, 96, 2).tolist()
    candidates = [rng.integers(0, 96, 6).tolist() for _ in range(7)]
    small = HFScorer(model, token_budget=12)  # one 12-token sequence per forward
    big = HFScorer(model, token_budget=10_000)
    np.testing.assert_allclose(
        small.score(prompt, candidates, answer, Objective.JOINT),
        big.score(prompt, candidates, answer, Objective.JOINT),
        atol=1e-10,
    )
    assert small.stats.forward_calls == 7 and big.stats.forward_calls == 1
    assert small.stats.tokens_computed == big.stats.tokens_computed == 7 * 12
