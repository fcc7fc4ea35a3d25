"""A pruning run over many examples: example selection, resume, bad-input handling, output files."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prunelens.datasets import Example
from prunelens.errors import PrunelensError
from prunelens.jsonl import append_jsonl, read_finished
from prunelens.pruning.chain import TokenizedChain
from prunelens.pruning.greedy import Approximation, GreedyResult, greedy_prune, planned_steps
from prunelens.pruning.objectives import Objective
from prunelens.pruning.scorers import make_scorer
from prunelens.pruning.store import consolidate, write_part
from prunelens.selection import Selection, parse_shard, select_examples, skip_recorder, tokenized_chains

RECORDS_NAME = "pruning.jsonl"
CONFIG_NAME = "run.json"
# settings that change results: a resumed run must match them
RESULT_KEYS = ("model", "objective", "keep", "steps", "dtype", "dataset", "split", "chains", "block", "screen",
               "rescore_every", "neighbors", "window")


@dataclass
class PruneConfig(Selection):
    """Everything a pruning run needs; the defaults are the main job of `prunelens prune`."""

    objective: str = "joint"
    keep: float = 0.5
    steps: int | None = None
    out: Path | None = None
    token_budget: int = 1024
    scorer: str = "fast"
    block: float = 1
    screen: int | None = None
    rescore_every: int = 5
    neighbors: int = 1
    window: int = 0

    def output_dir(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        source = Path(self.chains).stem if self.chains else f"{self.dataset}-{self.split}"
        model = re.sub(r"[^\w.-]+", "_", Path(self.model).name)
        shard = "-shard{}of{}".format(*parse_shard(self.shard)) if self.shard else ""
        return Path("runs") / f"prune-{source}-{model}-{self.objective}-k{self.keep:g}{shard}"

    def approximation(self) -> Approximation:
        return Approximation(self.block, self.screen, self.rescore_every, self.neighbors, self.window)

    def identity(self) -> dict:
        values = asdict(self)
        return {key: str(values[key]) if values[key] is not None else None for key in RESULT_KEYS}


@dataclass
class RunSummary:
    out_dir: Path
    records: list[dict]
    new_ids: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def check_run_config(out_dir: Path, config: PruneConfig) -> None:
    """Refuse to resume into a folder whose results came from different settings. A setting that a
    run's run.json predates counts as its default (the behaviour before the setting existed)."""
    path = out_dir / CONFIG_NAME
    identity = config.identity()
    if path.exists():
        previous = {**PruneConfig().identity(), **json.loads(path.read_text()).get("identity", {})}
        changed = [f"{k}={previous[k]!r}" for k in RESULT_KEYS if previous[k] != identity[k]]
        if changed:
            raise PrunelensError(
                f"{out_dir} holds a run with other settings ({', '.join(changed)}); choose another --out"
            )
    else:
        path.write_text(json.dumps({"identity": identity, "config": asdict(config)}, indent=2, default=str))


def make_record(chain: TokenizedChain, example: Example, result: GreedyResult, config: PruneConfig) -> dict:
    """The JSONL record of one pruned example."""
    return {
        "id": example.id,
        "question": example.question,
        "reasoning": chain.reasoning,
        "answer": example.answer,
        "answer_text": chain.answer_text,
        "dataset": example.dataset,
        "model": config.model,
        "objective": config.objective,
        "prompt_ids": chain.prompt_ids,
        "reasoning_ids": chain.reasoning_ids,
        "answer_ids": chain.answer_ids,
        "reasoning_tokens": chain.pieces,
        "offsets": [list(span) for span in chain.offsets],
        "deletion_order": result.deletion_order,
        "step_scores": result.step_scores,
        "base_score": result.base_score,
        "keep": config.keep,
        "steps": len(result.deletion_order),
        "exact": config.approximation().exact,
        "approximation": config.approximation().describe(),
        "scorer": config.scorer,
        "seconds": round(result.seconds, 3),
    }


def run_pruning(config: PruneConfig, progress: bool = True, log=print) -> RunSummary:
    """Greedy-prune every selected example, appending one record per finished example.

    Finished ids in the output folder are skipped, so an interrupted run resumes where it stopped.
    """
    from tqdm.auto import tqdm

    from prunelens.models import load_model

    objective = Objective.parse(config.objective)
    out_dir = config.output_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    check_run_config(out_dir, config)
    summary = RunSummary(out_dir, [])
    skip = skip_recorder(out_dir, log, summary.skipped)
    examples = select_examples(config, skip)
    records_path = out_dir / RECORDS_NAME
    done = {record["id"] for record in read_finished(records_path)}
    todo = [e for e in examples if e.id not in done]
    if todo:
        loaded = load_model(config.model, device=config.device, dtype=config.dtype)
        scorer = make_scorer(config.scorer, loaded.model, config.token_budget)
        for example, chain in tqdm(tokenized_chains(config, todo, loaded, skip), total=len(todo), desc="examples",
                                   disable=not progress):  # fmt: skip
            total = planned_steps(len(chain.reasoning_ids), config.keep, config.steps)
            with tqdm(total=total, desc=example.id, unit="step", leave=False, disable=not progress) as bar:
                result = greedy_prune(
                    scorer,
                    chain.prompt_ids,
                    chain.reasoning_ids,
                    chain.answer_ids,
                    objective,
                    config.keep,
                    config.steps,
                    on_step=bar.update,
                    approximation=config.approximation(),
                )
            write_part(out_dir, example.id, result.candidate_scores, chain.pieces, {"objective": objective.value})
            append_jsonl(records_path, make_record(chain, example, result, config))
            summary.new_ids.append(example.id)
    summary.records = read_finished(records_path)
    if summary.records:
        consolidate(out_dir, [r["id"] for r in summary.records], {"model": config.model, "objective": objective.value})
    return summary
