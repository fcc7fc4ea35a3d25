"""Combine the output folders of sharded runs (`--shard K/N`) of one job into one folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from prunelens.core.errors import PrunelensError
from prunelens.jobs.run_folder import CONFIG_NAME, read_settings, write_settings
from prunelens.core.jsonl import append_jsonl, read_finished
from prunelens.core.ranking import RANKINGS_NAME, Ranking, rankings_file
from prunelens.core.registry import JOBS
from prunelens.selection import parse_shard
from prunelens.core.settings import differences


def _shard_settings(shard_dirs: list[Path]) -> list[dict]:
    found = []
    for shard in shard_dirs:
        saved = read_settings(shard)
        if saved is None:
            raise PrunelensError(f"{shard} is not a prunelens output folder (no {CONFIG_NAME})")
        found.append(saved)
    return found


def _check_same_settings(shard_dirs: list[Path], found: list[dict]) -> None:
    first = found[0]
    for shard, saved in zip(shard_dirs[1:], found[1:]):
        if saved["job"] != first["job"]:
            raise PrunelensError(f"{shard} holds a `{saved['job']}` run, {shard_dirs[0]} a `{first['job']}` run")
        for key, theirs, ours in differences(first["identity"], saved["identity"], JOBS.load(first["job"]).config_type):
            raise PrunelensError(f"{shard} was run with {key}={ours!r}, {shard_dirs[0]} with {key}={theirs!r}; "
                                 "refusing to merge")  # fmt: skip


def _check_complete(shard_dirs: list[Path], found: list[dict]) -> None:
    """Every shard K/N of one N present once (shards of one selection, none missing)."""
    specs = [saved["config"].get("shard") for saved in found]
    if any(spec in (None, "None") for spec in specs):
        return  # whole runs (e.g. a resumed run finished elsewhere) merge as they are
    parsed = [parse_shard(spec) for spec in specs]
    counts = {count for _, count in parsed}
    if len(counts) != 1:
        raise PrunelensError(f"shards of different partitions ({', '.join(specs)}); refusing to merge")
    count = counts.pop()
    missing = sorted(set(range(count)) - {index for index, _ in parsed})
    if missing:
        raise PrunelensError(f"missing shard(s) {', '.join(f'{k}/{count}' for k in missing)}; pass every shard folder")


def merge_runs(out_dir: Path, shard_dirs: list[Path]) -> int:
    """Merge shard folders into ``out_dir`` (records, store parts, consolidated store); returns the number
    of rankings. Refuses shards of different jobs or settings, and an incomplete set of shards."""
    out_dir, shard_dirs = Path(out_dir), [Path(s) for s in shard_dirs]
    if not shard_dirs:
        raise PrunelensError("no shard folders to merge")
    found = _shard_settings(shard_dirs)
    _check_same_settings(shard_dirs, found)
    _check_complete(shard_dirs, found)
    job = JOBS.load(found[0]["job"])
    merged_settings = {**found[0], "config": {**found[0]["config"], "shard": None, "out": str(out_dir)}}
    existing = read_settings(out_dir)
    if existing is not None and (existing["job"] != found[0]["job"]
                                 or differences(existing["identity"], found[0]["identity"], job.config_type)):  # fmt: skip
        raise PrunelensError(f"{out_dir} already holds a run with other settings; choose another folder")
    write_settings(out_dir, merged_settings)
    records_path = out_dir / RANKINGS_NAME
    merged = {record["id"]: record for record in read_finished(records_path)}
    for shard in shard_dirs:
        for record in read_finished(rankings_file(shard)):
            if record["id"] in merged:
                continue
            for source, target in zip(job.part_files(shard, record["id"]), job.part_files(out_dir, record["id"])):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, target)
            append_jsonl(records_path, record)
            merged[record["id"]] = record
    rankings = [Ranking.from_dict(record) for record in merged.values()]
    if rankings:
        job.finish(out_dir, rankings)
    return len(rankings)
