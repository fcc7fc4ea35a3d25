"""The one job loop behind `prune`, `features` and `rank`.

A job type supplies a config (a ``JobConfig``: the selection plus its own settings, result-affecting
ones marked in their field metadata) and three steps: ``start`` (build what it needs from the loaded
model), ``process`` (one example → one ranking, plus an optional per-example store part) and
``finish`` (consolidate the parts). The loop does the rest, the same way for every job:

1. validate the settings (``Job.validate``) and refuse a folder holding other result settings or one that
   cannot be written, before anything is written; ``run.json`` records the settings with the first result;
2. select the examples (dataset split or chains file, ids, limit, shard), skipping finished ids whose
   inputs are unchanged (``prunelens.core.provenance``: a changed one is refused, or redone on request);
3. per example: tokenise (bad records raise, or go to ``skipped.jsonl`` with ``--skip-bad``), process,
   write the store part, then append the ranking to ``rankings.jsonl`` (so a kill loses at most the
   example in flight and a rerun resumes); in this process, or with ``--executor ray`` on a pool of Ray
   actors (``prunelens.jobs.ray_executor``; this process still writes every file);
4. consolidate the stores over every finished example.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from prunelens.core.errors import BadRecordError, PrunelensError
from prunelens.core.jsonl import append_jsonl, read_finished, write_jsonl
from prunelens.core.progress import log_line, progress_bar
from prunelens.core.provenance import InputDigests, changed_records, describe_changes, refuse_changes
from prunelens.core.ranking import Ranking, rankings_file
from prunelens.core.settings import THREADS_HELP, setting
from prunelens.jobs.ray_executor import process_on_ray
from prunelens.jobs.run_folder import check_settings, check_writable, record_settings
from prunelens.jobs.workers import load_for, set_threads
from prunelens.models import resolve_device
from prunelens.selection import (
    SKIPPED_NAME,
    Selection,
    select_examples,
    skip_recorder,
    tokenized_chains,
)

EXECUTORS = ("local", "ray")


@dataclass
class JobConfig(Selection):
    """The selection plus where results go and how many CPU threads torch may use."""

    job: ClassVar[str] = ""  # the job type's name: first part of the default output folder

    out: Path | None = setting(None, "output folder (default: runs/<job>-<data>-<model>-<settings>)")
    threads: int | None = setting(None, THREADS_HELP, minimum=1)
    executor: str = setting("local", "local: this process | ray: a pool of Ray actors (needs the ray extra)")
    ray_address: str | None = setting(None, "with --executor ray: the cluster to join (default: start a local one)")
    workers: int | None = setting(None, "with --executor ray: actors (default: as many as the cluster's CPUs hold)",
                                  minimum=1)  # fmt: skip
    gpus_per_worker: float = setting(0.0, "with --executor ray: GPUs per actor", minimum=0.0)
    cpus_per_worker: float = setting(1.0, "with --executor ray: CPUs per actor (torch threads unless --threads)",
                                     minimum=0.0)  # fmt: skip
    redo_changed: bool = setting(False, "recompute finished examples whose inputs changed since (else such a "
                                 "rerun is refused)", flag="--redo-changed")  # fmt: skip

    def output_dir(self) -> Path:
        """``out``, else a folder under runs/ named by the job, data, model and result settings."""
        return Path(self.out) if self.out is not None else self.run_folder(self.job)


@dataclass
class Processed:
    """One example's outcome: its ranking and, for jobs with a store, a function writing its part."""

    ranking: Ranking
    write_part: Any = None  # callable(out_dir) or None


class Job:
    """A job type: subclasses set ``config_type`` (whose ``job`` names them) and implement the steps."""

    config_type: ClassVar[type[JobConfig]]
    needs_weights: ClassVar[bool] = True  # False: the tokenizer (and config) suffice
    attn_implementation: ClassVar[str] = "sdpa"

    def __init__(self, config: JobConfig):
        self.config = config
        self.progress = True  # per-example progress of its own (e.g. greedy steps); run_job sets it
        self.log = log_line  # where warnings and progress lines go; run_job sets it

    @property
    def name(self) -> str:
        return self.config_type.job

    def validate(self) -> None:
        """Check settings that can be checked without the model; raise PrunelensError."""

    def start(self, loaded) -> None:
        """Build scorers, backends or rankers from the loaded model (called once, only if work is left)."""

    def process(self, example, chain) -> Processed:
        raise NotImplementedError

    @classmethod
    def finish(cls, out_dir: Path, rankings: list[Ranking]) -> None:
        """Consolidate per-example parts into the run's store (default: nothing to consolidate)."""

    @classmethod
    def part_files(cls, out_dir: Path, example_id: str) -> list[Path]:
        """The per-example store files of one example (copied by merge)."""
        return []

    @classmethod
    def consolidated_files(cls, out_dir: Path) -> list[Path]:
        """The store files ``finish`` consolidates from the parts (none by default)."""
        return []


@dataclass
class RunSummary:
    out_dir: Path
    rankings: list[Ranking]
    new_ids: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def counts(self, noun: str) -> str:
        """'3 rankings (1 new)', plus how many were skipped this time, where their reasons are and how to retry."""
        line = f"{len(self.rankings)} {noun} ({len(self.new_ids)} new)"
        if self.skipped:
            line += (f"; {len(self.skipped)} skipped, reasons in {self.out_dir / SKIPPED_NAME} (fix them and rerun: "
                     "finished ones are kept)")  # fmt: skip
        return line


def process_locally(job: Job, todo: list, out_dir: Path, summary: RunSummary, skip, progress: bool, log,
                    sources: dict[str, dict]) -> None:  # fmt: skip
    """Step 3 in this process: load the model once, then per example process, write its part, append its ranking
    (stamped with the example's ``sources``); run.json is written with the first finished example."""
    config = job.config
    records_path = rankings_file(out_dir)
    set_threads(config.threads)
    loaded = load_for(job)
    job.start(loaded)
    chains = tokenized_chains(config, todo, loaded, skip)
    for example, chain in progress_bar(chains, total=len(todo), desc=job.name, enabled=progress, log=log):
        started = time.perf_counter()
        try:
            processed = job.process(example, chain)
        except BadRecordError as error:
            if not config.skip_bad:
                raise
            skip(error)
            continue
        if processed.ranking.seconds is None:  # rankings passed on from another run keep their own time
            processed.ranking.seconds = round(time.perf_counter() - started, 3)
        processed.ranking.sources = sources[example.id]
        record_settings(out_dir, job.name, config)
        if processed.write_part is not None:
            processed.write_part(out_dir)
        append_jsonl(records_path, processed.ranking.to_dict())
        summary.new_ids.append(example.id)


def run_job(job: Job, progress: bool = True, log=log_line) -> RunSummary:
    """Run ``job`` over its selection into its output folder, resuming where a previous run stopped.

    A finished example whose inputs changed since (its record's ``sources``) is refused, or with
    ``redo_changed`` recomputed; nothing is written before the settings pass and the model has loaded; a run
    in which every example to do failed raises."""
    config = job.config
    out_dir = config.output_dir()
    job.progress, job.log = progress, log
    job.validate()
    if config.executor not in EXECUTORS:
        raise PrunelensError(f"--executor {config.executor!r}: choose one of {', '.join(EXECUTORS)}")
    if config.executor == "local":  # Ray workers may have devices this process has not
        resolve_device(config.device)
    check_writable(out_dir)
    check_settings(out_dir, job.name, config)
    summary = RunSummary(out_dir, [])
    skip = skip_recorder(out_dir, log, summary.skipped)
    examples = select_examples(config, skip)
    inputs = InputDigests(config)
    sources = {e.id: inputs.sources(e.id, e.digest()) for e in examples}
    records_path = rankings_file(out_dir)
    finished = {record["id"]: record for record in read_finished(records_path)}
    changed = changed_records(finished.values(), sources)
    if changed:
        if not config.redo_changed:
            refuse_changes(out_dir, changed, "finished example(s) were computed from other inputs", "recompute them")
        write_jsonl(records_path, [r for i, r in finished.items() if i not in changed])
        for store in type(job).consolidated_files(out_dir):  # rebuilt by finish; a kill before it must not keep it
            store.unlink(missing_ok=True)
        log(f"recomputing {len(changed)} example(s) whose inputs changed ({describe_changes(changed)})")
    todo = [e for e in examples if e.id not in finished or e.id in changed]
    if todo:
        if config.executor == "ray":  # the same steps on a pool of Ray actors; this process stays the only writer
            process_on_ray(job, todo, out_dir, summary, skip, progress, log, sources)
        else:
            process_locally(job, todo, out_dir, summary, skip, progress, log, sources)
    if changed:  # redone examples go back to their place: the folder reads as a clean run's
        order = {e.id: index for index, e in enumerate(examples)}
        write_jsonl(records_path, sorted(read_finished(records_path), key=lambda r: order.get(r["id"], len(order))))
    summary.rankings = [Ranking.from_dict(r) for r in read_finished(records_path)]
    if summary.skipped and not {r.id for r in summary.rankings} & sources.keys():
        raise PrunelensError(f"no selected example finished: {len(summary.skipped)} skipped (reasons in "
                             f"{out_dir / SKIPPED_NAME}); fix those records and rerun")  # fmt: skip
    if summary.new_ids:
        type(job).finish(out_dir, summary.rankings)
    return summary
