"""Greedy: the rankings of a finished `prunelens prune` run, passed on without recomputation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prunelens.core.errors import BadRecordError, PrunelensError
from prunelens.core.ranking import load_rankings
from prunelens.core.settings import setting
from prunelens.rankers.base import Ranker


@dataclass
class GreedyOptions:
    """Greedy's own setting: the prune run whose rankings it passes on."""

    pruning: Path | None = setting(None, "the `prunelens prune` output folder to read", result=True, input=True)


class GreedyRanker(Ranker):
    """Reads ``--pruning DIR``; each selected example must have a finished greedy ranking there."""

    def validate(self):
        if self.options.pruning is None:
            raise PrunelensError("--method greedy needs --pruning DIR (a `prunelens prune` output folder)")
        rankings = [r for r in load_rankings(Path(self.options.pruning)) if r.method == "greedy"]
        if not rankings:
            raise PrunelensError(f"--pruning {self.options.pruning}: no greedy rankings in this folder")
        if rankings[0].model != self.config.model:
            raise PrunelensError(f"--pruning {self.options.pruning} was pruned with model {rankings[0].model!r}, "
                                 f"not {self.config.model!r}; pass the same --model")  # fmt: skip
        self.by_id = {r.id: r for r in rankings}

    def rank(self, example, chain):
        ranking = self.by_id.get(example.id)
        if ranking is None:
            raise BadRecordError(example.id, f"no greedy ranking in {self.options.pruning}")
        if ranking.reasoning_ids != list(chain.reasoning_ids):
            raise BadRecordError(example.id, f"{self.options.pruning} holds other tokens for it")
        return ranking
