"""`prunelens …`: one sub-command per job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prunelens.core.errors import PrunelensError, reason
from prunelens.core.progress import log_line

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
surrogate_app = typer.Typer(no_args_is_help=True, help="Train, evaluate and apply attention → pruning-score surrogates.")
app.add_typer(surrogate_app, name="surrogate")
distill_app = typer.Typer(no_args_is_help=True, help="Distillation (paper §4): teacher chains, fine-tuning, evaluation")
app.add_typer(distill_app, name="distill")

@app.callback()
def _group():
    """prunelens: which tokens of a model's chain of thought matter to the model itself."""


def fail(message: str, code: int = 2):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_reporting(run, config):
    """Run a job (any config with ``output_dir()``); a PrunelensError or Ctrl-C becomes one line (finished
    examples stay on disk)."""
    try:
        return run(config, log=log_line)
    except PrunelensError as error:
        fail(str(error))
    except OSError as error:  # the file system refused (permissions, a full disk, a file where a folder goes)
        fail(f"{error.filename}: {error.strerror or reason(error)}" if error.filename else reason(error))
    except KeyboardInterrupt:
        fail(f"interrupted; finished examples are kept in {config.output_dir()}; rerun to resume", 130)


def _prune(config, show: bool):
    from prunelens.pruning.run import run_pruning

    summary = run_reporting(run_pruning, config)
    if show:
        for ranking in summary.rankings:
            typer.echo(f"\n=== {ranking.id}  (answer {ranking.answer}, {ranking.seconds or 0:.1f} s)")
            for fraction in ranking.shown_keeps(config.keep):
                typer.echo(f"--- keep {fraction:g}\n{ranking.marked(fraction)}")
    typer.echo(f"\n{summary.counts('records')} in {summary.out_dir}")


def _features(config):
    from prunelens.probes.run import run_features
    from prunelens.probes.store import STORE_NAME

    summary = run_reporting(run_features, config)
    typer.echo(f"{summary.counts('examples')}; features in "
               f"{summary.out_dir / STORE_NAME}, H2O rankings in {summary.out_dir / 'rankings.jsonl'}")  # fmt: skip


def _rank(config):
    from prunelens.rankers.run import run_rank

    summary = run_reporting(run_rank, config)
    typer.echo(f"{summary.counts('rankings')} in {summary.out_dir / 'rankings.jsonl'}")


def _compress(config):
    from prunelens.compress import compress_rankings

    written = run_reporting(compress_rankings, config)
    for keep, chains in written.items():
        lengths = [c["student_tokens"] for c in chains]
        mean = sum(lengths) / len(lengths) if lengths else 0
        typer.echo(f"keep {keep:g}: {len(chains)} chains, mean {mean:.1f} student tokens")
    typer.echo(f"chains in {config.output_dir()}")


def _demo(config):
    from prunelens.demo import demo_report, run_demo

    typer.echo(demo_report(run_reporting(run_demo, config), config.keep))
    typer.echo(f"\nrankings in {config.out}/<method>/rankings.jsonl")


def _annotate(config):
    from prunelens.annotate.run import annotate_rankings

    annotations = run_reporting(annotate_rankings, config)
    failed = sum(a.status != "ok" for a in annotations.values())
    retry = " (rerun with --retry-failed to try them again)" if failed else ""
    line = f"{len(annotations) - failed} chains labelled, {failed} failed{retry}; labels in {config.output_path()}"
    if annotations and failed == len(annotations):  # nothing the command was asked for is done
        fail(line)
    typer.echo(line)


def _annotate_stability(config):
    from prunelens.annotate.run import annotation_stability

    stability = run_reporting(annotation_stability, config)
    typer.echo(f"{stability.summary()}\nreport in {stability.report}")


def _audit(config):
    from prunelens.annotate.audit import run_audit

    summary = run_reporting(run_audit, config)
    failed = sum(v["status"] != "ok" for v in summary.verdicts)
    retry = " (rerun with --retry-failed to try them again)" if failed else ""
    typer.echo(f"{summary.table}\n\n{len(summary.verdicts) - failed} verdicts, {failed} failed{retry}; report in "
               f"{summary.report}")  # fmt: skip


def _view(config):
    from prunelens.viewer.page import view_folders

    try:
        page = view_folders(config)
    except PrunelensError as error:
        fail(str(error))
    except OSError as error:
        fail(f"cannot write {config.out}: {error.strerror or error}")
    typer.echo(f"{page} ({page.stat().st_size / 1e6:.2f} MB): open it in a browser")


def _bench(config):
    from prunelens.bench.report import run_benchmark

    typer.echo(run_benchmark(config, log=log_line))


def _register_job_commands():
    from prunelens.annotate.audit import AuditConfig
    from prunelens.annotate.run import AnnotateConfig, StabilityConfig
    from prunelens.compress import CompressConfig
    from prunelens.demo import DemoConfig
    from prunelens.probes.run import FeaturesConfig
    from prunelens.bench.modes import BenchConfig
    from prunelens.pruning.run import PruneConfig
    from prunelens.rankers.run import RankConfig
    from prunelens.core.settings import cli_command
    from prunelens.viewer.page import ViewConfig

    show = (Annotated[bool, typer.Option(help="print the pruned chains")], True)
    commands = (
        ("prune", PruneConfig, _prune, {"show": show},
         "Greedy-prune reasoning chains; resumes into an existing output folder."),
        ("features", FeaturesConfig, _features, None,
         "Per-head attention features of reasoning tokens (and H2O rankings) into an xarray store."),
        ("rank", RankConfig, _rank, None,
         "Rank reasoning tokens with a registered method (--method) into rankings.jsonl."),
        ("demo", DemoConfig, _demo, None,
         "The main job in about a minute: exact greedy pruning of short GSM8K chains beside baselines."),
        ("compress", CompressConfig, _compress, None,
         "Cut rankings to keep fractions counted in student tokens: matched-length chains JSONL per keep."),
        ("annotate", AnnotateConfig, _annotate, None,
         "Label each reasoning token of a rankings folder with a functional category (offline rules or an LLM)."),
        ("annotate-stability", StabilityConfig, _annotate_stability, None,
         "Annotate the same chains twice without the response cache and report token-level agreement."),
        ("audit", AuditConfig, _audit, None,
         "Rate pruned chains at each keep fraction with an LLM judge (comprehensibility, SFT suitability)."),
        ("view", ViewConfig, _view, None,
         "One self-contained HTML page comparing rankings folders of the same chains at any keep fraction."),
        ("bench", BenchConfig, _bench, None,
         "Benchmark naive vs fast exact vs approximate greedy scoring against the rounding floor (a Markdown table)."),
    )  # fmt: skip
    for name, config_type, run, extra, help_text in commands:
        app.command(name, help=help_text)(cli_command(config_type, run, extra, fail))


_register_job_commands()


def _teach(config):
    from prunelens.distill.teach import CHAINS_NAME, run_teach

    summary = run_reporting(run_teach, config)
    typer.echo(f"{summary.kept} chains kept, {summary.rejected} questions rejected ({summary.new} new, "
               f"{summary.seconds:.1f} s); chains in {summary.out_dir / CHAINS_NAME}")  # fmt: skip


def _train(config):
    from prunelens.distill.sft import train_student

    summary = run_reporting(train_student, config)
    best = next(entry for entry in summary.dev if entry["step"] == summary.best_step)
    typer.echo(f"{summary.steps} steps on {summary.rows} rows ({summary.seconds:.0f} s); best dev step "
               f"{summary.best_step}: accuracy {best['accuracy']:.3f}; model in {config.output_dir() / 'model'}")  # fmt: skip


def _evaluate(config):
    from prunelens.distill.evaluate import run_evaluation

    result = run_reporting(run_evaluation, config)
    typer.echo(f"accuracy {result.accuracy:.3f} ({result.correct}/{result.n}, 95% CI {result.ci_low:.3f}–"
               f"{result.ci_high:.3f}); mean reasoning tokens {result.mean_reasoning_tokens:.1f}; mean answer "
               f"log-likelihood {result.mean_answer_logprob:.3f}; predictions in {config.output_dir()}")  # fmt: skip


def _register_distill_commands():
    from prunelens.distill.evaluate import EvalConfig
    from prunelens.distill.sft import TrainConfig
    from prunelens.distill.teach import TeachConfig
    from prunelens.core.settings import cli_command

    commands = (
        ("teach", TeachConfig, _teach, None,
         "Teacher chains: sample --samples chains per question, keep one correct one (or --teacher gold)."),
        ("train", TrainConfig, _train, None,
         "Fine-tune a student on a chains file with TRL's SFTTrainer (loss on the completion only)."),
        ("eval", EvalConfig, _evaluate, None,
         "Greedy-decode a model on a dataset split: accuracy with a Wilson CI, reasoning length, answer log-lik."),
    )  # fmt: skip
    for name, config_type, run, extra, help_text in commands:
        distill_app.command(name, help=help_text)(cli_command(config_type, run, extra, fail))


_register_distill_commands()


@distill_app.command("run")
def distill_run(
    config: Annotated[Path | None, typer.Argument(help="TOML or JSON file on top of the preset")] = None,
    preset: Annotated[str, typer.Option(help="cpu: this machine's scale | claims: three seeds, more chains and "
                                             "steps (hours here) | paper: the paper's GPU settings")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads for every stage")] = None,
    dry_run: Annotated[bool, typer.Option(help="print the resolved settings and stop")] = False,
):
    """The whole comparison: teach → prune/rank → compress → fine-tune → evaluate; every stage resumes."""
    import json
    from dataclasses import asdict

    from prunelens.distill.run import load_distill_config, run_distill

    try:
        resolved = load_distill_config(config, preset)
    except PrunelensError as error:
        fail(str(error))
    if threads is not None:
        resolved.threads = threads
    if dry_run:
        typer.echo(json.dumps(asdict(resolved), indent=2, default=str))
        return
    results = run_reporting(run_distill, resolved)
    typer.echo(f"{len(results)} students evaluated; table in {resolved.out / 'results.md'}")


@app.command()
def merge(
    out: Annotated[Path, typer.Argument(help="merged output folder")],
    shards: Annotated[list[Path], typer.Argument(help="the shard output folders")],
):
    """Merge the output folders of `--shard K/N` runs (prune, features or rank)."""
    from prunelens.jobs.merge import merge_runs

    try:
        count = merge_runs(out, shards)
    except PrunelensError as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail(f"interrupted; rerun the same merge to finish {out}", 130)
    typer.echo(f"{count} records in {out}")


Features = Annotated[Path, typer.Option(help="feature store (folder or features.nc)")]
Targets = Annotated[Path, typer.Option(help="pruning output folder with the targets (step-0 scores)")]


@surrogate_app.command("train")
def surrogate_train(
    features: Features,
    targets: Targets,
    out: Annotated[Path, typer.Option(help="where to save the surrogate")] = Path("surrogate.pt"),
    kind: Annotated[str, typer.Option(help="mlp | ridge")] = "mlp",
    loss: Annotated[str, typer.Option(help="pearson | mse")] = "pearson",
    target: Annotated[str, typer.Option(help="score (post-deletion likelihood at keep 1.0) | rank")] = "score",
    epochs: int = 150,
    seed: int = 0,
):
    """Fit a surrogate on a feature store joined with a pruning run."""
    from prunelens.probes.store import store_meta
    from prunelens.analysis.surrogate_data import load_examples_for_surrogate
    from prunelens.probes.surrogate import (
        SurrogateConfig,
        train_surrogate,
    )

    try:
        config = SurrogateConfig(kind=kind, loss=loss, target=target, epochs=epochs, seed=seed)
        data = load_examples_for_surrogate(features, targets, target, warn=log_line)
        surrogate = train_surrogate(data, config, meta=store_meta(features))
    except PrunelensError as error:
        fail(str(error))
    surrogate.save(out)
    typer.echo(f"trained on {len(data)} examples; saved {out}")


@surrogate_app.command("eval")
def surrogate_eval(
    surrogate: Annotated[Path, typer.Option(help="a saved surrogate")],
    features: Features,
    targets: Targets,
):
    """Mean within-example Pearson and Spearman of the surrogate's predictions, with 95% CIs."""
    import json

    from prunelens.analysis.surrogate_data import load_examples_for_surrogate
    from prunelens.probes.surrogate import (
        Surrogate,
        correlations,
    )

    try:
        model = Surrogate.load(surrogate)
        data = load_examples_for_surrogate(features, targets, model.config.target)
    except PrunelensError as error:
        fail(str(error))
    in_sample = sorted({e.id for e in data} & set(model.meta.get("train_ids", [])))
    if in_sample:
        log_line(f"warning: {len(in_sample)} of the {len(data)} evaluation examples were in the surrogate's training "
                 f"set (e.g. {in_sample[0]!r}): this evaluation is in-sample and overstates how well it generalises")
    summary = correlations(data, [model.predict(e.x) for e in data]).summary()
    typer.echo(json.dumps({**summary, "in_sample_examples": len(in_sample)}, indent=2))


@surrogate_app.command("predict")
def surrogate_predict(
    surrogate: Annotated[Path, typer.Option(help="a saved surrogate")],
    features: Features,
    out: Annotated[Path, typer.Option(help="JSONL of {id, predictions}")] = Path("predictions.jsonl"),
):
    """Predict per-token scores for every example of a feature store."""
    from prunelens.core.jsonl import append_jsonl
    from prunelens.analysis.surrogate_data import load_examples_for_surrogate
    from prunelens.probes.surrogate import Surrogate

    try:
        model = Surrogate.load(surrogate)
        data = load_examples_for_surrogate(features, None)
    except PrunelensError as error:
        fail(str(error))
    out.unlink(missing_ok=True)
    for example in data:
        append_jsonl(out, {"id": example.id, "predictions": [float(v) for v in model.predict(example.x)]})
    typer.echo(f"{len(data)} examples predicted into {out}")
