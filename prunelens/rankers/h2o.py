"""H2O: remove the reasoning tokens that receive the least attention first.

importance_j = Σ over layers, heads and later positions i > j of A[layer, head, i, j]
(``prunelens.probes.features.H2O_DEFINITION``), read from a feature store or computed with a hook backend.
"""

from __future__ import annotations

from pathlib import Path

from prunelens.core.errors import PrunelensError
from prunelens.probes.features import H2O_DEFINITION
from prunelens.core.ranked import ranked_by
from prunelens.rankers.base import Ranker


class H2ORanker(Ranker):
    """From ``--features DIR`` when given (no forward pass), else one hook pass per chain (``--backend``)."""

    score_meaning = H2O_DEFINITION

    def __init__(self, config):
        super().__init__(config)
        self.needs_weights = config.features is None

    def validate(self):
        if self.config.features is not None and not Path(self.config.features).exists():
            raise PrunelensError(f"--features {self.config.features}: no such folder")
        if self.config.features is None:
            from prunelens.core.registry import BACKENDS

            BACKENDS.get(self.config.backend)

    def start(self, loaded):
        if self.config.features is not None:
            from prunelens.probes.store import FeatureIndex

            self.store = FeatureIndex(self.config.features)
            self.store.check_model(self.config.model)
        else:
            from prunelens.probes.backends import make_backend

            self.backend = make_backend(self.config.backend, loaded)

    def settings(self):
        return {"features": str(self.config.features)} if self.config.features else {"backend": self.config.backend}

    def rank(self, example, chain):
        if self.config.features is not None:
            importance = self.store.h2o[self.store.rows_for(example.id, chain.reasoning_ids)]
        else:
            from prunelens.probes.features import chain_features

            importance = chain_features(self.backend, chain).h2o
        return ranked_by(importance)
