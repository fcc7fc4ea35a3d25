"""The server scorer in the benchmark: start llama.cpp's server (llama-cpp-python, the `llamacpp` extra) on the
model's GGUF as shipped, then run `prunelens bench` with the mode `server` beside naive, fast and the floor.

    python experiments/bench_server.py                 # smollm2-135m, 2 GSM8K chains of ≤ 30 tokens, 2 threads

Both sides get the same threads: torch's (--threads) and the server's. The quantised model the server computes
is not the de-quantised float32 one exact greedy runs, so its agreement columns measure quantisation and scorer
together. Writes results/bench_server.md (and .json beside it).
"""

import argparse
import sys

import torch

from prunelens.bench.servers import llama_server
from prunelens.cli import app


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="an alias with a GGUF (the server serves it)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads and llama.cpp threads")
    parser.add_argument("--n", type=int, default=2, help="benchmark chains")
    parser.add_argument("--max-tokens", type=int, default=30, help="longest reasoning of a benchmark chain")
    parser.add_argument("--out", default="results/bench_server.md")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    with llama_server(args.model, threads=args.threads) as url:
        app(["bench", "--model", args.model, "--n", str(args.n), "--max-tokens", str(args.max_tokens), "--modes",
             "naive,fast", "--server", url, "--out", args.out, "--pareto", ""], standalone_mode=False)


if __name__ == "__main__":
    main()
