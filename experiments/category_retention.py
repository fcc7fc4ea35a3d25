"""Paper §5.1 (Figures 3 and 8) at this machine's scale: which functional categories of reasoning tokens does
greedy pruning keep longer, or remove earlier, than uniform deletion would?

Exact greedy pruning to keep 0.1 with both objectives (joint, answer) and the baseline rankers on the same
GSM8K gold chains (the shared runs of ``analysis_runs.ensure_runs``); the chains are labelled once (in the
greedy-joint run folder) by the offline rule annotator, an approximation of the paper's LLM labels, or with
``--annotator llm`` by an LLM through the openai client. Writes results/category_retention.md (the signed
area between each retention curve and uniform deletion, per method and category, and the category
distribution of the unpruned chains), results/category_retention.png (one panel per method) and
results/category_distribution.png.

    python experiments/category_retention.py                     # 16 chains, smollm2-135m (CPU, 2 cores)
    python experiments/category_retention.py --count 2 --runs-dir /tmp/cr --out-dir /tmp/cr   # a smoke run
    python experiments/category_retention.py --annotator llm --llm-model gpt-5-mini --base-url URL
    python experiments/category_retention.py --preset paper      # 1,000 GSM8K test chains, Qwen2.5-7B (a GPU)
"""

import argparse
import time

import torch
from analysis_runs import add_run_options, describe, ensure_runs

from prunelens.analysis.retention import DEFINITION, category_retention
from prunelens.annotate.run import AnnotateConfig, annotate_rankings, token_agreement
from prunelens.core.ranking import load_rankings
from prunelens.core.registry import ANNOTATORS
from prunelens.core.settings import build_config
from prunelens.report import write_report

OBJECTIVES = ("joint", "answer")
PAPER = {"SymbMath": "over-retained", "CoRef": "under-retained"}  # §5.1's finding for greedy pruning
MIN_CHAINS = 5  # fewer chains with a category: its bootstrap interval says little, no verdict


def findings(result) -> list[str]:
    """Each greedy objective's SymbMath and CoRef areas beside §5.1's finding: over- or under-retained when
    the 95% interval excludes 0, judged only over at least ``MIN_CHAINS`` chains."""
    lines = []
    for objective in OBJECTIVES:
        curves = result.methods[f"greedy ({objective})"].curves
        for category, paper in PAPER.items():
            curve = curves.get(category)
            if curve is None:
                lines.append(f"- greedy ({objective}), {category}: no labelled token; paper: {paper}.")
                continue
            if curve.chains < MIN_CHAINS:
                seen = f"too few chains to judge (fewer than {MIN_CHAINS})"
            elif curve.area_low > 0:
                seen = "over-retained"
            elif curve.area_high < 0:
                seen = "under-retained"
            else:
                seen = "not distinguishable from uniform deletion"
            lines.append(f"- greedy ({objective}), {category}: area {curve.area:+.3f} (95% CI {curve.area_low:+.3f} "
                         f"to {curve.area_high:+.3f}, over the {curve.chains} chain(s) that have it): {seen}; "
                         f"paper: {paper}.")  # fmt: skip
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(parser)
    parser.add_argument("--annotator", choices=ANNOTATORS.names(), default="offline")
    parser.add_argument("--llm-model", default="gpt-5-mini", help="llm: the model name sent to the server")
    parser.add_argument("--base-url", default=None, help="llm: an OpenAI-compatible server")
    parser.add_argument("--concurrency", type=int, default=4, help="llm: chains annotated at once")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    runs = ensure_runs(args.preset, OBJECTIVES, args.baselines, args.threads, args.runs_dir, count=args.count,
                       model=args.model, progress=not args.quiet)  # fmt: skip
    runs_seconds = time.perf_counter() - started
    labelled = runs["greedy-joint"]
    llm = {"llm_model": args.llm_model, "base_url": args.base_url} if args.annotator == "llm" else {}
    config = build_config(AnnotateConfig, {"rankings": labelled, "annotator": args.annotator,
                                           "concurrency": args.concurrency, **llm})  # the LLM's go into its options
    annotations = annotate_rankings(config, progress=not args.quiet)
    agreement = []
    if args.annotator != "offline":  # how far the offline rules are from the LLM's labels
        offline = annotate_rankings(AnnotateConfig(rankings=labelled, annotator="offline"), progress=False)
        both = [i for i, a in annotations.items() if a.status == "ok" and i in offline and offline[i].status == "ok"]
        mean = sum(token_agreement(annotations[i].labels, offline[i].labels) for i in both) / max(len(both), 1)
        agreement = [f"Token-level agreement of the offline rules with these labels: {mean:.3f} over {len(both)} "
                     "chains labelled by both.", ""]  # fmt: skip
    names = {f"greedy-{o}": f"greedy ({o})" for o in OBJECTIVES} | {b: b for b in args.baselines}
    result = category_retention({names[run]: load_rankings(runs[run]) for run in names}, annotations, seed=args.seed)
    setup = describe(args.preset, args.count, args.model)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    result.figure(args.out_dir / "category_retention.png",
                  title=f"Category retention ({result.chains} GSM8K chains, {args.annotator} labels)")  # fmt: skip
    result.distribution_figure(args.out_dir / "category_distribution.png", f"{result.chains} GSM8K gold chains",
                               title=f"Categories of unpruned reasoning tokens ({args.annotator} labels)")  # fmt: skip
    labels = ("the offline rule annotator (deterministic lexicons and patterns, `prunelens.annotate.rules`; an "
              "approximation of the paper's gpt-5-mini labels)" if args.annotator == "offline"
              else f"the {args.annotator} annotator (model {args.llm_model})")  # fmt: skip
    pruning = {o: sum(r.seconds or 0.0 for r in load_rankings(runs[f"greedy-{o}"])) / 60 for o in OBJECTIVES}
    total = time.perf_counter() - started
    lines = [
        "# Functional categories under pruning (paper §5.1, Figures 3 and 8)",
        "",
        f"Chains: {setup}; objectives {' and '.join(OBJECTIVES)}; baselines {', '.join(args.baselines)} on the same "
        f"chains. Labels: {labels}, one per token (all pieces of a word share it), stored in "
        f"{labelled}/annotations-{args.annotator}.jsonl. Keep grid 1.0, 0.95, … down to {result.keeps[-1]:g}.",
        "",
        f"Definition: {DEFINITION}. Cells: area with its bootstrap 95% interval over chains (seed {args.seed}); "
        "the area of a curve that stays 0.1 above the diagonal over a grid of width 0.9 is +0.09.",
        "",
        result.table(),
        "",
        *agreement,
        "Check of §5.1's finding for greedy pruning:",
        "",
        *findings(result),
        "",
        f"Category distribution of the unpruned chains (Figure 8 style; {result.tokens} tokens of "
        f"{result.chains} chains):",
        "",
        result.distribution_table(),
        "",
        "Figures: category_retention.png (one panel per method, 95% bands, dotted diagonal = uniform deletion), "
        "category_distribution.png.",
        "",
        f"Wall time: {total / 60:.1f} min ({runs_seconds / 60:.1f} min creating or reusing the runs in "
        f"{args.runs_dir}, torch threads {args.threads}); greedy pruning itself took "
        + ", ".join(f"{minutes:.1f} min ({o})" for o, minutes in pruning.items())
        + " summed over chains (the rankings' own seconds, the same whether this run created or reused them).",
    ]  # fmt: skip
    text = "\n".join(lines) + "\n"
    write_report(args.out_dir / "category_retention.md", text)


if __name__ == "__main__":
    main()
