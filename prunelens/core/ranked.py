"""A ranker's raw output, the ordering helpers (positions first removed first, and the scores behind them), and
the Ranking a chain's Ranked becomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from prunelens.core.chain import TokenizedChain
from prunelens.core.ranking import Ranking


@dataclass
class Ranked:
    """A ranker's output for one chain: positions first removed first, and optional per-token scores."""

    deletion_order: list[int]
    scores: list[float] | None = None


def ascending_order(values: Sequence[float]) -> list[int]:
    """Positions by ascending value, ties to the lower position: lowest removed first."""
    values = np.asarray(values, dtype=np.float64)
    return [int(i) for i in np.lexsort((np.arange(len(values)), values))]


def ranked_by(values: Sequence[float], lowest_first: bool = True) -> Ranked:
    """A Ranked that removes the lowest values first (or the highest, with ``lowest_first=False``)."""
    values = np.asarray(values, dtype=np.float64)
    order = ascending_order(values if lowest_first else -values)
    return Ranked(order, [float(v) for v in values])


def make_ranking(example, chain: TokenizedChain, *, method: str, model: str, ranked: Ranked,
                 settings: dict | None = None, score_meaning: str | None = None):
    """The Ranking of one tokenised chain from a ranker's output; ``example`` gives its id, question, answer and
    dataset (a ``prunelens.datasets.Example``)."""
    return Ranking(id=example.id, method=method, model=model, reasoning=chain.reasoning,
                   reasoning_ids=list(chain.reasoning_ids), reasoning_tokens=list(chain.pieces),
                   offsets=[list(span) for span in chain.offsets], deletion_order=ranked.deletion_order,
                   settings=dict(settings or {}), scores=ranked.scores, score_meaning=score_meaning,
                   question=example.question, answer=example.answer, dataset=example.dataset)  # fmt: skip
