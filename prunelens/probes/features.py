"""Per-head attention features of reasoning tokens, and the H2O importance from the same pass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prunelens.probes.backends import AttentionBackend
from prunelens.core.chain import TokenizedChain

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


def received_sums(backend: AttentionBackend, prompt_ids, reasoning_ids, answer_ids) -> tuple[np.ndarray, np.ndarray]:
    """One hook pass over prompt + reasoning + answer: for each reasoning token, the attention it receives
    from later positions summed per (layer, head) (n × layers × heads), and how many later positions there are."""
    ids = list(prompt_ids) + list(reasoning_ids) + list(answer_ids)
    received = backend.received_attention(ids)  # layers × heads × T
    start, n = len(prompt_ids), len(reasoning_ids)
    sums = np.moveaxis(received[:, :, start : start + n], 2, 0)
    return sums, len(ids) - 1 - np.arange(start, start + n)


def chain_features(backend: AttentionBackend, chain: TokenizedChain) -> ChainFeatures:
    """Run one hook pass over prompt + reasoning + answer and reduce it to reasoning-token features."""
    sums, later = received_sums(backend, chain.prompt_ids, chain.reasoning_ids, chain.answer_ids)
    return ChainFeatures(
        chain.id,
        sums / later[:, None, None],
        sums.sum(axis=(1, 2)),
        list(chain.reasoning_ids),
        list(chain.pieces),
    )
