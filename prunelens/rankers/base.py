"""What every ranker implements, and the helpers rankers share.

A ranker is built once per run from the run's ``RankConfig`` and the loaded pruner model (or only its
tokenizer, when ``needs_weights`` is False) and turns each tokenised chain into a ``Ranked``: a
deletion order over the pruner's reasoning tokens and, where the method has them, the per-token
scores it ordered by. the rank job wraps that into a ``Ranking`` with the chain's tokens (``prunelens.core.ranked.make_ranking``).
"""

from __future__ import annotations

from typing import ClassVar

from prunelens.core.chain import TokenizedChain
from prunelens.core.ranked import Ranked
from prunelens.datasets.base import Example


class Ranker:
    """Base of the registered rankers: ``__init__`` keeps the config and must stay cheap; ``validate``
    checks the ranker's own settings before anything is loaded or written; ``start`` loads what it
    needs (once, only if work is left); ``rank`` ranks one chain."""

    needs_weights: ClassVar[bool] = False  # False: the pruner's tokenizer is enough
    score_meaning: ClassVar[str | None] = None

    def __init__(self, config):
        self.config = config  # the rank job's settings (model, device, …)
        self.options = config.options  # the ranker's own settings: its registered options dataclass, or None

    def validate(self) -> None:
        pass

    def start(self, loaded) -> None:
        pass

    def settings(self) -> dict:
        """The settings recorded in each ranking."""
        return {}

    def rank(self, example: Example, chain: TokenizedChain) -> Ranked:
        raise NotImplementedError
