"""H2O: remove the reasoning tokens that receive the least attention first.

importance_j = Σ over layers, heads and later positions i > j of A[layer, head, i, j]
(``prunelens.probes.features.H2O_DEFINITION``), read from a feature store or computed with a hook backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prunelens.core.registry import BACKENDS
from prunelens.core.settings import setting
from prunelens.probes.backends import make_backend
from prunelens.probes.features import H2O_DEFINITION, chain_features
from prunelens.probes.store import FeatureIndex, check_store_path
from prunelens.core.ranked import ranked_by
from prunelens.rankers.base import Ranker


@dataclass
class H2OOptions:
    """H2O's own settings: a feature store to read, else the hook backend that computes attention."""

    features: Path | None = setting(None, "a `prunelens features` output folder", result=True, input=True)
    backend: str = setting("hf", f"without --features: the hook backend ({' | '.join(BACKENDS.names())})",
                           result=True)  # fmt: skip


class H2ORanker(Ranker):
    """From ``--features DIR`` when given (no forward pass), else one hook pass per chain (``--backend``)."""

    score_meaning = H2O_DEFINITION

    def __init__(self, config):
        super().__init__(config)
        self.needs_weights = self.options.features is None

    def validate(self):
        if self.options.features is not None:
            check_store_path(self.options.features)
        else:
            BACKENDS.get(self.options.backend)

    def start(self, loaded):
        if self.options.features is not None:
            self.store = FeatureIndex(self.options.features)
            self.store.check_model(self.config.model)
        else:
            self.backend = make_backend(self.options.backend, loaded)

    def settings(self):
        return {"features": str(self.options.features)} if self.options.features else {"backend": self.options.backend}

    def rank(self, example, chain):
        if self.options.features is not None:
            importance = self.store.h2o[self.store.rows_for(example.id, chain.reasoning_ids)]
        else:
            importance = chain_features(self.backend, chain).h2o
        return ranked_by(importance)
