"""Per-head attention features of reasoning tokens, and the H2O importance from the same pass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prunelens.probes.backends import AttentionBackend
from prunelens.pruning.chain import TokenizedChain

FEATURE_DEFINITION = (
    "attention[token, layer, head] = mean over later positions i > j of A[layer, head, i, j], the attention "
    "reasoning token j receives; sequence = prompt + reasoning + answer; one value per query head"
)
H2O_DEFINITION = "h2o[token] = sum over layers, heads and later positions i > j of A[layer, head, i, j]"


@dataclass
class ChainFeatures:
    """Features of one chain's reasoning tokens: ``attention`` is n × layers × heads."""

    example_id: str
    attention: np.ndarray
    h2o: np.ndarray
    token_ids: list[int]
    tokens: list[str]


def chain_features(backend: AttentionBackend, chain: TokenizedChain) -> ChainFeatures:
    """Run one hook pass over prompt + reasoning + answer and reduce it to reasoning-token features."""
    ids = chain.prompt_ids + chain.reasoning_ids + chain.answer_ids
    received = backend.received_attention(ids)  # layers × heads × T
    start, n = len(chain.prompt_ids), len(chain.reasoning_ids)
    sums = np.moveaxis(received[:, :, start : start + n], 2, 0)  # n × layers × heads
    later = len(ids) - 1 - np.arange(start, start + n)  # how many positions come after each token
    return ChainFeatures(
        chain.id,
        sums / later[:, None, None],
        sums.sum(axis=(1, 2)),
        list(chain.reasoning_ids),
        list(chain.pieces),
    )
