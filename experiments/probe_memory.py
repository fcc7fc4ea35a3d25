"""Peak memory and time of each attention hook backend on long sequences with smollm2-135m (a Markdown table).

Each backend and length runs in a fresh process, one after another; the memory figure is the peak resident
memory during one feature pass minus the resident memory just before it (the model itself is not counted).
Backends that materialise a layer's T × T pattern (all but ``hf_blockwise``) run only up to
``--eager-max-tokens``.

    python experiments/probe_memory.py --tokens 4000 8000 16000 --threads 1
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

CHILD = """
import json, sys, time, torch
from prunelens.memory import PeakMemory
from prunelens.models import load_model
from prunelens.probes.backends import make_backend
name, tokens, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
loaded = load_model("smollm2-135m", attn_implementation="eager")
backend = make_backend(name, loaded)
ids = torch.randint(100, 40000, (tokens,), generator=torch.Generator().manual_seed(0)).tolist()
backend.received_attention(ids[:64])  # warm-up
import psutil
process = psutil.Process()
before, cpu = process.memory_info().rss / 2**20, sum(process.cpu_times()[:2])
started = time.perf_counter()
with PeakMemory(interval=0.01) as peak:
    received = backend.received_attention(ids)
seconds, cpu = time.perf_counter() - started, sum(process.cpu_times()[:2]) - cpu
finite = bool(torch.isfinite(torch.from_numpy(received)).all())
print(json.dumps({"backend": name, "extra_mb": peak.peak_mb - before, "seconds": seconds, "cpu_seconds": cpu,
                  "shape": list(received.shape), "finite": finite}))
"""
NOTES = """
`hf_blockwise` computes each layer's attention itself, a block of query rows at a time
(`prunelens/probes/blockwise.py`: at most 2^22 weights per block, 16 MB in float32, about 29 rows of 9
heads at 16K tokens; blocks of 30 to 130 rows ran about 25% faster than 230 to 470 rows on these cores),
and only over the columns a block can see (causal, sliding window). One block's weights, computed as
eager attention computes them, give both the block's attention output (weights × V) and the attention
each key receives from later rows; the pass keeps no KV cache. Its memory therefore grows with T only
through one layer's activations (T × hidden, T × intermediate) and the block's T columns.

The backends that see a layer's whole 9 × T × T pattern (`hf`, `transformer_lens`, `nnsight`, all eager)
already pass 2 GB at 4,000 tokens and are not run past `--eager-max-tokens`: the pattern alone is 2.1 GiB
in float32 at 8,000 tokens, and `hf`'s float64 reduction adds two double-size copies of it (about 11 GiB
in all: it would fit in RAM, but was skipped to keep the run short); at 16,000 tokens it is 8.6 GiB, and
with the copies (about 43 GiB) beyond this machine's memory. Their forwards also keep the model's default
KV cache (2 × 30 layers × 3 KV heads × T × 64 × 4 bytes: 176 MiB at 4,000 tokens).
"""
BLOCKWISE = "hf_blockwise"
HEADS = 9  # smollm2-135m's query heads: the size of one layer's eager pattern in the skip note


def measure(name: str, tokens: int, threads: int) -> str:
    """One table cell: 'MB / wall s (CPU s)' from a fresh process, or why there is none."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-c", CHILD, name, str(tokens), str(threads)], capture_output=True,
                          text=True, env=env)  # fmt: skip
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        return f"failed: {lines[-1]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["finite"]:
        return "failed: non-finite features"
    return f"{result['extra_mb']:.0f} MB / {result['seconds']:.0f} s ({result['cpu_seconds']:.0f} s CPU)"


def main(argv=None):
    from prunelens.report import markdown_table, write_report

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[2000])
    parser.add_argument("--backends", nargs="+", default=["hf", BLOCKWISE, "transformer_lens", "nnsight"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each measuring process")
    parser.add_argument("--eager-max-tokens", type=int, default=4096,
                        help="longest sequence for the backends that see a layer's whole pattern")  # fmt: skip
    parser.add_argument("--out", default="results/probe_memory.md")
    args = parser.parse_args(argv)
    import psutil

    load = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M")
    rows = []
    for name in args.backends:
        cells = []
        for tokens in args.tokens:
            if name != BLOCKWISE and tokens > args.eager_max_tokens:
                cells.append(f"not run ({HEADS * tokens**2 * 4 / 2**30:.1f} GiB pattern per layer)")
                continue
            cells.append(measure(name, tokens, args.threads))
            print(f"{name} {tokens}: {cells[-1]}", file=sys.stderr, flush=True)
        rows.append([name, *cells])
    header = ["backend", *(f"{tokens} tokens: extra peak RSS / wall (CPU) time" for tokens in args.tokens)]
    command = " ".join(["python experiments/probe_memory.py", *(argv if argv is not None else sys.argv[1:])])
    text = (
        "# Peak memory and time of the attention hook backends (smollm2-135m, CPU)\n\n"
        f"`{command}`, started {started} on {platform.machine()} Linux, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, no GPU; torch threads: {args.threads}. The real "
        "smollm2-135m weights (converted GGUF, float32), random token ids; smollm2 was trained to 8,192 positions "
        "and its RoPE extends past them unchanged, so 16K tokens run on the real model (the features there are "
        f"about memory and time, not meaning). The cores were shared with other jobs (load average "
        f"{load[0]:.2f} when the script started). Each cell is a fresh process: the peak resident memory during "
        "one feature pass minus the resident memory just before it (the model itself is not counted), the "
        "pass's wall time and, in brackets, its CPU time (user + system; the steadier figure on shared cores).\n\n"
        + markdown_table(header, rows)
        + "\n"
        + NOTES
    )
    write_report(args.out, text)


if __name__ == "__main__":
    main()
