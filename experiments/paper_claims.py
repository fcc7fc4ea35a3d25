"""The paper's quantitative claims that these machines can test, on two model families, with the known confounds
controlled; one generated report, results/paper_claims.md, computed only from the per-example data committed
under results/paper_claims/<model>/.

Two steps:

    python experiments/paper_claims.py export --runs-dir DIR [--prune]  # runs → results/paper_claims/<model>/
    python experiments/paper_claims.py                                  # results/paper_claims/ → the report

``export`` reads the finished chains of the ``scale-smollm2`` and ``scale-gemma3`` runs (exact greedy pruning
to keep 0.1, joint and answer objectives, created and resumed by ``analysis_runs.ensure_runs``, or by ``--prune``;
hours on a CPU; a run still going is read as far as it got), creates or resumes the cheap baseline rankings of the same chains (H2O, Surprisal, reversed
Surprisal, Uniform, Truncation), labels the chains with the offline annotator, and writes per model:
``rank_dynamics.nc`` (Hit@|S| per chain × transition × ranking, keep grid 0.1, as defined and with each
transition's first deletion left out), ``rank_dynamics_grid0.2.nc`` (the same on 0.2-wide transitions),
``retention.nc`` (per-chain category counts kept by each method on the 0.05 grid) and ``runs.json`` (chains and
compute seconds per run). The report step needs no model.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from prunelens.analysis.claims import ABOVE, BELOW, RULE, ClaimTest, claims_table, evaluate_claims
from prunelens.analysis.rank_dynamics import FROZEN, LOCAL, RANDOM_EXPECTED, RankDynamics
from prunelens.analysis.retention import MEASURES, RetentionCounts, area_table, area_tests, curves
from prunelens.annotate.labels import CATEGORIES
from prunelens.report import markdown_table, write_report

PRESETS = {"smollm2-135m": "scale-smollm2", "gemma3-270m": "scale-gemma3"}
BASELINES = ("h2o", "surprisal", "surprisal-reversed", "uniform", "truncation")
OBJECTIVES = ("joint", "answer")
DATA = Path("results/paper_claims")
COARSE = [1.0, 0.8, 0.6, 0.4, 0.2]
MIDDLE = (0.4, 0.7)  # transitions starting in this range are "intermediate keep fractions" (§5.2)
EARLY, LATE = (0.8, 0.9), (0.2, 0.3)  # the transitions starting here are the early and late ones (after 1.0)
MIN_CHAINS = 5  # retention tables test the categories of at least this many chains
UNTESTABLE = [
    ("§4.2", "Greedy-pruned chains give the best students at every keep fraction, above TokenSkip, H2O, Surprisal "
             "and Uniform (Figure 2, 7-8B teachers and students)",
     "Not at the required standard here: students of 7B scale, TokenSkip's real weights and teacher-generated chains "
     "are out of reach on a 2-core CPU; the CPU comparison (experiments/distill_compare.py, results/distill_compare.md) "
     "is a smaller setting and is not a test of this claim."),
    ("§4.2", "Students trained on Ans-objective chains score lower than on Joint (Figure 4)", "As above."),
    ("§5.1", "Functional labels by gpt-5-mini", "No LLM service is reachable; the labels here are the offline rule "
                                               "annotator's, an approximation."),
    ("§5.1", "A weaker pruner (Llama2-7B) shifts EntName, Grammar and VerbalMath (Figure 3c)",
     "7B pruners do not run here; the two families tested are both small (135M and 270M)."),
    ("§5.3", "An attention surrogate trained on 200 chains reaches Pearson 0.88 on 1,000 held-out chains "
             "(Llama3.1-8B)", "Not in this report: its per-example data is not committed yet "
                              "(experiments/surrogate_pearson.py, results/surrogate_pearson.md)."),
]


def export(args) -> None:
    """Per-example data of each model's finished chains, from its runs (with ``--prune``, created or resumed
    first)."""
    import torch
    from analysis_runs import PRESETS as RUN_PRESETS
    from analysis_runs import describe, ensure_runs, run_folder

    from prunelens.analysis.rank_dynamics import rank_dynamics
    from prunelens.annotate.run import AnnotateConfig, annotate_rankings
    from prunelens.core.ranking import load_rankings

    torch.set_num_threads(args.threads)
    for model in args.models:
        started = time.perf_counter()
        preset = PRESETS[model]
        overrides = dict(count=args.count, model=args.model, progress=not args.quiet)
        if args.prune:
            ensure_runs(preset, OBJECTIVES, (), args.threads, args.runs_dir, **overrides)
        folder = run_folder(preset, args.runs_dir, args.count, args.model)
        greedy = {o: folder / f"greedy-{o}" for o in OBJECTIVES}
        finished = {o: load_rankings(path) if (path / "rankings.jsonl").exists() else [] for o, path in greedy.items()}
        if not finished["joint"]:
            print(f"{model}: no finished greedy-joint chain in {folder}; skipped (--prune creates the runs)")
            continue
        baselines = ensure_runs(preset, (), BASELINES, args.threads, args.runs_dir, **overrides)
        out = args.data / model
        out.mkdir(parents=True, exist_ok=True)
        others = {name: baselines[name] for name in BASELINES}
        chosen = [r.id for r in finished["joint"]]  # one snapshot of a run that may still be going
        chosen_ids = set(chosen)
        rank_dynamics(greedy["joint"], others, ids=chosen).save(out / "rank_dynamics.nc")
        rank_dynamics(greedy["joint"], others, keeps=COARSE, ids=chosen).save(out / "rank_dynamics_grid0.2.nc")
        annotations = annotate_rankings(AnnotateConfig(rankings=baselines["truncation"]), progress=False)
        methods = {f"greedy ({o})": rankings for o, rankings in finished.items() if rankings}
        methods |= {name: load_rankings(path) for name, path in baselines.items()}
        methods = {name: [r for r in rankings if r.id in chosen_ids] for name, rankings in methods.items()}
        spec = args.model or RUN_PRESETS[preset].model
        RetentionCounts.from_rankings(methods, annotations, meta={"model": spec, "annotator": "offline"}).save(
            out / "retention.nc")  # fmt: skip
        analysed = [*((f"greedy-{o}", r) for o, r in finished.items()), *methods.items()]
        runs = {name: {"chains": sum(r.id in chosen_ids for r in rankings),
                       "seconds": sum(r.seconds or 0.0 for r in rankings if r.id in chosen_ids)}
                for name, rankings in analysed if not name.startswith("greedy (")}  # fmt: skip
        threads = json.loads((greedy["joint"] / "run.json").read_text())["config"]["threads"]
        summary = {"model": spec, "preset": preset, "target": args.count or RUN_PRESETS[preset].count,
                   "setup": describe(preset, args.count, args.model), "runs": runs, "threads": threads,
                   "annotator": "offline", "export_seconds": time.perf_counter() - started}  # fmt: skip
        (out / "runs.json").write_text(json.dumps(summary, indent=1) + "\n")
        print(f"{model}: {len(chosen)} chains exported to {out}")


def per_chain_gap(result: RankDynamics, first: str, second: str, without_first: bool, starts=None) -> np.ndarray:
    """Per chain: the mean over transitions (those starting in ``starts``, a closed range, else all after the
    first) of Hit@|S|(first) − Hit@|S|(second); NaN where no such transition has both."""
    hits = result.values(without_first)
    gap = hits[:, :, result.rankings.index(first)] - hits[:, :, result.rankings.index(second)]
    begin = np.array([high for high, _ in result.transitions])
    chosen = (begin >= starts[0] - 1e-9) & (begin <= starts[1] + 1e-9) if starts else np.arange(len(begin)) >= 1
    gap = gap[:, chosen]
    counted = np.isfinite(gap).sum(axis=1)
    return np.where(counted > 0, np.nansum(gap, axis=1) / np.maximum(counted, 1), np.nan)


def model_claims(model: str, dynamics: RankDynamics, coarse: RankDynamics, counts: RetentionCounts,
                 target: int) -> list[tuple[ClaimTest, np.ndarray]]:  # fmt: skip
    """The testable claims of §5.1 and §5.2 on one model, each with its per-chain values."""
    claims = []

    def claim(section, text, paper, measure, direction, values):
        claims.append((ClaimTest(section, text, paper, model, measure, direction, 0, target, float("nan")), values))

    for without_first, variant in ((False, "as defined"), (True, "first deletion left out")):
        claim("§5.2", "local rankings predict greedy's next deletions better than the frozen ρ=1.0 ranking",
              "Fig. 5: local above frozen", f"Hit@|S| local − frozen, mean over the transitions after the first, "
              f"grid 0.1, {variant}", ABOVE, per_chain_gap(dynamics, LOCAL, FROZEN, without_first))  # fmt: skip
        claim("§5.2", "the same on 0.2-wide transitions", "Fig. 5", f"as above, grid 0.2, {variant}", ABOVE,
              per_chain_gap(coarse, LOCAL, FROZEN, without_first))
        claim("§5.2", "local rankings beat random", "Fig. 5: local above random",
              f"Hit@|S| local − random (expected), mean over the transitions after the first, grid 0.1, {variant}",
              ABOVE, per_chain_gap(dynamics, LOCAL, RANDOM_EXPECTED, without_first))
        middle = per_chain_gap(dynamics, LOCAL, FROZEN, without_first, MIDDLE)
        for label, other in (("early", EARLY), ("late", LATE)):
            claim("§5.2", f"the local − frozen gap is wider at intermediate keep fractions than {label}",
                  "Fig. 5: gap widest mid-way", f"gap at transitions starting in ρ ∈ [{MIDDLE[0]}, {MIDDLE[1]}] minus "
                  f"gap at those starting at {other[1]} and {other[0]}, {variant}", ABOVE,
                  middle - per_chain_gap(dynamics, LOCAL, FROZEN, without_first, other))  # fmt: skip

    def area(method, category, measure="raw"):
        return counts.chain_areas(measure)[counts.methods.index(method), :, CATEGORIES.index(category)]

    joint = "greedy (joint)"
    for measure in MEASURES:
        label = f"{measure} area (joint)"
        claim("§5.1", "SymbMath is over-retained", "Fig. 3a: far above the diagonal", label, ABOVE,
              area(joint, "SymbMath", measure))
        claim("§5.1", "CoRef is under-retained until late", "Fig. 3a: below the diagonal", label, BELOW,
              area(joint, "CoRef", measure))
        claim("§5.1", "VerbalMath falls below the diagonal", "Fig. 3a", label, BELOW, area(joint, "VerbalMath", measure))
        for category in ("Grammar", "MetaDisc", "EntName"):
            claim("§5.1", f"{category} lies closer to the uniform diagonal than SymbMath", "Fig. 3a",
                  f"|{measure} area| of {category} − |{measure} area| of SymbMath, chains with both (joint)", BELOW,
                  np.abs(area(joint, category, measure)) - np.abs(area(joint, "SymbMath", measure)))  # fmt: skip
    claim("§5.1", "VerbalMath is retained less than SymbMath", "Fig. 3a", "raw area VerbalMath − SymbMath, "
          "chains with both (joint)", BELOW, area(joint, "VerbalMath") - area(joint, "SymbMath"))  # fmt: skip
    if "greedy (answer)" in counts.methods:
        answer = "greedy (answer)"
        claim("§5.1", "under the Ans objective SymbMath stays over-retained", "Fig. 3b", "raw area (answer)", ABOVE,
              area(answer, "SymbMath"))
        claim("§5.1", "under the Ans objective CoRef is still pruned early", "Fig. 3b", "raw area (answer)", BELOW,
              area(answer, "CoRef"))
        for category in ("SymbMath", "CoRef"):
            claim("§5.1", f"Ans moves {category} closer to uniform than Joint", "Fig. 3a vs 3b",
                  f"|raw area| joint − |raw area| answer, {category}, same chains", ABOVE,
                  np.abs(area(joint, category)) - np.abs(area(answer, category)))  # fmt: skip
    return claims


def model_section(model: str, summary: dict, dynamics: RankDynamics, coarse: RankDynamics,
                  counts: RetentionCounts) -> list[str]:  # fmt: skip
    """The detailed tables of one model."""
    chains = len(dynamics.ids)
    mean, low, high, both = dynamics.paired_difference(LOCAL, FROZEN)
    mean_w, low_w, high_w, both_w = dynamics.paired_difference(LOCAL, FROZEN, without_first=True)
    rows = [[f"{a:g} → {b:g}", f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}] (n={n})" if np.isfinite(m) else "–",
             f"{mw:+.3f} [{lw:+.3f}, {hw:+.3f}] (n={nw})" if np.isfinite(mw) else "–"]
            for (a, b), m, lo, hi, n, mw, lw, hw, nw in zip(dynamics.transitions, mean, low, high, both,
                                                            mean_w, low_w, high_w, both_w)]  # fmt: skip
    retention = curves(counts)
    lines = [
        f"## {model}",
        "",
        f"Chains: {summary['setup']}; {chains} of the target {summary['target']} finished so far. Labels: the "
        f"{counts.meta.get('annotator', '?')} annotator. Bootstrap intervals resample chains.",
        "",
        f"### Rank dynamics (§5.2, Figure 5), objective joint, {chains} chains",
        "",
        "Hit@|S| as the paper defines it (mean, 95% CI):",
        "",
        dynamics.table(),
        "",
        "With each transition's first deletion left out of S and of every ranking (local's built-in 1/|S| floor "
        "removed; transitions that remove one token drop out):",
        "",
        dynamics.table(without_first=True),
        "",
        "Paired local − frozen per transition (mean over chains with both, paired bootstrap 95% CI):",
        "",
        markdown_table(["ρ → ρ′", "as defined", "first deletion left out"], rows),
        "",
        "On 0.2-wide transitions, as defined:",
        "",
        coarse.table(),
        "",
        f"Figure: paper_claims_{model}_rank_dynamics.png.",
        "",
        f"### Category retention (§5.1, Figure 3), {len(counts.ids)} chains",
        "",
        f"Token counts per category (the unpruned chains): {', '.join(f'{c} {round(retention.distribution[c] * retention.tokens)}' for c in CATEGORIES)}"
        f" of {retention.tokens} tokens; most frequent: {counts.dominant()}. Figure: "
        f"paper_claims_{model}_retention.png (one panel per method, 95% bands over chains).",
        "",
    ]  # fmt: skip
    for measure, definition in MEASURES.items():
        lines += [f"{measure.capitalize()} area ({definition}); mean over chains with the category, interval at each "
                  f"test's Holm level across the categories of one method (categories in at least {MIN_CHAINS} "
                  "chains), * where Holm rejects 0:", "", area_table(area_tests(counts, measure, MIN_CHAINS)),
                  ""]  # fmt: skip
    return lines


def report(args) -> None:
    """results/paper_claims.md and its figures from the committed per-example data."""
    started = time.perf_counter()
    every, sections, compute, threads = [], [], [], {}
    for model in args.models:
        folder = args.data / model
        if not (folder / "runs.json").exists():
            sections += [f"## {model}", "", f"No exported data in {folder}.", ""]
            continue
        summary = json.loads((folder / "runs.json").read_text())
        dynamics = RankDynamics.load(folder / "rank_dynamics.nc")
        coarse = RankDynamics.load(folder / "rank_dynamics_grid0.2.nc")
        counts = RetentionCounts.load(folder / "retention.nc")
        every += evaluate_claims(model_claims(model, dynamics, coarse, counts, summary["target"]), seed=args.seed)
        sections += model_section(model, summary, dynamics, coarse, counts)
        dynamics.figure(args.out_dir / f"paper_claims_{model}_rank_dynamics.png",
                        title=f"Rank dynamics of greedy pruning, {model}")  # fmt: skip
        curves(counts).figure(args.out_dir / f"paper_claims_{model}_retention.png",
                              title=f"Category retention, {model} ({len(counts.ids)} chains, offline labels)")  # fmt: skip
        for name, run in summary["runs"].items():
            compute.append([model, name, run["chains"], f"{run['seconds'] / 60:.1f}"])
        threads[model] = summary.get("threads", "?")
    lines = [
        "# The paper's claims, tested on two small model families",
        "",
        "Generated by `python experiments/paper_claims.py` from the per-example data in "
        f"`{args.data}/<model>/` (written by its `export` step): every number is computed from that data; the "
        "prose around the tables (the rule, the controls, the untestable claims) is the script's own text.",
        "",
        f"**Verdict rule.** {RULE}",
        "",
        "**Controls.** Hit@|S| is reported as defined and with each transition's first deletion left out (the local "
        "ranking's first choice *is* greedy's first deletion, a floor of 1/|S|), on the 0.1 grid and on 0.2-wide "
        "transitions. Retention is reported as the raw area against uniform deletion and as a relative area against "
        "the tokens outside the most frequent category (token-weighted deviations from uniform deletion sum to zero "
        "in every chain, so an over-retained big category pushes every other below the diagonal). Surprisal is shown "
        "beside reversed Surprisal (most surprising first).",
        "",
        "## Claims",
        "",
        claims_table(every) if every else "No model has exported data yet.",
        "",
        *sections,
        "## Not testable on these machines",
        "",
        markdown_table(["§", "claim", "why"], UNTESTABLE),
        "",
        "## Compute",
        "",
        "Seconds summed over the analysed chains from each ranking's own record (torch threads per run as "
        "recorded in its run.json: " + ", ".join(f"{m} {t}" for m, t in threads.items()) + "):",
        "",
        markdown_table(["model", "run", "chains", "minutes"], compute),
        "",
        f"This report: {time.perf_counter() - started:.0f} s from the committed data.",
    ]  # fmt: skip
    write_report(args.out_dir / "paper_claims.md", "\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", nargs="?", choices=("report", "export"), default="report")
    parser.add_argument("--models", nargs="*", choices=sorted(PRESETS), default=list(PRESETS))
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/analyses"), help="export: the runs' parent folder")
    parser.add_argument("--data", type=Path, default=DATA, help="the per-example data folder")
    parser.add_argument("--out-dir", type=Path, default=Path("results"))
    parser.add_argument("--threads", type=int, default=1, help="export: torch CPU threads")
    parser.add_argument("--prune", action="store_true", help="export: create or resume the greedy runs first (hours)")
    parser.add_argument("--count", type=int, default=None, help="export: chains (default: the preset's; smoke runs)")
    parser.add_argument("--model", default=None, help="export: pruner in place of the preset's (smoke runs)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap")
    parser.add_argument("--quiet", action="store_true", help="export: no progress bars")
    args = parser.parse_args(argv)
    export(args) if args.step == "export" else report(args)


if __name__ == "__main__":
    main()
