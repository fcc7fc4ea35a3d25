"""Combine the output folders of sharded pruning runs into one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from prunelens.errors import PrunelensError
from prunelens.jsonl import append_jsonl, read_finished
from prunelens.pruning.store import consolidate, part_path


def merge_runs(out_dir: Path, shard_dirs: list[Path]) -> int:
    """Merge shard folders into ``out_dir``; returns the number of records. Shards must share settings."""
    from prunelens.pruning.run import CONFIG_NAME, RECORDS_NAME

    out_dir = Path(out_dir)
    identities = []
    for shard in shard_dirs:
        config = Path(shard) / CONFIG_NAME
        if not config.exists():
            raise PrunelensError(f"{shard} is not a pruning output folder (no {CONFIG_NAME})")
        identities.append(json.loads(config.read_text())["identity"])
    if any(identity != identities[0] for identity in identities):
        raise PrunelensError("the shards were run with different settings; refusing to merge")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(shard_dirs[0]) / CONFIG_NAME, out_dir / CONFIG_NAME)
    merged = {record["id"]: record for record in read_finished(out_dir / RECORDS_NAME)}
    for shard in shard_dirs:
        for record in read_finished(Path(shard) / RECORDS_NAME):
            if record["id"] in merged:
                continue
            target = part_path(out_dir, record["id"])
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(part_path(shard, record["id"]), target)
            append_jsonl(out_dir / RECORDS_NAME, record)
            merged[record["id"]] = record
    first = next(iter(merged.values()), None)
    if first is not None:
        consolidate(out_dir, list(merged), {"model": first["model"], "objective": first["objective"]})
    return len(merged)
