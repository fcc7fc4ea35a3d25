"""Keep-fraction arithmetic; the chain at a keep fraction comes from ``prunelens.core.ranking.Ranking``."""

from __future__ import annotations

import math
from collections.abc import Sequence


def n_keep(n: int, keep: float) -> int:
    """|S| = round(keep · n), rounding halves up (so 0.5 · 41 keeps 21)."""
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep fraction must lie in [0, 1], got {keep}")
    return min(n, int(math.floor(keep * n + 0.5)))


def kept_positions(deletion_order: Sequence[int], n: int, keep: float) -> list[int]:
    """Positions (ascending) still present at keep fraction ``keep``.

    Raises ValueError when the run stopped before reaching that fraction.
    """
    n_delete = n - n_keep(n, keep)
    if n_delete > len(deletion_order):
        reached = (n - len(deletion_order)) / n
        raise ValueError(f"keep fraction {keep} not reached: the run stopped at {reached:.3f}")
    deleted = set(deletion_order[:n_delete])
    return [i for i in range(n) if i not in deleted]
