"""The distillation comparison as files a person opens: results.jsonl, a Markdown table and a Figure-2-style plot
(student accuracy against keep fraction, one line per pruning method, zero-shot and full chains as references)."""

from __future__ import annotations

from pathlib import Path

from prunelens.core.jsonl import write_atomic, write_jsonl
from prunelens.plots import Curve, curves_figure
from prunelens.report import markdown_table

HEADER = ("student", "method", "keep ρ", "train chains", "train tokens (mean)", "accuracy", "95% CI (Wilson)",
          "answer log-lik (mean)", "generated reasoning tokens (mean)", "answer line reached")  # fmt: skip


def table(rows: list[dict]) -> str:
    """One row per evaluated student, in the order given."""

    def number(value, spec):
        return "–" if value is None else format(value, spec)

    return markdown_table(HEADER, [
        (r["student"], r["method"], number(r["keep"], "g"), r.get("train_chains") or "–",
         number(r.get("mean_train_tokens"), ".1f"), f"{r['accuracy']:.3f} ({r['correct']}/{r['n']})",
         f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]", f"{r['mean_answer_logprob']:.3f}",
         f"{r['mean_reasoning_tokens']:.1f}", f"{r['finished']:.2f}")
        for r in rows])  # fmt: skip


def figure(rows: list[dict], path: Path, title: str) -> Path:
    """Accuracy (with Wilson bands) and answer log-likelihood against ρ per method; references as flat lines."""
    panels: dict[str, list[Curve]] = {"accuracy": [], "answer log-likelihood": []}
    methods = [r["method"] for r in rows if r["keep"] is not None and r["method"] != "full"]
    keeps = sorted({r["keep"] for r in rows if r["keep"] is not None}) or [0.0, 1.0]
    for method in dict.fromkeys(methods):
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["keep"])
        x = [r["keep"] for r in mine]
        panels["accuracy"].append(Curve(method, x, [r["accuracy"] for r in mine], [r["ci_low"] for r in mine],
                                        [r["ci_high"] for r in mine]))  # fmt: skip
        panels["answer log-likelihood"].append(Curve(method, x, [r["mean_answer_logprob"] for r in mine]))
    for reference in (r for r in rows if r["method"] in ("zero-shot", "full")):
        span = [min(keeps), max(keeps)]
        panels["accuracy"].append(Curve(reference["student"], span, [reference["accuracy"]] * 2, style="--"))
        panels["answer log-likelihood"].append(Curve(reference["student"], span,
                                                     [reference["mean_answer_logprob"]] * 2, style="--"))  # fmt: skip
    return curves_figure(panels, path, title=title, xlabel="keep fraction ρ (student tokens)", ylabel="value",
                         sharey=False)  # fmt: skip


def write_distill_report(out_dir: Path, rows: list[dict]) -> None:
    """results.jsonl, results.md and results.png in ``out_dir`` (rewritten as students finish)."""
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "results.jsonl", rows)
    write_atomic(out_dir / "results.md", f"# Distillation: students by pruning method and keep fraction\n\n{table(rows)}\n")
    if any(r["keep"] is not None and r["method"] not in ("full",) for r in rows):
        figure(rows, out_dir / "results.png", title=f"Student accuracy at matched reasoning length ({out_dir.name})")
