"""Evaluate a (student) model on a benchmark split: greedy decoding with the answer-line stop rule, grading,
accuracy with a Wilson 95% interval, mean reasoning tokens (paper Table 4), and the teacher-forced answer
log-likelihood.

``answer_logprob`` of a question is log p(gold answer segment | prompt, the model's own reasoning) under the
model itself, one forward pass after decoding (the answer objective of pruning; ``prunelens.pruning.scorer``).
The reasoning is the completion before its answer marker (the whole completion when it has none). At this
scale it separates students far more finely than accuracy, whose standard error is about 2.6 points at 200
questions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from scipy.stats import binomtest

from prunelens.datasets import get_benchmark
from prunelens.datasets.base import Benchmark, Example
from prunelens.distill.generate import HFGenerator, Sampling, prompt_texts
from prunelens.core.jsonl import append_jsonl, read_finished, write_atomic
from prunelens.core.provenance import refuse_changed_examples
from prunelens.core.progress import log_line
from prunelens.selection import Selection, select_examples, skip_recorder
from prunelens.core.settings import THREADS_HELP, setting
from prunelens.pruning.scorer import HFScorer
from prunelens.datasets.tokenize import prompt_and_answer_ids
from prunelens.core.objectives import Objective
from prunelens.jobs.run_folder import check_settings, record_settings
from prunelens.jobs.workers import set_threads
from prunelens.models import load_model

PREDICTIONS_NAME = "predictions.jsonl"


@dataclass(frozen=True)
class Evaluation:
    """Aggregates over ``n`` questions; per-question rows are in ``predictions.jsonl`` beside them."""

    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    mean_reasoning_tokens: float
    mean_answer_logprob: float
    finished: float  # share of completions that reached a complete answer line

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_rows(cls, rows: list[dict]) -> Evaluation:
        n = len(rows)
        correct = sum(bool(r["correct"]) for r in rows)
        low, high = 0.0, 1.0  # the Wilson 95% interval of the accuracy; no questions say nothing
        if n:
            interval = binomtest(correct, n).proportion_ci(confidence_level=0.95, method="wilson")
            low, high = float(interval.low), float(interval.high)
        mean = lambda key: sum(r[key] for r in rows) / n if n else float("nan")  # noqa: E731
        return cls(n, correct, correct / n if n else float("nan"), low, high, mean("reasoning_tokens"),
                   mean("answer_logprob"), mean("finished"))  # fmt: skip


def evaluate(loaded, bench: Benchmark, examples: list[Example], out_dir: Path, *, batch_size: int = 16,
             max_new_tokens: int = 256, log=log_line) -> Evaluation:  # fmt: skip
    """Decode greedily, grade and score every example, appending one row per question to
    ``out_dir/predictions.jsonl`` (a rerun resumes after the last finished batch); the aggregates over all."""
    path = Path(out_dir) / PREDICTIONS_NAME
    refuse_changed_examples(read_finished(path), examples, path)
    done = {row["id"] for row in read_finished(path)}
    todo = [e for e in examples if e.id not in done]
    generator, scorer = HFGenerator(loaded, batch_size=batch_size), HFScorer(loaded.model, token_budget=4096)
    sampling = Sampling(max_new_tokens=max_new_tokens)
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        completions = generator.generate(bench, prompt_texts(loaded.tokenizer, bench, batch), sampling)
        for example, (generation,) in zip(batch, completions):
            append_jsonl(path, {**_row(loaded.tokenizer, scorer, bench, example, generation),
                                "sources": {"example": example.digest()}})  # fmt: skip
        log(f"evaluated {len(done) + start + len(batch)}/{len(examples)} questions")
    first = {}
    for row in read_finished(path):  # the first row of an id counts (two runs into one folder may repeat one)
        first.setdefault(row["id"], row)
    return Evaluation.from_rows([first[e.id] for e in examples if e.id in first])


def _row(tokenizer, scorer, bench: Benchmark, example: Example, generation) -> dict:
    """One question's prediction row: the completion, its grade, reasoning and generated lengths (tokens) and
    answer log-likelihood."""

    reasoning = bench.reasoning_of(generation.text)
    reasoning = generation.text.strip() if reasoning is None else reasoning
    reasoning_ids = tokenizer(reasoning, add_special_tokens=False)["input_ids"]
    prompt_ids, answer_ids = prompt_and_answer_ids(tokenizer, bench, example)
    logprob = float(scorer.score(prompt_ids, [reasoning_ids], answer_ids, Objective.ANSWER)[0])
    return {"id": example.id, "completion": generation.text, "gold": example.answer,
            "correct": bench.is_correct(generation.text, example.answer), "finished": generation.finished,
            "reasoning_tokens": len(reasoning_ids), "generated_tokens": generation.new_tokens, "answer_logprob": logprob}  # fmt: skip


EVALUATION_NAME = "evaluation.json"


@dataclass
class EvalConfig(Selection):
    """`prunelens distill eval`: a model (a trained student's folder, an alias or a hub id) on a dataset split."""

    split: str = setting("test", "train | dev | test", result=True, prefix=True)
    limit: int | None = setting(200, "only the first N selected questions", result=True, minimum=0)
    batch_size: int = setting(16, "questions per generate call", minimum=1)
    max_new_tokens: int = setting(256, "generation cap per question", result=True, minimum=1)
    threads: int | None = setting(None, THREADS_HELP, minimum=1)
    out: Path | None = setting(None, "output folder (default: runs/eval-<data>-<model>-<settings>)")

    def output_dir(self) -> Path:
        return Path(self.out) if self.out is not None else self.run_folder("eval")


def run_evaluation(config: EvalConfig, log=log_line) -> Evaluation:
    """Evaluate ``config.model`` on the selection; writes predictions.jsonl (resumable) and, once every question is
    done, evaluation.json. A folder whose evaluation.json exists is returned without loading the model."""

    out_dir = config.output_dir()
    check_settings(out_dir, "eval", config)
    finished = out_dir / EVALUATION_NAME
    examples = select_examples(config, skip_recorder(out_dir, log))
    refuse_changed_examples(read_finished(out_dir / PREDICTIONS_NAME), examples, out_dir)
    if finished.exists():
        return Evaluation(**json.loads(finished.read_text()))
    set_threads(config.threads)
    loaded = load_model(config.model, device=config.device, dtype=config.dtype)
    record_settings(out_dir, "eval", config)
    evaluation = evaluate(loaded, get_benchmark(config.dataset), examples, out_dir, batch_size=config.batch_size,
                          max_new_tokens=config.max_new_tokens, log=log)  # fmt: skip
    write_atomic(finished, json.dumps(evaluation.to_dict(), indent=2))
    return evaluation
