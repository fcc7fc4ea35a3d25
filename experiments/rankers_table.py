"""Every registered ranker on the same GSM8K test chains: seconds per chain, and the student-token lengths
`compress` gives each method at ρ = 0.5 / 0.7 / 0.9 (a Markdown table in results/rankers.md).

    python experiments/rankers_table.py            # 20 chains of 30–50 tokens, smollm2-135m (~20 min on 2 cores)
    python experiments/rankers_table.py --n 2 --train 4 --standin tiny --runs-dir /tmp/r   # a smoke run

Greedy is exact (fast scorer) down to keep 0.5. The surrogate is trained on step-0 greedy scores of
GSM8K train chains of the same lengths. TokenSkip's classifier (LLMLingua-2, XLM-R large) cannot be
downloaded on this machine, so its row uses a randomly initialised classifier of the same architecture:
its seconds are LLMLingua-2's cost, its ranking is meaningless (the table says so).
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from prunelens.compress import CompressConfig, compress_rankings
from prunelens.datasets import load_examples
from prunelens.models import load_tokenizer
from prunelens.probes.run import FeaturesConfig, run_features
from prunelens.analysis.surrogate_data import surrogate_from_runs
from prunelens.pruning.run import PruneConfig, run_pruning
from prunelens.rankers.h2o import H2OOptions
from prunelens.rankers.run import RankConfig, run_rank
from prunelens.rankers.surrogate import SurrogateOptions
from prunelens.rankers.tokenskip import TokenSkipOptions
from prunelens.report import markdown_table, write_report
from prunelens.selection import ids_by_length
from standin_classifier import LLMLINGUA2_LARGE_SHAPE, save_standin_classifier

KEEPS = (0.5, 0.7, 0.9)
TINY_SHAPE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
              "max_position_embeddings": 514}  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=20, help="GSM8K test chains")
    parser.add_argument("--train", type=int, default=40, help="GSM8K train chains for the surrogate")
    parser.add_argument("--min-tokens", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--standin", choices=("large", "tiny"), default="large", help="TokenSkip stand-in size")
    parser.add_argument("--student", default="smollm2-135m", help="student tokenizer for compress")
    parser.add_argument("--runs-dir", default="runs/rankers")
    parser.add_argument("--out", default="results/rankers.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = Path(args.runs_dir)
    tokenizer = load_tokenizer(args.model).tokenizer
    test_ids = ids_by_length(load_examples("gsm8k", "test"), tokenizer, args.min_tokens, args.max_tokens, args.n)
    train_ids = ids_by_length(load_examples("gsm8k", "train"), tokenizer, args.min_tokens, args.max_tokens, args.train)
    common = dict(model=args.model, dataset="gsm8k", limit=None, threads=args.threads)
    test = dict(common, split="test", ids=test_ids)

    seconds, rankings_dirs, notes = {}, {}, {}

    def record(method, summary, extra_note=""):
        seconds[method] = [r.seconds for r in summary.rankings]
        rankings_dirs[method] = summary.out_dir
        notes[method] = extra_note

    record("greedy", run_pruning(PruneConfig(**test, keep=0.5, out=runs / "greedy")), "exact, fast scorer, to keep 0.5")
    features = run_features(FeaturesConfig(**test, out=runs / "features-test"))
    feature_seconds = np.mean([r.seconds for r in features.rankings])
    record("h2o", run_rank(RankConfig(**test, method="h2o", out=runs / "h2o")), "one eager hook pass (backend hf)")
    record("h2o (from store)", run_rank(RankConfig(**test, method="h2o", options=H2OOptions(features=features.out_dir), out=runs / "h2o-store")),
           f"reads features.nc; extracting them took {feature_seconds:.2f} s/chain")  # fmt: skip
    for method in ("surprisal", "uniform", "truncation"):
        record(method, run_rank(RankConfig(**test, method=method, out=runs / method)))

    train = dict(common, split="train", ids=train_ids)
    surrogate, data = surrogate_from_runs(PruneConfig(**train, steps=1, out=runs / "targets-train"),
                                          FeaturesConfig(**train, out=runs / "features-train"), warn=print)
    surrogate.save(runs / "surrogate.pt")
    record("surrogate", run_rank(RankConfig(**test, method="surrogate", options=SurrogateOptions(
                                            surrogate=runs / "surrogate.pt", features=features.out_dir), out=runs / "surrogate")),
           f"MLP trained on {len(data)} train chains; reads features.nc")  # fmt: skip

    standin = runs / f"tokenskip-standin-{args.standin}"
    if not (standin / "config.json").exists():
        corpus = [e.reasoning for e in load_examples("gsm8k", "train")[:2000]]
        save_standin_classifier(standin, corpus, **(LLMLINGUA2_LARGE_SHAPE if args.standin == "large" else TINY_SHAPE))
    record("tokenskip", run_rank(RankConfig(**test, method="tokenskip", options=TokenSkipOptions(classifier=str(standin)), out=runs / "tokenskip")),
           f"random-weight stand-in of LLMLingua-2's architecture ({args.standin}): cost only, order meaningless")  # fmt: skip

    students = {args.student: args.student, "tokenskip stand-in's WordPiece": str(standin)}
    tables = []
    for label, student in students.items():
        rows = []
        for method, folder in rankings_dirs.items():
            written = compress_rankings(CompressConfig(rankings=folder, keep=list(KEEPS), student_tokenizer=student,
                                                       out=runs / f"compress-{folder.name}-{Path(student).name}",
                                                       skip_bad=True))  # fmt: skip
            hits = sum(c["student_tokens"] == c["target"] for chains in written.values() for c in chains)
            total = sum(len(chains) for chains in written.values())
            means = [f"{np.mean([c['student_tokens'] for c in written[k]]):.1f} ({len(written[k])})" if written[k]
                     else "– (0)" for k in KEEPS]  # fmt: skip
            rows.append([method, *means, f"{hits}/{total}"])
        n_student = np.mean([c["n_student"] for c in written[KEEPS[0]]])
        tables += [f"Student tokenizer: {label} (full chains: {n_student:.1f} student tokens on average)", "",
                   markdown_table(["method", *(f"student tokens ρ={k:g}" for k in KEEPS), "exactly round(ρ·n)"], rows),
                   ""]  # fmt: skip
    rows = [[method, f"{1000 * np.mean(seconds[method]):.1f}", f"{1000 * np.max(seconds[method]):.1f}", notes[method]]
            for method in rankings_dirs]  # fmt: skip
    n_tokens = [len(tokenizer(e.reasoning, add_special_tokens=False)["input_ids"])
                for e in load_examples("gsm8k", "test") if e.id in set(test_ids)]  # fmt: skip
    text = "\n".join([
        f"# Rankers on {len(test_ids)} GSM8K test chains ({args.model})",
        "",
        f"Chains: the first {len(test_ids)} GSM8K test gold chains with {args.min_tokens}–{args.max_tokens} reasoning "
        f"tokens (mean {np.mean(n_tokens):.1f}). torch threads: {args.threads}, one job at a time on this machine. "
        "Seconds per chain are each ranking's own `seconds` (model loading excluded).",
        "",
        markdown_table(["method", "ms/chain (mean)", "ms/chain (max)", "note"], rows),
        "",
        "`prunelens compress` at ρ = " + " / ".join(f"{k:g}" for k in KEEPS) + ": mean student tokens of the kept "
        "text (in brackets: chains whose ranking reaches ρ in student tokens; greedy stops at keep 0.5 in the "
        "pruner's tokens, which in a coarser student tokenizer can fall short of 0.5), and how many of the cut "
        "chains have exactly round(ρ·n_student) student tokens.",
        "",
        *tables,
    ])  # fmt: skip
    write_report(args.out, text)


if __name__ == "__main__":
    main()
