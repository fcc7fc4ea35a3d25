"""Paper §5.3 at this machine's scale: does a model's own attention predict greedy-pruning scores?

Targets: each reasoning token's post-deletion likelihood at keep 1.0 (step 0 of exact greedy pruning,
objective joint) on GSM8K gold chains. Inputs: the token's per-head attention features. Compared on
the same held-out examples: the Pearson-loss MLP surrogate, the same MLP trained with MSE, ridge
regression on the same features, and raw H2O importance (negated: high attention = costly to delete,
while a high post-deletion likelihood = cheap to delete); then the controls that say what attention adds, each
through the same MLP: the token's position only, its surprisal only, training on attention features shuffled
among the tokens of each example (tested on the real ones), and the attention of a randomly initialised model of
the same architecture. Also a learning curve of the MLP.

    python experiments/surrogate_pearson.py                    # 200 train / 200 test, smollm2-135m
    python experiments/surrogate_pearson.py --train 20 --test 20   # a quick look
    python experiments/surrogate_pearson.py --target-dtype float32 # exact float32 targets (~2.5x slower)
"""

import argparse
import time
from pathlib import Path

import numpy as np

from prunelens.probes.run import FeaturesConfig
from prunelens.analysis.surrogate_data import examples_from_runs
from prunelens.probes.surrogate import (
    ExampleData,
    SurrogateConfig,
    correlations,
    train_surrogate,
)  # fmt: skip
from prunelens.pruning.run import PruneConfig
from prunelens.report import markdown_table, write_report


class Stages:
    """Prints and keeps the wall time of each stage."""

    def __init__(self):
        self.rows, self.started = [], time.perf_counter()

    def __call__(self, name):
        elapsed = time.perf_counter() - self.started
        self.rows.append((name, elapsed))
        print(f"[{elapsed:7.1f} s] {name}", flush=True)
        self.started = time.perf_counter()


def collect(split, count, args, stages, features_model=None, label=""):
    """Step-0 pruning targets and attention features for the first ``count`` examples of a split (the features
    of ``features_model`` when given, e.g. a randomly initialised copy; the targets always the pruner's)."""
    runs = Path(args.runs_dir)
    common = dict(dataset="gsm8k", split=split, limit=count, data_dir=args.data_dir, skip_bad=True)
    targets = PruneConfig(**common, model=args.model, steps=1, dtype=args.target_dtype,
                          out=target_dir(args, split))  # fmt: skip
    features = FeaturesConfig(**common, model=str(features_model or args.model), backend=args.backend,
                              out=runs / f"features{label}-{split}")  # fmt: skip
    names = {"targets": f"targets ({split}, {count} examples, step 0 of greedy pruning)",
             "features": f"features{label} ({split}, backend {args.backend})"}  # fmt: skip
    return examples_from_runs(targets, features, progress=not args.quiet, on_stage=lambda done: stages(names[done]))


def target_dir(args, split) -> Path:
    return Path(args.runs_dir) / f"targets-{split}-{args.target_dtype}"


def position_only(examples: list[ExampleData]) -> list[ExampleData]:
    """The same targets with only where each token stands: its relative and absolute position and the length."""
    out = []
    for e in examples:
        n = len(e.y)
        positions = np.arange(n, dtype=np.float64)
        out.append(ExampleData(e.id, np.stack([positions / n, positions, np.full(n, n, dtype=np.float64)], 1), e.y))
    return out


def shuffled(examples: list[ExampleData], seed: int = 0) -> list[ExampleData]:
    """The same features, their rows permuted among the tokens of each example (seeded). A surrogate trained on
    these and tested on the real rows learns what attention says without its pairing of features and tokens."""
    rng = np.random.default_rng(seed)
    return [ExampleData(e.id, e.x[rng.permutation(len(e.x))], e.y) for e in examples]


def surprisal_only(examples: list[ExampleData], pruning_dir: Path, loaded) -> list[ExampleData]:
    """The same targets with one feature: the token's surprisal under the loaded pruner (one forward per chain, on
    the prompt and reasoning ids the pruning run recorded)."""
    from prunelens.core.ranking import load_rankings
    from prunelens.rankers.surprisal import reasoning_surprisal

    records = {r.id: r for r in load_rankings(pruning_dir)}
    return [ExampleData(e.id, reasoning_surprisal(loaded.model, records[e.id].prompt_ids,
                                                  records[e.id].reasoning_ids)[:, None], e.y) for e in examples]  # fmt: skip


def h2o_predictions(examples, features_dir):
    """Negated raw H2O importance per token (the sum of the L·H received-attention sums)."""
    from prunelens.probes.store import open_features

    with open_features(features_dir) as store:
        h2o, ids = store["h2o"].values, store["example_id"].values.astype(str)
    return [-h2o[ids == e.id] for e in examples]


def scatter(test: list[ExampleData], predictions, path: Path, title: str):
    """Within-example z-scores of prediction vs target, all held-out tokens."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def z(v):
        return (v - v.mean()) / (v.std() + 1e-12)

    xs = np.concatenate([z(p) for p in predictions])
    ys = np.concatenate([z(e.y) for e in test])
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.scatter(xs, ys, s=4, alpha=0.3)
    axis.set_xlabel("surrogate prediction (z-scored within example)")
    axis.set_ylabel("post-deletion log-likelihood at keep 1.0 (z-scored within example)")
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--train", type=int, default=200, help="GSM8K train-split examples")
    parser.add_argument("--test", type=int, default=200, help="GSM8K test-split examples (held out)")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--backend", default="hf")
    parser.add_argument("--target-dtype", default="bfloat16", choices=["bfloat16", "float32"],
                        help="dtype of the pruning forwards that make the targets; bfloat16 is ~2.5x faster on "
                             "CPUs with AVX512-BF16 and its step-0 scores correlate ~0.997 with float32's")
    parser.add_argument("--curve", type=int, nargs="+", default=[25, 50, 100, 200], help="learning-curve sizes")
    parser.add_argument("--runs-dir", default="runs/surrogate")
    parser.add_argument("--out-dir", default="results")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--no-baselines", dest="baselines", action="store_false",
                        help="skip the controls (position only, surprisal only, shuffled rows, random-init attention)")
    args = parser.parse_args(argv)
    stages = Stages()
    train = collect("train", args.train, args, stages)
    test = collect("test", args.test, args, stages)

    methods = {
        "MLP, Pearson loss (surrogate)": SurrogateConfig(kind="mlp", loss="pearson", epochs=args.epochs),
        "MLP, MSE loss": SurrogateConfig(kind="mlp", loss="mse", epochs=args.epochs),
        "ridge regression": SurrogateConfig(kind="ridge"),
    }
    summaries, predictions = {}, {}
    for name, config in methods.items():
        model = train_surrogate(train, config, meta={"model": args.model})
        predictions[name] = [model.predict(e.x) for e in test]
        summaries[name] = correlations(test, predictions[name]).summary()
        stages(f"train + eval: {name}")
    predictions["raw H2O (negated)"] = h2o_predictions(test, Path(args.runs_dir) / "features-test")
    summaries["raw H2O (negated)"] = correlations(test, predictions["raw H2O (negated)"]).summary()
    if args.baselines:  # what attention adds: each control through the same MLP (Pearson loss)
        from prunelens.models import load_model, random_init_copy

        surrogate = methods["MLP, Pearson loss (surrogate)"]
        random_model, pruner = random_init_copy(args.model), load_model(args.model)
        controls = {
            "position only (MLP)": (position_only(train), position_only(test)),
            "surprisal only (MLP)": (surprisal_only(train, target_dir(args, "train"), pruner),
                                     surprisal_only(test, target_dir(args, "test"), pruner)),
            "attention, trained on rows shuffled within each example (MLP)": (shuffled(train), test),
            "attention of a randomly initialised model (MLP)": (
                collect("train", args.train, args, stages, random_model, "-random-init"),
                collect("test", args.test, args, stages, random_model, "-random-init")),
        }  # fmt: skip
        for name, (control_train, control_test) in controls.items():
            model = train_surrogate(control_train, surrogate)
            summaries[name] = correlations(control_test, [model.predict(e.x) for e in control_test]).summary()
            stages(f"train + eval: {name}")

    curve = []
    for size in sorted(s for s in args.curve if s <= len(train)):
        model = train_surrogate(train[:size], methods["MLP, Pearson loss (surrogate)"])
        curve.append((size, correlations(test, [model.predict(e.x) for e in test]).summary()))
    stages("learning curve")

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    best = "MLP, Pearson loss (surrogate)"
    scatter(test, predictions[best], out / "surrogate_scatter.png",
            f"{args.model}: {best}, held-out Pearson {summaries[best]['pearson']:.3f}")  # fmt: skip
    lines = [
        f"# Surrogate vs attention baselines ({args.model}, GSM8K gold chains)",
        "",
        f"Train: first {len(train)} usable examples of the GSM8K train split; held out: first {len(test)} of the "
        f"test split. Target: step-0 post-deletion log-likelihood (objective joint, "
        f"scored in {args.target_dtype}). Features: per-head mean "
        f"received attention ({train[0].x.shape[1]} per token), backend {args.backend}. Mean within-example "
        "correlation over held-out examples, 95% bootstrap CI. Paper (Llama-3.1-8B, 200/1,000): Pearson 0.88.",
        "",
        markdown_table(["method", "Pearson", "95% CI", "Spearman", "95% CI", "examples"],
                       [[name, f"{s['pearson']:.3f}", f"{s['pearson_ci'][0]:.3f}–{s['pearson_ci'][1]:.3f}",
                         f"{s['spearman']:.3f}", f"{s['spearman_ci'][0]:.3f}–{s['spearman_ci'][1]:.3f}", s["n_examples"]]
                        for name, s in summaries.items()]),
        "", "Learning curve (MLP, Pearson loss):", "",
        markdown_table(["train examples", "Pearson", "95% CI"],
                       [[size, f"{s['pearson']:.3f}", f"{s['pearson_ci'][0]:.3f}–{s['pearson_ci'][1]:.3f}"]
                        for size, s in curve]),
        "", "Stage times:", "",
        markdown_table(["stage", "seconds"], [[name, f"{seconds:.1f}"] for name, seconds in stages.rows]
                       + [["total", f"{sum(s for _, s in stages.rows):.1f}"]]),
        "", "Scatter plot: surrogate_scatter.png",
    ]  # fmt: skip
    text = "\n".join(lines) + "\n"
    write_report(out / "surrogate_pearson.md", text)


if __name__ == "__main__":
    main()
