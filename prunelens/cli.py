"""`prunelens …`: one sub-command per job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from prunelens.errors import PrunelensError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
surrogate_app = typer.Typer(no_args_is_help=True, help="Train, evaluate and apply attention → pruning-score surrogates.")
app.add_typer(surrogate_app, name="surrogate")

SHOWN_FRACTIONS = (1.0, 0.9, 0.7, 0.5)

# options shared by the commands that select examples and load a model
Model = Annotated[str, typer.Option(help="alias, HF id, local dir or .gguf path")]
Dataset = Annotated[str, typer.Option(help="gsm8k | math500 | mmlu_pro (also picks prompt and answer format)")]
Split = Annotated[str, typer.Option(help="train | dev | test (| validation for mmlu_pro)")]
Limit = Annotated[Optional[int], typer.Option(help="only the first N selected examples")]
Ids = Annotated[Optional[str], typer.Option(help="comma-separated example ids")]
Chains = Annotated[Optional[Path], typer.Option(help="JSONL of {id, question, reasoning, answer} instead of a dataset")]
Device = Annotated[str, typer.Option(help="cpu | cuda | auto")]
Dtype = Annotated[str, typer.Option(help="float32 | bfloat16 | float16 | float64")]
SkipBad = Annotated[bool, typer.Option("--skip-bad", help="log bad records to skipped.jsonl and go on")]
DataDir = Annotated[Optional[Path], typer.Option(help="folder with the benchmark JSONL files")]
Shard = Annotated[Optional[str], typer.Option(help="K/N: only every N-th selected example, from K")]


@app.callback()
def _group():
    """prunelens: which tokens of a model's chain of thought matter to the model itself."""


def fail(message: str, code: int = 2):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def split_ids(ids: str | None) -> list[str] | None:
    return [i.strip() for i in ids.split(",") if i.strip()] if ids else None


def log_line(line: str) -> None:
    typer.echo(line, err=True)


@app.command()
def prune(
    model: Model = "smollm2-135m",
    dataset: Dataset = "gsm8k",
    split: Split = "test",
    limit: Limit = 3,
    ids: Ids = None,
    chains: Chains = None,
    objective: Annotated[str, typer.Option(help="joint: log p(r_S, a | q); answer: log p(a | q, r_S)")] = "joint",
    keep: Annotated[float, typer.Option(min=0.0, max=1.0, help="keep fraction to stop at")] = 0.5,
    steps: Annotated[Optional[int], typer.Option(min=0, help="stop after this many deletions")] = None,
    out: Annotated[Optional[Path], typer.Option(help="output folder (default under runs/)")] = None,
    device: Device = "cpu",
    dtype: Dtype = "float32",
    token_budget: Annotated[int, typer.Option(min=1, help="max tokens per forward batch")] = 1024,
    scorer: Annotated[str, typer.Option(help="fast (exact, prefix KV reuse) | naive (exact) | vllm")] = "fast",
    block: Annotated[float, typer.Option(min=0.0, help="APPROXIMATE unless 1: deletions per round (k, or fraction < 1)")] = 1,
    screen: Annotated[Optional[int], typer.Option(min=1, help="APPROXIMATE: lazily score the m likeliest candidates")] = None,
    rescore_every: Annotated[int, typer.Option(min=0, help="with --screen: score all every R rounds (0: first only)")] = 5,
    neighbors: Annotated[int, typer.Option(min=0, help="with --screen: also score w survivors each side of a deletion")] = 1,
    window: Annotated[int, typer.Option(min=0, help="with --screen: pick the m by a local w-token cost estimate")] = 0,
    skip_bad: SkipBad = False,
    data_dir: DataDir = None,
    shard: Shard = None,
    show: Annotated[bool, typer.Option(help="print the pruned chains")] = True,
):
    """Greedy-prune reasoning chains; resumes into an existing output folder."""
    from prunelens.pruning.keep import marked_text
    from prunelens.pruning.run import PruneConfig, run_pruning

    config = PruneConfig(
        model=model, dataset=dataset, split=split, limit=limit, ids=split_ids(ids), chains=chains,
        objective=objective, keep=keep, steps=steps, out=out, device=device, dtype=dtype,
        token_budget=token_budget, scorer=scorer, block=block, screen=screen, rescore_every=rescore_every,
        neighbors=neighbors, window=window,
        skip_bad=skip_bad, data_dir=data_dir, shard=shard,
    )  # fmt: skip
    try:
        summary = run_pruning(config, log=log_line)
    except PrunelensError as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail(f"interrupted; finished examples are kept in {config.output_dir()}; rerun to resume", 130)
    if show:
        for record in summary.records:
            typer.echo(f"\n=== {record['id']}  (answer {record['answer']}, {record['seconds']:.1f} s)")
            for fraction in SHOWN_FRACTIONS:
                try:
                    typer.echo(f"--- keep {fraction:.1f}\n{marked_text(record, fraction)}")
                except ValueError:  # the run stopped before this fraction
                    break
    typer.echo(f"\n{len(summary.records)} records ({len(summary.new_ids)} new) in {summary.out_dir}")


@app.command()
def merge(
    out: Annotated[Path, typer.Argument(help="merged output folder")],
    shards: Annotated[list[Path], typer.Argument(help="the shard output folders")],
):
    """Merge the output folders of `prune --shard K/N` runs."""
    from prunelens.pruning.merge import merge_runs

    try:
        count = merge_runs(out, shards)
    except PrunelensError as error:
        fail(str(error))
    typer.echo(f"{count} records in {out}")


@app.command()
def bench(
    n: Annotated[int, typer.Option(help="GSM8K test chains")] = 3,
    keep: float = 0.5,
    token_budget: int = 1024,
    synthetic_tokens: Annotated[int, typer.Option(help="length of the synthetic long chain (0 skips it)")] = 500,
    out: Annotated[Path, typer.Option(help="Markdown report")] = Path("results/bench_pruning.md"),
):
    """Benchmark naive vs fast exact vs approximate scoring (same as experiments/bench_pruning.py)."""
    from prunelens.pruning.benchmark import BenchConfig, run_benchmark

    config = BenchConfig(n=n, keep=keep, token_budget=token_budget, synthetic_tokens=synthetic_tokens, out=str(out))
    typer.echo(run_benchmark(config, log=log_line))


@app.command()
def features(
    model: Model = "smollm2-135m",
    dataset: Dataset = "gsm8k",
    split: Split = "test",
    limit: Limit = 3,
    ids: Ids = None,
    chains: Chains = None,
    out: Annotated[Path, typer.Option(help="output folder: features.nc, h2o.jsonl")] = Path("runs/features"),
    backend: Annotated[str, typer.Option(help="hf | transformer_lens | nnsight")] = "hf",
    float16: Annotated[bool, typer.Option("--float16", help="store features as float16")] = False,
    device: Device = "cpu",
    dtype: Dtype = "float32",
    skip_bad: SkipBad = False,
    data_dir: DataDir = None,
    shard: Shard = None,
):
    """Per-head attention features of reasoning tokens (and H2O rankings) into an xarray store."""
    from prunelens.probes.run import FeaturesConfig, run_features

    config = FeaturesConfig(
        model=model, dataset=dataset, split=split, limit=limit, ids=split_ids(ids), chains=chains, out=out,
        backend=backend, float16=float16, device=device, dtype=dtype, skip_bad=skip_bad, data_dir=data_dir,
        shard=shard,
    )  # fmt: skip
    try:
        store, records = run_features(config, log=log_line)
    except PrunelensError as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail(f"interrupted; finished examples are kept in {out}; rerun to resume", 130)
    typer.echo(f"{len(records)} examples; features in {store}, H2O rankings in {out / 'h2o.jsonl'}")


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
    from prunelens.probes.surrogate import SurrogateConfig, load_examples_for_surrogate, train_surrogate

    try:
        config = SurrogateConfig(kind=kind, loss=loss, target=target, epochs=epochs, seed=seed)
        data = load_examples_for_surrogate(features, targets, target)
        surrogate = train_surrogate(data, config, meta=_store_meta(features))
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

    from prunelens.probes.surrogate import Surrogate, correlations, load_examples_for_surrogate

    model = Surrogate.load(surrogate)
    try:
        data = load_examples_for_surrogate(features, targets, model.config.target)
    except PrunelensError as error:
        fail(str(error))
    typer.echo(json.dumps(correlations(data, [model.predict(e.x) for e in data]).summary(), indent=2))


@surrogate_app.command("predict")
def surrogate_predict(
    surrogate: Annotated[Path, typer.Option(help="a saved surrogate")],
    features: Features,
    out: Annotated[Path, typer.Option(help="JSONL of {id, predictions}")] = Path("predictions.jsonl"),
):
    """Predict per-token scores for every example of a feature store."""
    from prunelens.jsonl import append_jsonl
    from prunelens.probes.surrogate import Surrogate, load_examples_for_surrogate

    model = Surrogate.load(surrogate)
    out.unlink(missing_ok=True)
    data = load_examples_for_surrogate(features, None)
    for example in data:
        append_jsonl(out, {"id": example.id, "predictions": [float(v) for v in model.predict(example.x)]})
    typer.echo(f"{len(data)} examples predicted into {out}")


def _store_meta(features: Path) -> dict:
    from prunelens.probes.store import open_features

    with open_features(features) as store:
        return {k: store.attrs.get(k) for k in ("model", "backend", "feature_definition")}
