"""The HF scorer's objective equals per-token log-probs summed directly from the model's logits."""

import numpy as np
import pytest
import torch
from conftest import tiny_model

from prunelens.core.objectives import Objective
from prunelens.pruning.scorer import HFScorer, target_logprobs


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


@pytest.mark.parametrize("cap", [None, 3.0])
def test_target_logprobs_tiled_over_vocabulary_equal_log_softmax(cap):
    model = tiny_model("llama")
    model.config.final_logit_softcapping = cap
    hidden = torch.randn(11, model.config.hidden_size, dtype=torch.float64)
    targets = torch.tensor([0, 95, 6, 7, 50, 13, 14, 89, 20, 1, 2])  # tile edges and both ends of the vocabulary
    logits = model.get_output_embeddings()(hidden)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    expected = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)
    tiled = target_logprobs(model, hidden, targets, chunk_rows=4, vocab_tile=7)  # 7 does not divide 96
    torch.testing.assert_close(tiled, expected, rtol=0, atol=1e-12)
