"""Truncation: remove from the end, so keep fraction ρ keeps the chain's first ρ tokens (a free control)."""

from __future__ import annotations

from prunelens.core.ranked import Ranked
from prunelens.rankers.base import Ranker


class TruncationRanker(Ranker):
    def rank(self, example, chain):
        return Ranked(list(range(len(chain.reasoning_ids) - 1, -1, -1)))
