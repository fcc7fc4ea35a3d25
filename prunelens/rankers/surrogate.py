"""Surrogate: greedy's order predicted from attention features alone (no pruning forward pass).

A surrogate trained by `prunelens surrogate train` predicts each token's post-deletion likelihood
(greedy removes the highest first) or its deletion rank (lowest first) from a feature store's
per-head attention features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prunelens.core.errors import PrunelensError
from prunelens.core.ranked import ranked_by
from prunelens.core.settings import setting
from prunelens.probes.store import FeatureIndex, check_store_path
from prunelens.rankers.base import Ranker


@dataclass
class SurrogateOptions:
    """The surrogate ranker's own settings: the trained surrogate and the features it predicts from."""

    surrogate: Path | None = setting(None, "a file saved by `prunelens surrogate train`", result=True, input=True)
    features: Path | None = setting(None, "a `prunelens features` output folder", result=True, input=True)


class SurrogateRanker(Ranker):
    """Needs ``--surrogate FILE`` and ``--features DIR`` made with the same model as ``--model``."""

    def validate(self):
        for option, path in (("--surrogate", self.options.surrogate), ("--features", self.options.features)):
            if path is None:
                raise PrunelensError(f"--method surrogate needs {option}")
            if not Path(path).exists():
                raise PrunelensError(f"{option} {path}: not found")
        check_store_path(self.options.features)

    def start(self, loaded):
        # deferred: prunelens.probes.surrogate imports scipy.stats (through core.bootstrap), over a second to
        # import; the CLI imports this module for SurrogateOptions whatever the command
        from prunelens.probes.surrogate import Surrogate, surrogate_refusal

        self.surrogate = Surrogate.load(self.options.surrogate)
        self.store = FeatureIndex(self.options.features)
        self.store.check_model(self.config.model)
        store_definition, width = self.store.attrs.get("feature_definition"), self.store.attention[0].size
        refusal = surrogate_refusal(self.surrogate, self.config.model, store_definition, width,
                                    f"the store {self.store.path} holds them")  # fmt: skip
        if refusal:
            raise PrunelensError(f"--surrogate {self.options.surrogate}: {refusal}")

    @property
    def score_meaning(self):
        if self.surrogate.config.target == "rank":
            return "predicted relative deletion rank; lowest removed first"
        return "predicted post-deletion log-likelihood (greedy step 0); highest removed first"

    def settings(self):
        return {"surrogate": str(self.options.surrogate), "features": str(self.options.features)}

    def rank(self, example, chain):
        rows = self.store.rows_for(example.id, chain.reasoning_ids)
        predicted = self.surrogate.predict(self.store.attention[rows].reshape(len(rows), -1))
        return ranked_by(predicted, lowest_first=self.surrogate.config.target == "rank")
