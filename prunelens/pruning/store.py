"""Candidate-score stores: one netCDF part per finished example, consolidated into scores.nc.

The consolidated Dataset has dims (example, step, position); ``candidate_scores`` is NaN where a
position was already deleted (or beyond the example's length or its last step).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prunelens import stores
from prunelens.core.ranking import load_rankings
from prunelens.stores import ENGINE, write_netcdf

PARTS_DIR = "scores"
STORE_NAME = "scores.nc"


def part_path(out_dir: Path, example_id: str) -> Path:
    """Where one example's score table lives."""
    return stores.part_path(out_dir, PARTS_DIR, example_id)


def write_part(out_dir: Path, example_id: str, candidate_scores: np.ndarray, tokens: Sequence[str], attrs: dict):
    """Write one example's (step, position) score table atomically (``write_netcdf``)."""
    import xarray as xr

    data = xr.Dataset(
        {"candidate_scores": (("step", "position"), np.asarray(candidate_scores, dtype=np.float64))},
        coords={"position": np.arange(candidate_scores.shape[1]), "token": ("position", list(tokens))},
        attrs={"example_id": example_id, **attrs},
    )
    write_netcdf(part_path(out_dir, example_id), data)


def consolidate(out_dir: Path, example_ids: Sequence[str], attrs: dict) -> Path:
    """Combine the parts of ``example_ids`` into ``scores.nc`` (dims example, step, position)."""
    import xarray as xr

    tables, tokens = [], []
    for example_id in example_ids:
        with xr.open_dataset(part_path(out_dir, example_id), engine=ENGINE) as part:
            tables.append(part["candidate_scores"].values)
            tokens.append([str(t) for t in part["token"].values])
    steps = max((t.shape[0] for t in tables), default=0)
    width = max((t.shape[1] for t in tables), default=0)
    scores = np.full((len(tables), steps, width), np.nan)
    token_grid = np.full((len(tables), width), "", dtype=object)
    for index, (table, toks) in enumerate(zip(tables, tokens)):
        scores[index, : table.shape[0], : table.shape[1]] = table
        token_grid[index, : len(toks)] = toks
    data = xr.Dataset(
        {
            "candidate_scores": (("example", "step", "position"), scores),
            "n_tokens": ("example", np.array([t.shape[1] for t in tables], dtype=np.int64)),
            "token": (("example", "position"), token_grid),
        },
        coords={"example": list(example_ids), "step": np.arange(steps), "position": np.arange(width)},
        attrs=attrs,
    )
    target = Path(out_dir) / STORE_NAME
    write_netcdf(target, data)
    return target


def open_scores(out_dir: Path):
    """Open a run's candidate scores lazily (consolidating the finished examples first where the run was
    interrupted before its own consolidation)."""
    def consolidate_finished(ids):
        first = load_rankings(out_dir)[0]
        consolidate(out_dir, ids, {"model": first.model, "objective": first.objective})

    return stores.open_consolidated(out_dir, STORE_NAME, lambda store: [str(i) for i in store["example"].values],
                                    consolidate_finished, "pruning scores")  # fmt: skip
