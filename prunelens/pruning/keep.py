"""Keep-fraction arithmetic and turning a deletion order into pruned chains."""

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


def pruned_text(record: dict, keep: float) -> str:
    """The reasoning text of a pruning record at keep fraction ``keep``."""
    pieces = record["reasoning_tokens"]
    return "".join(pieces[i] for i in kept_positions(record["deletion_order"], len(pieces), keep))


def pruned_ids(record: dict, keep: float) -> list[int]:
    """The reasoning token ids of a pruning record at keep fraction ``keep``."""
    ids = record["reasoning_ids"]
    return [ids[i] for i in kept_positions(record["deletion_order"], len(ids), keep)]


def marked_text(record: dict, keep: float, open_mark: str = "[-", close_mark: str = "-]") -> str:
    """The full reasoning with the tokens deleted at ``keep`` wrapped in [- -] marks (runs merged)."""
    pieces = record["reasoning_tokens"]
    kept = set(kept_positions(record["deletion_order"], len(pieces), keep))
    out, deleting = [], False
    for index, piece in enumerate(pieces):
        gone = index not in kept
        if gone and not deleting:
            out.append(open_mark)
        if deleting and not gone:
            out.append(close_mark)
        out.append(piece)
        deleting = gone
    if deleting:
        out.append(close_mark)
    return "".join(out)
