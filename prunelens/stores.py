"""Shared plumbing for xarray stores: one netCDF part per example, written atomically."""

from __future__ import annotations

import hashlib
from pathlib import Path

from prunelens.core.errors import PrunelensError
from prunelens.core.jsonl import replace_atomically
from prunelens.core.ranking import load_rankings, rankings_file

ENGINE = "h5netcdf"


def part_path(out_dir: Path, folder: str, example_id: str) -> Path:
    """A filesystem-safe, collision-free file name for one example's part under ``out_dir/folder``."""
    digest = hashlib.sha1(example_id.encode()).hexdigest()[:10]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in example_id)[:80]
    return Path(out_dir) / folder / f"{safe}-{digest}.nc"


def write_netcdf(path: Path, dataset) -> None:
    """Write a Dataset to netCDF-4 (HDF5) at ``path`` atomically (``replace_atomically``): a kill never leaves a
    torn file.

    float16 variables are not in the netCDF standard: such files are valid HDF5 that xarray and
    h5netcdf read back, though some netCDF tools will not.
    """
    import warnings

    import numpy as np

    float16 = any(variable.dtype == np.float16 for variable in dataset.variables.values())

    def write(staging: Path) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*invalid netcdf features.*")
            dataset.to_netcdf(staging, engine=ENGINE, invalid_netcdf=float16)

    replace_atomically(Path(path), write)


def read_netcdf(path: Path, what: str):
    """A netCDF file read whole into memory (the file is closed again); a one-line error naming ``what`` when
    there is no such file."""
    import xarray as xr

    if not Path(path).is_file():
        raise PrunelensError(f"{path}: no such {what} file")
    with xr.open_dataset(path, engine=ENGINE) as data:
        return data.load()


def open_consolidated(out_dir: Path, store_name: str, stored_ids, consolidate, what: str):
    """Open ``out_dir/store_name`` lazily, first consolidating it from the finished examples' parts when it
    is missing or does not hold every finished example (a run interrupted before its consolidation).

    ``stored_ids(dataset)`` lists the example ids a store holds; ``consolidate(ids)`` rewrites the store."""
    import xarray as xr

    out_dir = Path(out_dir)
    path = out_dir / store_name
    ids = [r.id for r in load_rankings(out_dir)] if rankings_file(out_dir).exists() else []
    if path.exists():
        store = xr.open_dataset(path, engine=ENGINE)
        if not ids or set(stored_ids(store)) == set(ids):
            return store
        store.close()
    if not ids:
        raise PrunelensError(f"{out_dir}: no {what} yet (no {store_name}, no finished examples)")
    consolidate(ids)
    return xr.open_dataset(path, engine=ENGINE)
