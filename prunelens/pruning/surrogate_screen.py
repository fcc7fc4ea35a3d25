"""Predictions for surrogate screening: a trained attention → score surrogate applied to the chain being pruned.

Each call runs one memory-bounded hook pass (the ``hf_blockwise`` backend) over prompt + current chain +
answer, reduces it to the features the surrogate was trained on (``FEATURE_DEFINITION``) and returns one
prediction per chain token, higher meaning cheaper to delete (a rank surrogate's predictions are negated).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prunelens.core.errors import PrunelensError
from prunelens.probes.backends import make_backend
from prunelens.probes.features import FEATURE_DEFINITION, received_sums


class SurrogatePredictor:
    """``predictor(prompt_ids, reasoning_ids, answer_ids)`` → predicted post-deletion score per reasoning token."""

    def __init__(self, surrogate, backend):
        self.surrogate, self.backend = surrogate, backend
        self.sign = -1.0 if surrogate.config.target == "rank" else 1.0
        self.tokens_computed = 0  # tokens of the hook passes, for the benchmark's accounting

    def __call__(self, prompt_ids, reasoning_ids, answer_ids) -> np.ndarray:
        sums, later = received_sums(self.backend, prompt_ids, reasoning_ids, answer_ids)
        self.tokens_computed += len(prompt_ids) + len(reasoning_ids) + len(answer_ids)
        return self.sign * self.surrogate.predict((sums / later[:, None, None]).reshape(len(reasoning_ids), -1))


def load_predictor(path: Path, loaded, model_name: str) -> SurrogatePredictor:
    """The saved surrogate at ``path`` over ``loaded``'s model, or a one-line PrunelensError naming the mismatch.
    Switches the model to the blockwise attention implementation (prunelens.probes.blockwise)."""
    # deferred: prunelens.probes.surrogate imports scipy.stats (through core.bootstrap), over a second to import,
    # which only --surrogate runs need; `prunelens prune` imports this module at its top
    from prunelens.probes.surrogate import Surrogate, surrogate_refusal

    surrogate = Surrogate.load(path)
    config = loaded.model.config
    refusal = surrogate_refusal(surrogate, model_name, FEATURE_DEFINITION,
                                config.num_hidden_layers * config.num_attention_heads, "screening computes them")
    if refusal:
        raise PrunelensError(f"--surrogate {path}: {refusal}")
    return SurrogatePredictor(surrogate, make_backend("hf_blockwise", loaded))
