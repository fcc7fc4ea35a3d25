"""`prunelens distill run CONFIG`: teacher → pruner / rankers → matched-length compression → SFT → evaluation.

One config file (TOML or JSON) on top of a preset (``PRESETS``) sets everything. Its top-level keys are the
fields of ``DistillConfig``; its tables ``[teach]``, ``[prune]``, ``[rank]``, ``[train]`` and ``[eval]`` hold
fields of the config each stage runs (``TeachConfig``, ``PruneConfig``, ``RankConfig``, ``TrainConfig``,
``EvalConfig``). The pipeline fills in what connects the stages (chains files, folders, dataset, keep).

Stages, each in its own folder under ``out`` and each resuming on its own, so a killed run picks up per stage,
per record and per student:

- ``teach/``: the teacher's chains (``chains.jsonl``), on ``teach.split`` of the dataset;
- ``rankings/<method>/``: a ``prune`` folder for ``greedy-joint`` / ``greedy-answer`` (pruned down to the lowest
  keep), a ``rank`` folder for any other registered ranker;
- ``compress/<method>/keep<ρ>.jsonl``: each ranking cut to ρ counted in the student's tokens;
- ``students/<method>-keep<ρ>/`` (and ``students/full/``, trained on the unpruned chains): the fine-tuned model
  and ``train.json``; with several learning rates, one folder per rate (``…-lr<η>``) and the best by dev accuracy
  is evaluated;
- ``eval/<student>/`` (and ``eval/zero-shot/``): predictions and ``evaluation.json``;
- ``results.jsonl``, ``results.md``, ``results.png`` and ``stages.jsonl`` (each stage's wall time).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from prunelens.core.errors import PrunelensError
from prunelens.core.jsonl import append_jsonl, read_finished, write_jsonl
from prunelens.core.progress import log_line
from prunelens.core.settings import (
    THREADS_HELP,
    build_config,
    check_variant_settings,
    setting,
    setting_names,
    settings_for,
)
from prunelens.core.registry import BENCHMARKS, RANKERS
from prunelens.distill.evaluate import EvalConfig, EVALUATION_NAME, run_evaluation
from prunelens.distill.sft import TrainConfig, train_student
from prunelens.distill.teach import TeachConfig, run_teach
from prunelens.pruning.run import PruneConfig, run_pruning
from prunelens.rankers.run import RankConfig, run_rank
from prunelens.compress import CompressConfig, chains_path, compress_rankings, load_student_tokenizer
from prunelens.jobs.workers import set_threads
from prunelens.distill.report import write_distill_report

GREEDY_METHODS = {"greedy-joint": "joint", "greedy-answer": "answer"}
STAGE_TABLES = ("teach", "prune", "rank", "train", "eval")


@dataclass
class DistillConfig:
    """The whole comparison: which methods, at which keep fractions, with which students."""

    out: Path = setting(Path("runs/distill"), "the run's folder")
    dataset: str = setting("arith", "benchmark: prompts, grading, the teacher's questions and the test split")
    methods: list[str] = setting(default_factory=lambda: list(GREEDY_METHODS) + ["h2o", "surprisal", "uniform",
                                 "truncation"], help="greedy-joint, greedy-answer or any registered ranker")  # fmt: skip
    keeps: list[float] = setting(default_factory=lambda: [0.5, 0.7], help="keep fractions in student tokens")
    seeds: list[int] = setting(default_factory=lambda: [0], help="training seeds: one student per seed for every "
                               "method and keep (and full); seed 0's students keep the plain names")  # fmt: skip
    full: bool = setting(True, "also train a student on the unpruned chains")
    zero_shot: bool = setting(True, "also evaluate the untrained student")
    threads: int | None = setting(None, f"every stage's {THREADS_HELP}")
    teach: dict = setting(default_factory=dict, help="TeachConfig fields")
    prune: dict = setting(default_factory=dict, help="PruneConfig fields for the greedy methods")
    rank: dict = setting(default_factory=dict, help="RankConfig fields for the other rankers")
    train: dict = setting(default_factory=dict, help="TrainConfig fields; learning_rate may be a list (a sweep)")
    eval: dict = setting(default_factory=dict, help="EvalConfig fields (test split)")

    def output_dir(self) -> Path:
        return Path(self.out)


PRESETS: dict[str, dict[str, Any]] = {
    # This machine (2 CPU cores): the procedural task, gold chains as the teacher, smollm2-135m as pruner and
    # student. Greedy uses window screening (16 tokens, 4 exact candidates per round): exact greedy on 64 chains
    # would take hours here (agreement with exact in results/bench_pruning.md).
    "cpu": {
        "out": "runs/distill-cpu",
        "dataset": "arith",
        "methods": ["truncation", "uniform", "surprisal", "h2o", "greedy-joint", "greedy-answer"],  # cheapest first
        "teach": {"teacher": "gold", "split": "train", "limit": 64},
        "prune": {"model": "smollm2-135m", "screen": 4, "window": 16, "rescore_every": 0,
                  "answer": {"window": 0, "neighbors": 3}},  # window screening needs the joint objective: lazy
        "rank": {"model": "smollm2-135m"},
        "train": {"student": "smollm2-135m", "steps": 24, "batch_size": 8, "learning_rate": 1e-4, "max_length": 192,
                  "eval_every": 0, "dev_limit": 20, "dev_max_new_tokens": 160, "dev_batch_size": 20,
                  "gradient_checkpointing": False},
        "eval": {"split": "test", "limit": 200, "batch_size": 50, "max_new_tokens": 160},
    },
    # The paper-claims comparison on this machine (every method's students at three seeds, paired tests): more
    # gold chains and more training steps than "cpu" so that the full-chain student leaves the accuracy floor
    # (measured: 39.0%, Wilson 95% CI 32.5–45.9%, on the 200 test questions, seed 0; 60 min of training and 6 min of
    # evaluation on one busy thread), greedy screened in bfloat16 with float32 rescoring of the best three
    # (identical to exact greedy on the benchmark chains, results/bench_pruning.md), three training seeds.
    "claims": {
        "out": "runs/distill-claims",
        "dataset": "arith",
        "methods": ["truncation", "uniform", "surprisal", "h2o", "greedy-joint", "greedy-answer"],
        "seeds": [0, 1, 2],
        "teach": {"teacher": "gold", "split": "train", "limit": 256},
        "prune": {"model": "smollm2-135m", "screen_dtype": "bfloat16", "verify": 3},
        "rank": {"model": "smollm2-135m"},
        "train": {"student": "smollm2-135m", "steps": 96, "batch_size": 8, "learning_rate": 2e-4, "max_length": 192,
                  "eval_every": 0, "dev_limit": 20, "dev_max_new_tokens": 160, "dev_batch_size": 20,
                  "gradient_checkpointing": False},
        "eval": {"split": "test", "limit": 200, "batch_size": 50, "max_new_tokens": 160},
    },
    # The paper's settings (§4, App. B.2, B.4) for GPU users: Qwen2.5-7B teacher and pruner on GSM8K with
    # rejection sampling (10 samples, T = 0.7), exact greedy, Llama-2-7B student with effective batch 28 for
    # 1,200 steps, cosine schedule, a learning-rate sweep, best checkpoint by dev accuracy. TokenSkip needs the
    # LLMLingua-2 classifier's weights.
    "paper": {
        "out": "runs/distill-paper",
        "dataset": "gsm8k",
        "methods": ["greedy-joint", "greedy-answer", "tokenskip", "h2o", "surprisal", "uniform"],
        "keeps": [0.5, 0.6, 0.7, 0.8, 0.9],
        "teach": {"teacher": "model", "model": "Qwen/Qwen2.5-7B-Instruct", "split": "train", "limit": None,
                  "samples": 10, "temperature": 0.7, "top_p": 1.0, "device": "cuda", "dtype": "bfloat16",
                  "generator": "vllm"},
        "prune": {"model": "Qwen/Qwen2.5-7B-Instruct", "device": "cuda", "dtype": "bfloat16", "token_budget": 16384},
        "rank": {"model": "Qwen/Qwen2.5-7B-Instruct", "device": "cuda", "dtype": "bfloat16"},
        # Full fine-tuning of a 7B student in float32 with Adam needs about 112 GB before activations (the paper
        # used several GPUs through Axolotl); this preset trains LoRA adapters with bf16 mixed precision so that
        # one 80 GB GPU holds it. Set lora = false on a machine that holds full fine-tuning.
        "train": {"student": "meta-llama/Llama-2-7b-chat-hf", "steps": 1200, "batch_size": 4, "grad_accum": 7,
                  "learning_rate": [1e-5, 2e-5, 5e-5], "max_length": 1024, "eval_every": 200, "dev_limit": 500,
                  "device": "cuda", "gradient_checkpointing": True, "lora": True, "bf16": True},
        "eval": {"split": "test", "limit": None, "batch_size": 64, "max_new_tokens": 512, "device": "cuda",
                 "dtype": "bfloat16"},
    },
}


def load_distill_config(path: Path | None = None, preset: str = "cpu") -> DistillConfig:
    """The preset with the config file's keys on top (tables merge key by key); one-line errors for an unknown
    preset, an unreadable file or an unknown key."""
    if preset not in PRESETS:
        raise PrunelensError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    values = copy.deepcopy(PRESETS[preset])
    for key, value in _read_config_file(path).items() if path is not None else ():
        if key in STAGE_TABLES and isinstance(value, dict):
            values.setdefault(key, {}).update(value)
        else:
            values[key] = value
    known = {f.name for f in fields(DistillConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise PrunelensError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    config = DistillConfig(**{k: Path(v) if k == "out" else v for k, v in values.items()})
    for name in STAGE_TABLES:
        _check_table(name, getattr(config, name), path)
    _check_run(config, path)
    return config


def _check_run(config: DistillConfig, path: Path | None) -> None:
    """Refuse, before anything runs, settings that would fail or mislead hours later: unknown methods, keep fractions
    outside (0, 1], learning rates that are not numbers, and training questions that are test questions."""
    where = path or "preset"
    BENCHMARKS.get(config.dataset)
    for method in config.methods:
        if method not in GREEDY_METHODS and method not in RANKERS.names():
            raise PrunelensError(f"{where}: unknown method {method!r} (known: {', '.join(GREEDY_METHODS)}, "
                                 f"{', '.join(n for n in RANKERS.names() if n != 'greedy')})")  # fmt: skip
    if not config.keeps or not all(isinstance(k, (int, float)) and 0 < k <= 1 for k in config.keeps):
        raise PrunelensError(f"{where}: keeps must be numbers in (0, 1], got {config.keeps!r}")
    seeds = config.seeds
    if not seeds or not all(isinstance(x, int) and x >= 0 for x in seeds) or len(set(seeds)) != len(seeds):
        raise PrunelensError(f"{where}: seeds must be distinct non-negative integers, got {seeds!r}")
    if "seed" in config.train:
        raise PrunelensError(f"{where}: set the training seeds with the top-level seeds = [...], not [train] seed")
    if not all(isinstance(r, (int, float)) and r > 0 for r in learning_rates(config) if r is not None):
        raise PrunelensError(f"{where}: [train] learning_rate must be a positive number or a list of them")
    if "greedy-answer" in config.methods and {**config.prune, **config.prune.get("answer", {})}.get("window"):
        raise PrunelensError(f"{where}: greedy-answer cannot use window screening (it estimates joint costs); "
                             "set [prune.answer] window = 0")  # fmt: skip
    teach_split, eval_split = config.teach.get("split", "test"), config.eval.get("split", "test")
    if teach_split == eval_split and not config.teach.get("chains"):
        raise PrunelensError(f"{where}: the teacher's questions ([teach] split = {teach_split!r}) are the test "
                             "questions ([eval] split): students would be tested on their training data")  # fmt: skip


def _read_config_file(path: Path) -> dict:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise PrunelensError(f"cannot read config {path}: {error.strerror or error}") from None
    try:
        if Path(path).suffix == ".json":
            return json.loads(text)
        import tomllib

        return tomllib.loads(text)
    except ValueError as error:
        raise PrunelensError(f"config {path} is not valid {'JSON' if Path(path).suffix == '.json' else 'TOML'}: "
                             f"{error}") from None  # fmt: skip


def stage_types() -> dict[str, type]:
    """The config dataclass each stage table fills."""

    return {"teach": TeachConfig, "prune": PruneConfig, "rank": RankConfig, "train": TrainConfig, "eval": EvalConfig}


def _check_table(name: str, table: dict, path: Path | None) -> None:
    known = setting_names(stage_types()[name])
    keys = set(table)
    if name == "prune":  # [prune.answer]: greedy-answer's overrides of [prune]
        keys = (keys - {"answer"}) | set(table.get("answer", {}))
    unknown = sorted(keys - known)
    if unknown:
        raise PrunelensError(f"{path or 'preset'}: [{name}] has unknown key(s) {', '.join(unknown)}")
    if name != "rank":  # [rank] serves every ranker: each takes its own settings from it (Pipeline.build)
        try:
            check_variant_settings(stage_types()[name], table)
        except PrunelensError as error:
            raise PrunelensError(f"{path or 'preset'}: [{name}] {error}") from None


@dataclass
class StudentResult:
    """One evaluated student: how its chains were made and how it did."""

    student: str
    method: str
    keep: float | None
    evaluation: dict
    train_chains: int = 0
    mean_train_tokens: float | None = None
    seed: int | None = None

    def to_dict(self) -> dict:
        return {"student": self.student, "method": self.method, "keep": self.keep, "seed": self.seed,
                "train_chains": self.train_chains, "mean_train_tokens": self.mean_train_tokens,
                **self.evaluation}  # fmt: skip


@dataclass
class Pipeline:
    """Runs the stages of one DistillConfig in order, recording each stage's wall time."""

    config: DistillConfig
    log: Any = log_line
    results: list[StudentResult] = field(default_factory=list)

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    def stage(self, name: str, done: bool | None, action):
        """Run ``action`` (every stage resumes by itself, so a finished one returns its saved result at once) and
        append {stage, seconds, complete_before} to stages.jsonl (complete_before None: records resume one by
        one, so the stage itself does not know)."""
        self.log(f"[{name}] " + {True: "complete: reading its results", False: "running",
                                 None: "running (finished records are skipped)"}[done])  # fmt: skip
        started = time.perf_counter()
        value = action()
        append_jsonl(self.out / "stages.jsonl", {"stage": name, "seconds": round(time.perf_counter() - started, 1),
                                                 "complete_before": done})  # fmt: skip
        return value

    def build(self, name: str, **values):
        """The stage's config: the table's fields, then the values the pipeline connects."""
        config_type = stage_types()[name]
        table = {**getattr(self.config, name), **values}
        if name == "prune":
            table.pop("answer", None)  # [prune.answer] holds greedy-answer's overrides, applied by rankings()
        if name == "rank":  # one table for every ranker: each takes the settings that are its own
            table = settings_for(config_type, table, table.get("method"))
        names = {f.name for f in fields(config_type)}
        if "threads" in names and table.get("threads") is None:
            table["threads"] = self.config.threads
        if "dataset" in names:
            table.setdefault("dataset", self.config.dataset)
        return build_config(config_type, table)

    # stages -----------------------------------------------------------------------------------------------------

    def teach(self) -> Path:
        config = self.build("teach", out=self.out / "teach")
        chains = config.output_dir() / "chains.jsonl"
        self.stage("teach", None, lambda: run_teach(config, log=self.log))
        if not chains.exists():
            raise PrunelensError(f"the teacher kept no chains ({config.output_dir()}); nothing to distill")
        return chains

    def rankings(self, method: str, chains: Path) -> Path:
        out = self.out / "rankings" / method
        if method in GREEDY_METHODS:
            overrides = self.config.prune.get("answer", {}) if method == "greedy-answer" else {}
            config = self.build("prune", chains=chains, limit=None, out=out, objective=GREEDY_METHODS[method],
                                keep=self.greedy_keep(), **overrides)  # fmt: skip
            self.stage(f"rank {method}", None, lambda: run_pruning(config, progress=False, log=self.log))
        else:
            config = self.build("rank", chains=chains, limit=None, out=out, method=method)
            self.stage(f"rank {method}", None, lambda: run_rank(config, progress=False, log=self.log))
        return out

    def compress(self, method: str, rankings: Path) -> Path:
        out = self.out / "compress" / method
        config = CompressConfig(rankings=rankings, keep=list(self.config.keeps), student_tokenizer=self.student,
                                out=out, skip_bad=True)  # fmt: skip
        self.stage(f"compress {method}", None, lambda: compress_rankings(config, log=self.log))
        self.carry_options(out)
        return out

    def carry_options(self, folder: Path) -> None:
        """Copy multiple-choice options from the teacher's chains into compressed chains (rankings hold no options,
        and a student must see the choices its answer letter refers to)."""
        options = {row["id"]: row["options"] for row in read_finished(self.out / "teach" / "chains.jsonl")
                   if row.get("options")}  # fmt: skip
        if not options:
            return
        for keep in self.config.keeps:
            rows = read_finished(chains_path(folder, keep))
            if any("options" not in row and row["id"] in options for row in rows):
                write_jsonl(chains_path(folder, keep), [{**row, "options": options.get(row["id"])} for row in rows])

    def greedy_keep(self) -> float:
        """How deep greedy prunes: the lowest keep, or 0.1 lower when the pruner's tokenizer is not the student's
        (greedy's keep counts pruner tokens, and a student may need more deletions to reach the same fraction)."""
        lowest = min(self.config.keeps)
        pruner = load_student_tokenizer(self.build("prune").model)
        student = load_student_tokenizer(self.student)
        same = pruner.get_vocab() == student.get_vocab() and type(pruner) is type(student)
        return lowest if same else max(0.0, lowest - 0.1)

    @property
    def student(self) -> str:
        return self.config.train.get("student", TrainConfig.student)

    def train_and_evaluate(self, name: str, method: str, keep: float | None, chains: Path,
                           seed: int = 0) -> StudentResult:  # fmt: skip
        """Fine-tune one student per learning rate on ``chains`` with ``seed``, evaluate the best by dev accuracy."""
        rates = learning_rates(self.config)
        name = name if seed == 0 else f"{name}-seed{seed}"
        trained = []
        for rate in rates:
            folder = name if len(rates) == 1 else f"{name}-lr{rate:g}"
            values = {"chains": chains, "out": self.out / "students" / folder, "seed": seed}
            if rate is not None:
                values["learning_rate"] = rate
            config = self.build("train", **values)
            done = (config.out / "train.json").exists()
            summary = self.stage(f"train {folder}", done, lambda: train_student(config, log=self.log))
            trained.append((summary, config))
        summary, config = max(trained, key=lambda pair: _dev_accuracy(pair[0]))
        evaluation = self.evaluate(name, config.out / "model")
        rows = read_finished(chains)
        lengths = [row["student_tokens"] for row in rows if "student_tokens" in row]
        return StudentResult(name, method, keep, evaluation, len(rows),
                             sum(lengths) / len(lengths) if lengths else None, seed)  # fmt: skip

    def evaluate(self, name: str, model) -> dict:
        config = self.build("eval", model=str(model), out=self.out / "eval" / name)
        done = (config.output_dir() / EVALUATION_NAME).exists()
        return self.stage(f"eval {name}", done, lambda: run_evaluation(config, log=self.log)).to_dict()

    def run(self) -> list[StudentResult]:
        """Every stage in order; returns (and writes) one result per evaluated student."""

        set_threads(self.config.threads)
        self.out.mkdir(parents=True, exist_ok=True)
        if self.config.zero_shot:
            self.results.append(StudentResult("zero-shot", "zero-shot", None, self.evaluate("zero-shot", self.student)))
            self.write_results()
        chains = self.teach()
        compressed: dict[str, Path] = {}
        for seed in self.config.seeds:  # every student of the first seed before any of the next
            if self.config.full:
                self.results.append(self.train_and_evaluate("full", "full", 1.0, chains, seed))
                self.write_results()
            for keep in sorted(self.config.keeps):  # the lowest keep of every method first, so results come early
                for method in self.config.methods:  # each method's rankings are made once, when first needed
                    if method not in compressed:
                        compressed[method] = self.compress(method, self.rankings(method, chains))
                    chains_at_keep = chains_path(compressed[method], keep)
                    self.results.append(self.train_and_evaluate(f"{method}-keep{keep:g}", method, keep, chains_at_keep,
                                                                seed))  # fmt: skip
                    self.write_results()
        return self.results

    def write_results(self) -> None:
        write_distill_report(self.out, [r.to_dict() for r in self.results])


def learning_rates(config: DistillConfig) -> list[float | None]:
    """The ``[train] learning_rate`` values, one student each (None: TrainConfig's default)."""
    rates = config.train.get("learning_rate")
    return rates if isinstance(rates, list) else [rates]


def _dev_accuracy(summary) -> tuple[float, float]:
    """A training's best checkpoint by (dev accuracy, dev answer log-likelihood): how a sweep picks its student."""
    best = next(entry for entry in summary.dev if entry["step"] == summary.best_step)
    return best["accuracy"], best["mean_answer_logprob"]


def run_distill(config: DistillConfig, log=log_line) -> list[StudentResult]:
    """Run (or resume) the whole pipeline of ``config``."""
    return Pipeline(config, log).run()
