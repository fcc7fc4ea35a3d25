"""What every ranker implements, and the helpers rankers share.

A ranker is built once per run from the run's ``RankConfig`` and the loaded pruner model (or only its
tokenizer, when ``needs_weights`` is False) and turns each tokenised chain into a ``Ranked``: a
deletion order over the pruner's reasoning tokens and, where the method has them, the per-token
scores it ordered by. ``rank_job`` wraps that into a ``Ranking`` with the chain's tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from prunelens.datasets.base import Example
from prunelens.pruning.chain import TokenizedChain


@dataclass
class Ranked:
    """A ranker's output for one chain: positions first removed first, and optional per-token scores."""

    deletion_order: list[int]
    scores: list[float] | None = None


class Ranker:
    """Base of the registered rankers: ``__init__`` keeps the config and must stay cheap; ``validate``
    checks the ranker's own settings before anything is loaded or written; ``start`` loads what it
    needs (once, only if work is left); ``rank`` ranks one chain."""

    needs_weights: ClassVar[bool] = False  # False: the pruner's tokenizer is enough
    score_meaning: ClassVar[str | None] = None

    def __init__(self, config):
        self.config = config

    def validate(self) -> None:
        pass

    def start(self, loaded) -> None:
        pass

    def settings(self) -> dict:
        """The settings recorded in each ranking."""
        return {}

    def rank(self, example: Example, chain: TokenizedChain) -> Ranked:
        raise NotImplementedError


def ascending_order(values: Sequence[float]) -> list[int]:
    """Positions by ascending value, ties to the lower position: lowest removed first."""
    values = np.asarray(values, dtype=np.float64)
    return [int(i) for i in np.lexsort((np.arange(len(values)), values))]


def ranked_by(values: Sequence[float], lowest_first: bool = True) -> Ranked:
    """A Ranked that removes the lowest values first (or the highest, with ``lowest_first=False``)."""
    values = np.asarray(values, dtype=np.float64)
    order = ascending_order(values if lowest_first else -values)
    return Ranked(order, [float(v) for v in values])


def make_ranking(example: Example, chain: TokenizedChain, *, method: str, model: str, ranked: Ranked,
                 settings: dict | None = None, score_meaning: str | None = None):
    """The Ranking of one tokenised chain from a ranker's output."""
    from prunelens.ranking import Ranking

    return Ranking(id=example.id, method=method, model=model, reasoning=chain.reasoning,
                   reasoning_ids=list(chain.reasoning_ids), reasoning_tokens=list(chain.pieces),
                   offsets=[list(span) for span in chain.offsets], deletion_order=ranked.deletion_order,
                   settings=dict(settings or {}), scores=ranked.scores, score_meaning=score_meaning,
                   question=example.question, answer=example.answer, dataset=example.dataset)  # fmt: skip
