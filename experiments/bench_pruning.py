"""Benchmark greedy-pruning scorers: naive vs fast exact vs approximate modes (prints a Markdown table).

    python experiments/bench_pruning.py --n 3            # also: prunelens bench --n 3
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
    args = parser.parse_args(argv)
    config = BenchConfig(args.n, args.keep, args.objective, args.token_budget, tuple(args.modes),
                         args.synthetic_tokens, args.synthetic_steps, args.out)  # fmt: skip
    print(run_benchmark(config))


if __name__ == "__main__":
    main()
