"""Uniform: a seeded random deletion order, the same for an example whatever else is selected."""

from __future__ import annotations

import hashlib

from dataclasses import dataclass

import numpy as np

from prunelens.core.ranked import Ranked
from prunelens.core.settings import setting
from prunelens.rankers.base import Ranker


@dataclass
class UniformOptions:
    """Uniform's own setting."""

    seed: int = setting(0, "the random seed", result=True, name="seed")


class UniformRanker(Ranker):
    """A random permutation drawn from (seed, example id), so shards and resumed runs agree."""

    def settings(self):
        return {"seed": self.options.seed}

    def rank(self, example, chain):
        key = int(hashlib.sha1(example.id.encode()).hexdigest()[:12], 16)
        order = np.random.default_rng([self.options.seed, key]).permutation(len(chain.reasoning_ids))
        return Ranked([int(i) for i in order])
