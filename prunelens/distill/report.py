"""The distillation comparison as files a person opens: results.jsonl, a Markdown table and a Figure-2-style plot
(student accuracy against keep fraction, one line per pruning method, zero-shot and full chains as references)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prunelens.core.bootstrap import ALPHA, holm_bootstrap_tests
from prunelens.core.jsonl import read_finished, write_atomic, write_jsonl
from prunelens.plots import Curve, curves_figure
from prunelens.report import markdown_table

HEADER = ("student", "method", "keep ρ", "seed", "train chains", "train tokens (mean)", "accuracy", "95% CI (Wilson)",
          "answer log-lik (mean)", "generated reasoning tokens (mean)", "answer line reached")  # fmt: skip
REFERENCE = "greedy-joint"


def table(rows: list[dict]) -> str:
    """One row per evaluated student, in the order given."""

    def number(value, spec):
        return "–" if value is None else format(value, spec)

    return markdown_table(HEADER, [
        (r["student"], r["method"], number(r["keep"], "g"), number(r.get("seed"), "d"), r.get("train_chains") or "–",
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


def paired_comparisons(out_dir: Path, rows: list[dict], reference: str = REFERENCE, resamples: int = 10000,
                       seed: int = 0) -> list[dict]:  # fmt: skip
    """At each keep, ``reference`` against every other method on the same test questions: each question's accuracy
    averaged over the seeds both methods have (from ``eval/<student>/predictions.jsonl``), the mean difference
    reference − method, a paired bootstrap over questions (seeded), Holm-corrected across all comparisons, with
    the interval at each test's Holm level."""
    found, differences = [], []
    keeps = sorted({r["keep"] for r in rows if r["method"] == reference})
    for keep in keeps:
        mine = {r["method"]: {} for r in rows if r["keep"] == keep and r["method"] not in ("full", "zero-shot")}
        for r in rows:
            grades = _correct(Path(out_dir) / "eval" / r["student"]) if r["keep"] == keep else {}
            if grades and r["method"] in mine:  # a student without predictions leaves the comparison, not all of it
                mine[r["method"]][r.get("seed") or 0] = grades
        for method in (m for m in mine if m != reference):
            seeds = sorted(set(mine[reference]) & set(mine[method]))
            questions = sorted(set.intersection(*(set(mine[m][s]) for m in (reference, method) for s in seeds)))
            if not seeds or len(questions) < 2:
                continue
            accuracy = {m: np.array([[mine[m][s][q] for s in seeds] for q in questions]).mean(axis=1)
                        for m in (reference, method)}  # fmt: skip
            differences.append(accuracy[reference] - accuracy[method])
            found.append({"keep": keep, "method": method, "seeds": len(seeds), "questions": len(questions),
                          "reference": float(accuracy[reference].mean()), "other": float(accuracy[method].mean()),
                          "difference": float(differences[-1].mean())})  # fmt: skip
    rngs = [np.random.default_rng([seed, index]) for index in range(len(found))]
    for comparison, test in zip(found, holm_bootstrap_tests(differences, rngs, resamples)):
        comparison.update(p=test.p, p_holm=test.p_holm, level=test.level, low=test.low, high=test.high)
    return found


def _correct(folder: Path) -> dict[str, float]:
    """Each evaluated question's grade (1.0 correct) from a student's predictions."""
    path = folder / "predictions.jsonl"
    grades: dict[str, float] = {}
    for row in read_finished(path) if path.exists() else []:  # the first row of an id counts, as in Evaluation
        grades.setdefault(row["id"], float(bool(row["correct"])))
    return grades


def comparisons_table(comparisons: list[dict], reference: str = REFERENCE) -> str:
    """One row per paired comparison: keep, method, seeds, questions, both accuracies, the difference with its
    Holm-level interval, the Holm-adjusted p-value and what it shows."""

    def reading(c):
        if c["p_holm"] >= ALPHA:
            return "no difference shown"
        return f"{reference} higher" if c["difference"] > 0 else f"{c['method']} higher"

    return markdown_table(
        ["keep ρ", "method", "seeds", "questions", f"{reference} accuracy", "method accuracy",
         f"{reference} − method [Holm-level CI]", "p (Holm)", "reading"],
        [[f"{c['keep']:g}", c["method"], c["seeds"], c["questions"], f"{c['reference']:.3f}", f"{c['other']:.3f}",
          f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]", f"{c['p_holm']:.3g}", reading(c)]
         for c in comparisons])  # fmt: skip


def comparisons_text(out_dir: Path, rows: list[dict]) -> str:
    """The paired-comparison section of a report (empty without the reference method)."""
    comparisons = paired_comparisons(out_dir, rows)
    if not comparisons:
        return ""
    return (f"## Paired comparisons with {REFERENCE}\n\nPer test question, accuracy averaged over the seeds both "
            f"students have; the difference {REFERENCE} − method, paired bootstrap over questions, Holm-corrected "
            f"across all {len(comparisons)} comparisons (α = {ALPHA}). The seeds are fixed, not resampled: a "
            f"difference describes these students.\n\n{comparisons_table(comparisons)}\n")


def write_distill_report(out_dir: Path, rows: list[dict]) -> None:
    """results.jsonl, results.md and results.png in ``out_dir`` (rewritten as students finish)."""
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "results.jsonl", rows)
    text = f"# Distillation: students by pruning method and keep fraction\n\n{table(rows)}\n"
    comparisons = comparisons_text(out_dir, rows)
    write_atomic(out_dir / "results.md", text + ("\n" + comparisons if comparisons else ""))
    if any(r["keep"] is not None and r["method"] not in ("full",) for r in rows):
        figure(rows, out_dir / "results.png", title=f"Student accuracy at matched reasoning length ({out_dir.name})")
