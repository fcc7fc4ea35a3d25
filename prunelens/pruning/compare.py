"""Agreement between two deletion orders: Hit@|S| per keep-fraction band and Kendall tau."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prunelens.core.keep import n_keep

DEFAULT_BANDS = ((1.0, 0.9), (0.9, 0.7), (0.7, 0.5))


def removed_between(order: Sequence[int], n: int, high: float, low: float) -> set[int]:
    """Positions an order deletes while the keep fraction falls from ``high`` to ``low``."""
    return set(order[n - n_keep(n, high) : n - n_keep(n, low)])


def hit_at_s(reference: Sequence[int], other: Sequence[int], n: int, high: float, low: float, *,
             without_first: bool = False) -> float:  # fmt: skip
    """Hit@|S| of ``other``'s deletion order used as a ranking, as docs/design.md defines it for rankings:
    S = the reference's deletions while the keep fraction falls from ``high`` to ``low``; among the
    tokens the reference still has at ``high``, the |S| that ``other`` deletes first (ties and
    never-deleted tokens by position); the share of S they cover (NaN if S is empty).
    ``without_first`` leaves the reference's first deletion of the band out of S and out of the tokens
    ranked: a ranking that shares only that first choice with the reference then scores 0, not 1/|S|."""
    start = n - n_keep(n, high)
    target = removed_between(reference, n, high, low)
    if without_first and target:
        target.discard(reference[start])
        start += 1
    if not target:
        return float("nan")
    gone = set(reference[:start])
    ranks = deletion_ranks(other, n)
    still = sorted((p for p in range(n) if p not in gone), key=lambda p: (ranks[p], p))
    return len(set(still[: len(target)]) & target) / len(target)


def deletion_ranks(order: Sequence[int], n: int) -> np.ndarray:
    """Rank of each position in an order (0 = first deleted); positions never deleted share rank len(order)."""
    ranks = np.full(n, len(order), dtype=float)
    ranks[list(order)] = np.arange(len(order))
    return ranks


def kendall_tau(a: Sequence[int], b: Sequence[int], n: int) -> float:
    """Kendall's tau-b between the deletion ranks of two orders over all n positions."""
    from scipy.stats import kendalltau

    return float(kendalltau(deletion_ranks(a, n), deletion_ranks(b, n)).statistic)
