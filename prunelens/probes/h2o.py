"""H2O baseline: prune the tokens that receive the least attention first."""

from __future__ import annotations

from prunelens.datasets.base import Example
from prunelens.probes.features import H2O_DEFINITION, ChainFeatures
from prunelens.pruning.chain import TokenizedChain


def h2o_order(importance) -> list[int]:
    """Positions by ascending importance, ties to the lowest position: the H2O deletion order."""
    return sorted(range(len(importance)), key=lambda j: (float(importance[j]), j))


def h2o_record(example: Example, chain: TokenizedChain, features: ChainFeatures, model: str) -> dict:
    """A ranking record in the pruning-record format (``deletion_order``, ``reasoning_tokens``…), so
    ``prunelens.pruning.keep.pruned_text(record, keep)`` gives H2O's chain at any keep fraction."""
    return {
        "id": example.id,
        "method": "h2o",
        "definition": H2O_DEFINITION,
        "model": model,
        "question": example.question,
        "reasoning": chain.reasoning,
        "answer": example.answer,
        "reasoning_ids": chain.reasoning_ids,
        "reasoning_tokens": chain.pieces,
        "offsets": [list(span) for span in chain.offsets],
        "importance": [float(v) for v in features.h2o],
        "deletion_order": h2o_order(features.h2o),
    }
