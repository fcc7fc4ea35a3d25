"""A feature-extraction run: attention features into an xarray store, H2O rankings alongside."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from prunelens.jsonl import append_jsonl, read_finished
from prunelens.probes.features import chain_features
from prunelens.probes.h2o import h2o_record
from prunelens.probes.store import consolidate, write_part
from prunelens.selection import Selection, select_examples, skip_recorder, tokenized_chains

H2O_NAME = "h2o.jsonl"


@dataclass
class FeaturesConfig(Selection):
    """What `prunelens features` needs."""

    out: Path = Path("runs/features")
    backend: str = "hf"
    float16: bool = False


def run_features(config: FeaturesConfig, progress: bool = True, log=print) -> tuple[Path, list[dict]]:
    """Extract features for every selected example not yet in ``config.out``; returns (store, H2O records)."""
    from tqdm.auto import tqdm

    from prunelens.models import load_model
    from prunelens.probes.backends import make_backend

    out_dir = Path(config.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    skip = skip_recorder(out_dir, log)
    examples = select_examples(config, skip)
    done = {r["id"] for r in read_finished(out_dir / H2O_NAME)}
    todo = [e for e in examples if e.id not in done]
    if todo:
        loaded = load_model(config.model, device=config.device, dtype=config.dtype, attn_implementation="eager")
        backend = make_backend(config.backend, loaded)
        attrs = {"model": config.model, "backend": config.backend}
        chains = tokenized_chains(config, todo, loaded, skip)
        for example, chain in tqdm(chains, total=len(todo), desc=f"features ({config.backend})", disable=not progress):
            started = time.perf_counter()
            features = chain_features(backend, chain)
            write_part(out_dir, features, attrs, config.float16)
            record = h2o_record(example, chain, features, config.model)
            record["seconds"] = round(time.perf_counter() - started, 3)
            append_jsonl(out_dir / H2O_NAME, record)
    records = read_finished(out_dir / H2O_NAME)
    store = consolidate(out_dir, [r["id"] for r in records]) if records else out_dir
    return store, records
