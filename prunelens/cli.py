"""`prunelens …`: one sub-command per job."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prunelens.errors import PrunelensError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

SHOWN_FRACTIONS = (1.0, 0.9, 0.7, 0.5)


@app.callback()
def _group():
    """prunelens: which tokens of a model's chain of thought matter to the model itself."""


def fail(message: str, code: int = 2):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def prune(
    model: str = typer.Option("smollm2-135m", help="alias, HF id, local dir or .gguf path"),
    dataset: str = typer.Option("gsm8k", help="gsm8k | math500 | mmlu_pro (also picks prompt and answer format)"),
    split: str = typer.Option("test", help="train | dev | test (| validation for mmlu_pro)"),
    limit: Optional[int] = typer.Option(3, help="prune only the first N selected examples"),
    ids: Optional[str] = typer.Option(None, help="comma-separated example ids"),
    chains: Optional[Path] = typer.Option(None, help="JSONL of {id, question, reasoning, answer} to prune"),
    objective: str = typer.Option("joint", help="joint: log p(r_S, a | q); answer: log p(a | q, r_S)"),
    keep: float = typer.Option(0.5, min=0.0, max=1.0, help="keep fraction to stop at"),
    steps: Optional[int] = typer.Option(None, min=0, help="stop after this many deletions"),
    out: Optional[Path] = typer.Option(None, help="output folder (default under runs/)"),
    device: str = typer.Option("cpu", help="cpu | cuda | auto"),
    dtype: str = typer.Option("float32", help="float32 | bfloat16 | float16 | float64"),
    token_budget: int = typer.Option(1024, min=1, help="max tokens per forward batch"),
    scorer: str = typer.Option("fast", help="fast (exact, prefix KV reuse) | naive (exact, full forwards) | vllm"),
    block: float = typer.Option(1, min=0.0, help="APPROXIMATE if not 1: deletions per round (k, or a fraction < 1)"),
    screen: Optional[int] = typer.Option(None, min=1, help="APPROXIMATE: score only the top-m candidates"),
    rescore_every: int = typer.Option(5, min=1, help="with --screen: full exact rescore every R rounds"),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="log bad records to skipped.jsonl and go on"),
    data_dir: Optional[Path] = typer.Option(None, help="folder with the benchmark JSONL files"),
    show: bool = typer.Option(True, help="print the pruned chains"),
):
    """Greedy-prune reasoning chains; resumes into an existing output folder."""
    from prunelens.pruning.keep import marked_text
    from prunelens.pruning.run import PruneConfig, run_pruning

    config = PruneConfig(
        model=model, dataset=dataset, split=split, limit=limit,
        ids=[i.strip() for i in ids.split(",") if i.strip()] if ids else None,
        chains=chains, objective=objective, keep=keep, steps=steps, out=out, device=device,
        dtype=dtype, token_budget=token_budget, scorer=scorer, block=block, screen=screen,
        rescore_every=rescore_every, skip_bad=skip_bad, data_dir=data_dir,
    )  # fmt: skip
    try:
        summary = run_pruning(config, log=lambda line: typer.echo(line, err=True))
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
