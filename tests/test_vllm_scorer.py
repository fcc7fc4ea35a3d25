"""The vLLM backend's GPU-free parts: request building and log-prob extraction from recorded responses."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import tiny_model

from prunelens.core.errors import PrunelensError
from prunelens.pruning.scorer import HFScorer
from prunelens.pruning.vllm_scorer import (
    VLLMScorer,
    build_requests,
    objective_from_prompt_logprobs,
)


@dataclass
class Logprob:  # the shape of vllm.sequence.Logprob
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class RequestOutput:  # the fields of vllm.outputs.RequestOutput that the scorer reads
    prompt_token_ids: list[int]
    prompt_logprobs: list


class RecordedLLM:
    """Answers generate() as vLLM does with prompt_logprobs=0: None for position 0, then
    {actual token: Logprob} per position, here computed from a real (tiny) model."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append((prompts, params))
        outputs = []
        for prompt in prompts:
            ids = prompt["prompt_token_ids"]
            with torch.no_grad():
                logprobs = torch.log_softmax(self.model(torch.tensor([ids])).logits[0].double(), -1)
            entries = [None] + [{ids[t]: Logprob(logprobs[t - 1, ids[t]].item(), rank=1)} for t in range(1, len(ids))]
            outputs.append(RequestOutput(ids, entries))
        return outputs


def test_build_requests():
    assert build_requests([1, 2], [[3], [4]], [5]) == [{"prompt_token_ids": [1, 2, 3, 5]}, {"prompt_token_ids": [1, 2, 4, 5]}]


@pytest.mark.parametrize("objective", ["joint", "answer"])
def test_scores_from_recorded_responses_match_hf(objective):
    model = tiny_model("llama", seed=21)
    llm = RecordedLLM(model)
    scorer = VLLMScorer("unused", llm=llm)
    scorer._prompts = lambda requests: requests  # TokensPrompt is a TypedDict of these keys
    scorer._sampling_params = lambda: "params"
    rng = np.random.default_rng(22)
    prompt, answer = rng.integers(0, 96, 5).tolist(), rng.integers(0, 96, 2).tolist()
    candidates = [rng.integers(0, 96, length).tolist() for length in (6, 6, 4, 5)]  # screening mixes lengths
    np.testing.assert_allclose(
        scorer.score(prompt, candidates, answer, objective),
        HFScorer(model).score(prompt, candidates, answer, objective),
        atol=1e-9,
    )
    assert len(llm.calls) == 1 and len(llm.calls[0][0]) == 4
    assert scorer.stats.tokens_computed == sum(5 + len(c) + 2 for c in candidates)


def test_extraction_errors_are_clear():
    with pytest.raises(PrunelensError, match="no log-prob for prompt token 7 at position 1"):
        objective_from_prompt_logprobs([None, {8: -1.0}], [3, 7], first=1)
    with pytest.raises(PrunelensError, match="2 prompt log-prob positions for 3 tokens"):
        objective_from_prompt_logprobs([None, {7: -1.0}], [3, 7, 9], first=1)
    assert objective_from_prompt_logprobs([None, {7: -1.5}, {9: -0.5}], [3, 7, 9], first=1) == -2.0


def test_missing_vllm_is_a_clear_error():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(PrunelensError, match=r"needs vLLM: pip install 'prunelens\[vllm\]'"):
            VLLMScorer("some/model")
    else:
        pytest.skip("vLLM is installed here")
