"""Surprisal: remove the least surprising reasoning tokens first, −log p(r_j | q, r_<j) under teacher forcing."""

from __future__ import annotations

import numpy as np

from prunelens.core.ranked import ranked_by
from prunelens.rankers.base import Ranker


def reasoning_surprisal(model, prompt_ids: list[int], reasoning_ids: list[int]) -> np.ndarray:
    """−log p of each reasoning token given the prompt and the reasoning before it: one forward pass."""
    import torch

    ids = torch.tensor([prompt_ids + reasoning_ids], device=model.device)
    start = len(prompt_ids)
    with torch.inference_mode():
        logits = model(ids).logits[0, start - 1 : start - 1 + len(reasoning_ids)].double()
    logprobs = torch.log_softmax(logits, dim=-1).gather(1, ids[0, start:, None]).squeeze(1)
    return (-logprobs).cpu().numpy()


class SurprisalRanker(Ranker):
    """One teacher-forced forward per chain under ``--model``; lowest surprisal removed first."""

    needs_weights = True
    score_meaning = "surprisal -log p(token | prompt, earlier reasoning) in nats; lowest removed first"

    def start(self, loaded):
        self.model = loaded.model

    def rank(self, example, chain):
        return ranked_by(reasoning_surprisal(self.model, chain.prompt_ids, chain.reasoning_ids))
