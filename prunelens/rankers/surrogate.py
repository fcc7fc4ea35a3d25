"""Surrogate: greedy's order predicted from attention features alone (no pruning forward pass).

A surrogate trained by `prunelens surrogate train` predicts each token's post-deletion likelihood
(greedy removes the highest first) or its deletion rank (lowest first) from a feature store's
per-head attention features.
"""

from __future__ import annotations

from pathlib import Path

from prunelens.core.errors import PrunelensError
from prunelens.core.ranked import ranked_by
from prunelens.rankers.base import Ranker


class SurrogateRanker(Ranker):
    """Needs ``--surrogate FILE`` and ``--features DIR`` made with the same model as ``--model``."""

    def validate(self):
        for option, path in (("--surrogate", self.config.surrogate), ("--features", self.config.features)):
            if path is None:
                raise PrunelensError(f"--method surrogate needs {option}")
            if not Path(path).exists():
                raise PrunelensError(f"{option} {path}: not found")

    def start(self, loaded):
        from prunelens.probes.store import FeatureIndex
        from prunelens.probes.surrogate import Surrogate

        self.surrogate = Surrogate.load(self.config.surrogate)
        self.store = FeatureIndex(self.config.features)
        self.store.check_model(self.config.model)
        trained_on = self.surrogate.meta.get("model")
        if trained_on not in (None, self.config.model):
            raise PrunelensError(f"--surrogate {self.config.surrogate} was trained on features of {trained_on!r}, "
                                 f"not {self.config.model!r}")  # fmt: skip
        if self.surrogate.mean.shape[0] != self.store.attention[0].size:
            raise PrunelensError(f"--surrogate expects {self.surrogate.mean.shape[0]} features per token; "
                                 f"the store has {self.store.attention[0].size}")  # fmt: skip

    @property
    def score_meaning(self):
        if self.surrogate.config.target == "rank":
            return "predicted relative deletion rank; lowest removed first"
        return "predicted post-deletion log-likelihood (greedy step 0); highest removed first"

    def settings(self):
        return {"surrogate": str(self.config.surrogate), "features": str(self.config.features)}

    def rank(self, example, chain):
        rows = self.store.rows_for(example.id, chain.reasoning_ids)
        predicted = self.surrogate.predict(self.store.attention[rows].reshape(len(rows), -1))
        return ranked_by(predicted, lowest_first=self.surrogate.config.target == "rank")
