"""Where benchmark rows come from: a data folder, the copy packaged with prunelens, or the HF hub.

Lookup order: ``--data-dir`` (exclusive: nothing else is tried), else ``$PRUNELENS_DATA_DIR`` when set, else the
copy packaged in ``prunelens/datasets/data`` (every split the toolkit uses ships there; provenance, licences and
checksums in its README), else the Hugging Face hub. No folder outside the package is ever looked at.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prunelens.core.errors import PrunelensError, reason
from prunelens.core.jsonl import iter_jsonl

if TYPE_CHECKING:  # only for annotations: datasets.base reads rows through this module
    from prunelens.datasets.base import Benchmark

DATA_DIR_ENV = "PRUNELENS_DATA_DIR"
PACKAGED_DATA_DIR = Path(__file__).resolve().parent / "data"


def candidate_data_dirs(explicit: Path | None = None) -> list[tuple[str, Path]]:
    """Data dirs in lookup order, each with a label saying where it came from."""
    if explicit is not None:
        return [("--data-dir", Path(explicit))]
    found = []
    if os.environ.get(DATA_DIR_ENV):
        found.append((DATA_DIR_ENV, Path(os.environ[DATA_DIR_ENV])))
    found.append(("packaged", PACKAGED_DATA_DIR))
    return found


def read_rows(bench: Benchmark, raw_split: str, data_dir: Path | None = None) -> list[dict[str, Any]]:
    """All raw rows of one raw split, from the first data dir that has the file, else from the hub."""
    relative = bench.raw_files[raw_split]
    dirs = candidate_data_dirs(data_dir)
    for _label, directory in dirs:
        path = directory / relative
        if path.is_file():
            return list(iter_jsonl(path))
    if data_dir is not None:
        raise PrunelensError(f"dataset {bench.name}: {relative} not found in --data-dir {data_dir}")
    return _hub_rows(bench, raw_split, [str(d / relative) for _, d in dirs])


def _hub_rows(bench: Benchmark, raw_split: str, looked_in: list[str]) -> list[dict[str, Any]]:
    """Load a split from the Hugging Face hub with the `datasets` library."""
    where = ", ".join(looked_in) or "nowhere"
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise PrunelensError(
            f"dataset {bench.name}: no local copy (looked in {where}) and HF_HUB_OFFLINE=1; "
            f"set --data-dir or {DATA_DIR_ENV}"
        )
    try:
        import datasets
    except ImportError:
        raise PrunelensError(
            f"dataset {bench.name}: no local copy (looked in {where}); install prunelens[hub] to load "
            f"{bench.hub_repo} from the Hugging Face hub, or set --data-dir"
        ) from None
    try:
        loaded = datasets.load_dataset(bench.hub_repo, bench.hub_config, split=bench.hub_splits[raw_split])
    except Exception as exc:  # the hub raises many connection error types
        raise PrunelensError(
            f"dataset {bench.name}: no local copy (looked in {where}) and the hub load of "
            f"{bench.hub_repo} failed: {reason(exc)}"
        ) from None
    return [dict(row) for row in loaded]
