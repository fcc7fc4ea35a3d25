"""`prunelens distill teach`: teacher chains by rejection sampling (paper §4), or the dataset's gold chains.

For each question the teacher samples ``samples`` completions (``temperature``, ``top_p``; batched, each stopped
after its answer line). A sample is *correct* when the benchmark grades its answer right against the gold answer
and it has non-empty reasoning before the dataset's answer marker (``Benchmark.answer_marker``: ``####`` for
gsm8k and arith, ``The final answer is`` for math500, ``The answer is`` for mmlu_pro). One correct sample is
kept, chosen by ``random.Random(f"{seed}:{id}")`` (the same choice on every run and resume); a question with
none is dropped.

Output folder (default ``runs/teach-<dataset>-<split>-<teacher model | gold>-<settings>``):

- ``chains.jsonl``: {id, question, reasoning, answer, teacher, samples, correct_samples, finished_samples,
  generated_tokens (all samples' decoded tokens)} (+ options for multiple choice): the kept sample's
  reasoning before its marker, and the *gold* answer;
  ``prunelens prune --chains`` and ``prunelens rank --chains`` read it (with the same ``--dataset``);
- ``rejected.jsonl``: {id, samples, correct_samples: 0, finished_samples, generated_tokens, reason} per
  dropped question;
- ``run.json``: the result settings; a rerun resumes (ids in either file are done) and a folder made with
  other result settings is refused.

Rows are appended as each generate call finishes, so a kill loses at most one call's questions. With
``--teacher gold`` no model is loaded: each question's gold reasoning is its chain (``samples`` 0), and
questions without one go to rejected.jsonl. Which samples are drawn depends on ``batch_size`` (one seed per
generate call) and the generator, which are therefore not result settings: any of them is a valid draw.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunelens.datasets import Example, get_benchmark
from prunelens.datasets.base import Benchmark
from prunelens.core.errors import PrunelensError
from prunelens.core.jsonl import append_jsonl, read_finished
from prunelens.core.progress import log_line
from prunelens.core.provenance import refuse_changed_examples
from prunelens.core.registry import GENERATORS
from prunelens.selection import Selection, select_examples, skip_recorder
from prunelens.core.settings import THREADS_HELP, Variants, setting, settle_variant
from prunelens.jobs.run_folder import check_settings, record_settings
from prunelens.distill.generate import Sampling, prompt_texts, prompts_per_call
from prunelens.jobs.workers import set_threads

JOB = "teach"
CHAINS_NAME = "chains.jsonl"
REJECTED_NAME = "rejected.jsonl"


@dataclass
class SamplingOptions:
    """How a model teacher's chains are drawn (the gold teacher has no such settings)."""

    samples: int = setting(10, "chains sampled per question", result=True, name="n", minimum=1)
    temperature: float = setting(0.7, "sampling temperature (0: greedy)", result=True, name="t", minimum=0.0)
    top_p: float = setting(1.0, "nucleus sampling mass in (0, 1]", result=True, name="p", minimum=0.0, maximum=1.0)
    seed: int = setting(0, "sampling seed and seed of the choice among correct chains", result=True, name="seed")
    max_new_tokens: int = setting(256, "token cap per sampled chain", result=True, name="len", minimum=1)

    def __post_init__(self):
        if not 0 < self.top_p <= 1:
            raise PrunelensError(f"--top-p must lie in (0, 1], got {self.top_p}")


TEACHERS = Variants("--teacher", {"model": SamplingOptions, "gold": None})


@dataclass
class TeachConfig(Selection):
    """The selection (``model`` is the teacher), the teacher kind and, for a model teacher, how its chains are
    sampled (``sampling``)."""

    teacher: str = setting("model", "model: sample chains from --model, keep a correct one | gold: the dataset's "
                           "gold chains", result=True, prefix=True)  # fmt: skip
    sampling: SamplingOptions | None = setting(None, "a model teacher's sampling settings", cli=False,
                                               variant_of=("teacher", TEACHERS))  # fmt: skip
    batch_size: int = setting(8, "sequences (questions x samples) per generate call; a question's samples share one",
                              minimum=1)  # fmt: skip
    generator: str = setting("hf", GENERATORS.choices())
    generator_options: Any = setting(None, "the generator's own settings (its registered options dataclass, e.g. "
                                     "the server generator's)", cli=False, variant_of=("generator", GENERATORS))  # fmt: skip
    threads: int | None = setting(None, THREADS_HELP, minimum=1)
    out: Path | None = setting(None, "output folder (default: runs/teach-<data>-<teacher model | gold>-<settings>)")

    def __post_init__(self):
        settle_variant(self)

    def output_dir(self) -> Path:
        """``out``, else a folder under runs/ named by the data, the teacher and the result settings."""
        if self.out is not None:
            return Path(self.out)
        return self.run_folder(JOB, "gold" if self.teacher == "gold" else None)

    def validate(self) -> None:
        """Check the settings the CLI bounds cannot; a one-line PrunelensError."""
        GENERATORS.get(self.generator)


@dataclass
class TeachSummary:
    """Counts over the selection: questions with a kept chain, rejected ones, and those done in this run."""

    out_dir: Path
    kept: int
    rejected: int
    new: int
    seconds: float


def run_teach(config: TeachConfig, log=log_line) -> TeachSummary:
    """Write the selection's teacher chains into ``config.output_dir()``, resuming a previous run there."""
    started = time.perf_counter()
    config.validate()
    out_dir = config.output_dir()
    check_settings(out_dir, JOB, config)
    examples = select_examples(config, skip_recorder(out_dir, log))
    bench = get_benchmark(config.dataset)
    rows = [row for name in (CHAINS_NAME, REJECTED_NAME) for row in read_finished(out_dir / name)]
    refuse_changed_examples(rows, examples, out_dir)
    done = {row["id"] for row in rows}
    todo = [e for e in examples if e.id not in done]
    if todo and config.teacher == "gold":
        record_settings(out_dir, JOB, config)
        for example in todo:
            write_outcome(out_dir, example, *gold_outcome(example))
        log(f"teach: {len(todo)} gold chains read")
    elif todo:
        _sample(config, bench, todo, out_dir, log)
    wanted = {e.id for e in examples}
    count = lambda name: sum(row["id"] in wanted for row in read_finished(out_dir / name))  # noqa: E731
    return TeachSummary(out_dir, count(CHAINS_NAME), count(REJECTED_NAME), len(todo),
                        round(time.perf_counter() - started, 3))  # fmt: skip


def _sample(config: TeachConfig, bench: Benchmark, todo: list[Example], out_dir: Path, log) -> None:
    """Load the teacher, then per generate call sample, judge and write each question's outcome."""

    set_threads(config.threads)
    own = {} if config.generator_options is None else {"options": config.generator_options}
    generator = GENERATORS.load(config.generator).load(config.model, device=config.device, dtype=config.dtype,
                                                       batch_size=config.batch_size, **own)  # fmt: skip
    record_settings(out_dir, JOB, config)
    options = config.sampling
    sampling = Sampling(options.samples, options.temperature, options.top_p, options.max_new_tokens, options.seed)
    per_call, kept = prompts_per_call(config.batch_size, options.samples), 0
    for start in range(0, len(todo), per_call):
        batch = todo[start : start + per_call]
        generations = generator.generate(bench, prompt_texts(generator.tokenizer, bench, batch), sampling)
        for example, samples in zip(batch, generations):
            row, rejected = sampled_outcome(bench, example, samples, options.seed, config.model)
            write_outcome(out_dir, example, row, rejected)
            kept += not rejected
        log(f"teach [{start + len(batch)}/{len(todo)}] {kept} kept")


def sampled_outcome(bench: Benchmark, example: Example, samples, seed: int, teacher: str) -> tuple[dict, bool]:
    """(row, rejected) for one question's samples (``Generation`` objects): a random correct one, else a
    rejection."""
    correct = [s for s in samples  # a sample cut by the token cap may stop inside its answer ("#### 1" of "#### 12")
               if s.finished and bench.reasoning_of(s.text) and bench.is_correct(s.text, example.answer)]
    counts = {"samples": len(samples), "correct_samples": len(correct),
              "finished_samples": sum(s.finished for s in samples),
              "generated_tokens": sum(s.new_tokens for s in samples)}  # fmt: skip
    if not correct:
        return {**counts, "reason": f"no correct sample among {len(samples)}"}, True
    chosen = random.Random(f"{seed}:{example.id}").choice(correct)
    return {"reasoning": bench.reasoning_of(chosen.text), "teacher": teacher, **counts}, False


def gold_outcome(example: Example) -> tuple[dict, bool]:
    """(row, rejected) for the dataset's own chain of one question."""
    counts = {"samples": 0, "correct_samples": 0, "finished_samples": 0, "generated_tokens": 0}
    if not (example.reasoning or "").strip():
        return {**counts, "reason": "no gold reasoning in the dataset"}, True
    return {"reasoning": example.reasoning.strip(), "teacher": "gold", **counts}, False


def write_outcome(out_dir: Path, example: Example, row: dict, rejected: bool) -> None:
    """Append a kept chain (with the question and the gold answer) to chains.jsonl, or a rejection."""
    out_dir.mkdir(parents=True, exist_ok=True)
    row = {**row, "sources": {"example": example.digest()}}
    if rejected:
        append_jsonl(out_dir / REJECTED_NAME, {"id": example.id, **row})
        return
    options = {"options": list(example.options)} if example.options else {}
    append_jsonl(out_dir / CHAINS_NAME, {"id": example.id, "question": example.question, "reasoning": row["reasoning"],
                                         "answer": example.answer, **options, **row})  # fmt: skip
