"""Benchmark greedy-pruning scorers: naive vs fast exact vs approximate modes (prints a Markdown table).

    python experiments/bench_pruning.py            # the same as: prunelens bench (5 chains, ~45 min)

The options are `prunelens bench`'s (``--help``). The floor mode (fast bf16) always runs; surrogate-screening
modes train their surrogate once (on GSM8K train chains, --surrogate-chains) and reuse it from --surrogate-dir.
"""

import sys

from prunelens.cli import app


def main(argv=None):
    app(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
