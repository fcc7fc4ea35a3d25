"""Attention-feature stores: an xarray Dataset with dims (token, layer, head).

Examples are concatenated along ``token``; coordinates give each token's example id, example index,
position in the reasoning, token id and text. One netCDF part per example is written as it finishes
(so runs resume), and ``features.nc`` is the consolidated store, reopened lazily by ``open_features``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prunelens import stores
from prunelens.core.errors import BadRecordError, PrunelensError
from prunelens.probes.features import FEATURE_DEFINITION, H2O_DEFINITION, ChainFeatures
from prunelens.stores import ENGINE, write_netcdf

PARTS_DIR = "features"
STORE_NAME = "features.nc"


def package_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("prunelens", "torch", "transformers", "transformer-lens", "nnsight", "xarray"):
        try:
            found.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)


def to_dataset(features: ChainFeatures, attrs: dict, float16: bool = False):
    """One example's features as a (token, layer, head) Dataset."""
    import xarray as xr

    n, layers, heads = features.attention.shape
    dtype = np.float16 if float16 else np.float32
    return xr.Dataset(
        {
            "attention": (("token", "layer", "head"), features.attention.astype(dtype)),
            "h2o": ("token", features.h2o.astype(np.float64)),
        },
        coords={
            "layer": np.arange(layers),
            "head": np.arange(heads),
            "example_id": ("token", np.array([features.example_id] * n, dtype=object)),
            "position": ("token", np.arange(n)),
            "token_id": ("token", np.array(features.token_ids, dtype=np.int64)),
            "token_text": ("token", np.array(features.tokens, dtype=object)),
        },
        attrs={"feature_definition": FEATURE_DEFINITION, "h2o_definition": H2O_DEFINITION,
               "versions": package_versions(), **attrs},  # fmt: skip
    )


def part_path(out_dir: Path, example_id: str) -> Path:
    """Where one example's features live."""
    return stores.part_path(out_dir, PARTS_DIR, example_id)


def write_part(out_dir: Path, features: ChainFeatures, attrs: dict, float16: bool = False) -> None:
    write_netcdf(part_path(out_dir, features.example_id), to_dataset(features, attrs, float16))


def consolidate(out_dir: Path, example_ids: list[str]) -> Path:
    """Concatenate the parts of ``example_ids`` along ``token`` (adding ``example_index``) into features.nc."""
    import xarray as xr

    parts = []
    for index, example_id in enumerate(example_ids):
        with xr.open_dataset(part_path(out_dir, example_id), engine=ENGINE) as part:
            part = part.load()
        parts.append(part.assign_coords(example_index=("token", np.full(part.sizes["token"], index))))
    combined = xr.concat(parts, dim="token", data_vars="all", coords="different", compat="equals",
                         combine_attrs="override")  # fmt: skip
    # each part's encoding pins its string width (e.g. <U13 for "gsm8k-train-0"): drop it, or longer
    # ids from later parts would be cut to that width on write
    combined = combined.drop_encoding()
    target = Path(out_dir) / STORE_NAME
    write_netcdf(target, combined)
    return target


def check_store_path(path: Path) -> None:
    """A one-line PrunelensError unless ``path`` is a `prunelens features` output folder or its .nc file."""
    path = Path(path)
    if not path.exists():
        raise PrunelensError(f"--features {path}: no such feature store (run `prunelens features --out {path}` first)")
    if path.is_file() and path.suffix != ".nc":
        raise PrunelensError(f"--features {path}: is a file; a `prunelens features` output folder (or its "
                             f"{STORE_NAME}) is expected")  # fmt: skip


def open_features(path: Path):
    """Open a feature store lazily: a folder (its features.nc, consolidated from the finished examples first
    where the run was interrupted before its own consolidation) or the .nc file itself."""
    import xarray as xr

    path = Path(path)
    check_store_path(path)
    if not path.is_dir():
        return xr.open_dataset(path, engine=ENGINE)
    return stores.open_consolidated(path, STORE_NAME, lambda store: [str(i) for i in store["example_id"].values],
                                    lambda ids: consolidate(path, ids), "features")  # fmt: skip


def store_meta(path: Path) -> dict:
    """What a surrogate trained on the store at ``path`` records of its features: model, backend, definition."""
    with open_features(path) as store:
        return {k: store.attrs.get(k) for k in ("model", "backend", "feature_definition")}


class FeatureIndex:
    """A feature store loaded for lookups by example id (for rankers that read stored features)."""

    def __init__(self, path: Path):
        with open_features(path) as store:
            self.attrs = dict(store.attrs)
            self.attention = store["attention"].values.astype(np.float32)
            self.h2o = store["h2o"].values
            self.token_ids = store["token_id"].values
            example_ids = store["example_id"].values.astype(str)
        self.path = Path(path)
        self.rows: dict[str, np.ndarray] = {}
        for example_id in dict.fromkeys(example_ids):
            self.rows[str(example_id)] = np.flatnonzero(example_ids == example_id)

    def rows_for(self, example_id: str, token_ids: list[int]) -> np.ndarray:
        """The store rows of one example; BadRecordError if it is absent or was tokenised differently."""
        rows = self.rows.get(example_id)
        if rows is None:
            raise BadRecordError(example_id, f"not in the feature store {self.path}")
        if list(self.token_ids[rows]) != list(token_ids):
            raise BadRecordError(example_id, f"the feature store {self.path} holds other tokens for it (another model?)")
        return rows

    def check_model(self, model: str) -> None:
        """A one-line error when the store's features came from another model than ``model``."""
        if self.attrs.get("model") != model:
            raise PrunelensError(f"the feature store {self.path} was made with model {self.attrs.get('model')!r}, "
                                 f"not {model!r}; pass the same --model")  # fmt: skip
