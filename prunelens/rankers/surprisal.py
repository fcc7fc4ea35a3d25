"""Surprisal: remove the least surprising reasoning tokens first, −log p(r_j | q, r_<j) under teacher forcing
(``--highest-first`` reverses it: the most surprising first, a control for Surprisal's own direction)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prunelens.core.ranked import ranked_by
from prunelens.core.settings import setting
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


@dataclass
class SurprisalOptions:
    """Surprisal's own setting: which end of the surprisal order goes first."""

    highest_first: bool = setting(False, "remove the most surprising tokens first (reversed Surprisal)", result=True,
                                  name="highest-first")  # fmt: skip


class SurprisalRanker(Ranker):
    """One teacher-forced forward per chain under ``--model``; lowest surprisal removed first (highest with
    ``--highest-first``); ties to the lower position either way."""

    needs_weights = True

    def __init__(self, config):
        super().__init__(config)
        end = "highest" if self.options.highest_first else "lowest"
        self.score_meaning = f"surprisal -log p(token | prompt, earlier reasoning) in nats; {end} removed first"

    def settings(self):
        return {"highest_first": self.options.highest_first}

    def start(self, loaded):
        self.model = loaded.model

    def rank(self, example, chain):
        surprisal = reasoning_surprisal(self.model, chain.prompt_ids, chain.reasoning_ids)
        return ranked_by(surprisal, lowest_first=not self.options.highest_first)
