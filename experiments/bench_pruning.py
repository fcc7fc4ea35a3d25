"""Benchmark greedy-pruning scorers: naive vs fast exact vs approximate modes (prints a Markdown table).

    python experiments/bench_pruning.py --n 3            # also: prunelens bench --n 3

The floor mode (fast bf16) always runs; surrogate-screening modes train their surrogate once (on GSM8K
train chains, --surrogate-chains) and reuse it from --surrogate-dir.
"""

import argparse

from prunelens.pruning.benchmark import DEFAULT_MODES, BenchConfig, run_benchmark


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = BenchConfig()
    parser.add_argument("--n", type=int, default=defaults.n, help="GSM8K test chains")
    parser.add_argument("--keep", type=float, default=defaults.keep)
    parser.add_argument("--objective", default=defaults.objective)
    parser.add_argument("--token-budget", type=int, default=defaults.token_budget)
    parser.add_argument("--modes", nargs="+", default=list(defaults.modes), choices=[m.name for m in DEFAULT_MODES])
    parser.add_argument("--synthetic-tokens", type=int, default=defaults.synthetic_tokens, help="0 to skip")
    parser.add_argument("--synthetic-steps", type=int, default=defaults.synthetic_steps)
    parser.add_argument("--out", default=defaults.out, help="Markdown report path")
    parser.add_argument("--pareto", default=defaults.pareto, help="Pareto plot path")
    parser.add_argument("--surrogate-chains", type=int, default=defaults.surrogate_chains,
                        help="GSM8K train chains the screening surrogate is trained on")  # fmt: skip
    parser.add_argument("--surrogate-dir", default=defaults.surrogate_dir, help="where the surrogate is cached")
    args = parser.parse_args(argv)
    config = BenchConfig(args.n, args.keep, args.objective, args.token_budget, tuple(args.modes),
                         args.synthetic_tokens, args.synthetic_steps, args.out, args.pareto, args.surrogate_chains,
                         args.surrogate_dir)  # fmt: skip
    print(run_benchmark(config))


if __name__ == "__main__":
    main()
