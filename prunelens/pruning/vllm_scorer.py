"""vLLM backend: full-sequence scoring through `LLM.generate` with prompt log-probs (optional extra).

Each candidate becomes one `TokensPrompt`; `SamplingParams(max_tokens=1, prompt_logprobs=0)` makes vLLM
return, for every prompt position after the first, the log-prob of the actual prompt token. The
objective is the sum over the objective's target positions. vLLM does not reuse cached prefixes when
prompt log-probs are requested (its prefix cache is bypassed for them), so unlike the `fast` HF scorer
this backend recomputes every candidate in full; its gain is GPU batching, not prefix sharing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from prunelens.core.errors import PrunelensError
from prunelens.core.objectives import Objective
from prunelens.pruning.scorer import ScorerStats


def build_requests(prompt_ids, candidates, answer_ids) -> list[dict[str, list[int]]]:
    """One TokensPrompt-shaped dict per candidate: prompt + candidate + answer ids."""
    return [{"prompt_token_ids": list(prompt_ids) + list(c) + list(answer_ids)} for c in candidates]


def _logprob_value(entry: Any) -> float:
    """A vLLM Logprob object (``.logprob``), or a plain float in recorded responses."""
    return float(getattr(entry, "logprob", entry))


def objective_from_prompt_logprobs(prompt_logprobs: Sequence[Any], token_ids: Sequence[int], first: int) -> float:
    """Sum of log p(token_ids[t]) for t ≥ first, read from vLLM's per-position prompt log-prob dicts."""
    if len(prompt_logprobs) != len(token_ids):
        raise PrunelensError(f"vLLM returned {len(prompt_logprobs)} prompt log-prob positions for {len(token_ids)} tokens")
    total = 0.0
    for position in range(first, len(token_ids)):
        entry = prompt_logprobs[position]
        token = token_ids[position]
        if entry is None or token not in entry:
            raise PrunelensError(f"vLLM returned no log-prob for prompt token {token} at position {position}")
        total += _logprob_value(entry[token])
    return total


class VLLMScorer:
    """Exact objective via vLLM prompt log-probs; same interface and record format as HFScorer."""

    def __init__(self, model, llm=None, token_budget: int | None = None, **llm_kwargs):
        """``token_budget`` is accepted for the common scorer signature; vLLM schedules its own batches."""
        self.stats = ScorerStats()
        if llm is None:
            try:
                from vllm import LLM
            except ImportError:
                raise PrunelensError("scorer 'vllm' needs vLLM: pip install 'prunelens[vllm]' (GPU machines)") from None
            path = model if isinstance(model, str) else model.name_or_path
            llm = LLM(model=path, **llm_kwargs)
        self.llm = llm

    def _sampling_params(self):
        from vllm import SamplingParams

        return SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)

    def _prompts(self, requests):
        from vllm.inputs import TokensPrompt

        return [TokensPrompt(**r) for r in requests]

    def score(self, prompt_ids, candidates, answer_ids, objective, trunk=None):
        objective = Objective.parse(objective)
        requests = build_requests(prompt_ids, candidates, answer_ids)
        outputs = self.llm.generate(self._prompts(requests), self._sampling_params(), use_tqdm=False)
        self.stats.forward_calls += 1
        self.stats.tokens_computed += sum(len(r["prompt_token_ids"]) for r in requests)
        return np.array(  # each candidate's own first target: screening passes candidates of unequal lengths
            [objective_from_prompt_logprobs(out.prompt_logprobs, req["prompt_token_ids"],
                                            objective.first_target(len(prompt_ids), len(candidate)))
             for out, req, candidate in zip(outputs, requests, candidates)],
            dtype=np.float64,
        )  # fmt: skip
