"""Peak memory of each attention hook backend on one long sequence with smollm2-135m (a Markdown table).

Each backend runs in a fresh process; the figure is the peak resident memory during the feature
pass minus the resident memory just before it (the model itself is not counted).

    python experiments/probe_memory.py --tokens 2000
"""

import argparse
import json
import subprocess
import sys

CHILD = """
import json, sys, time, torch
from prunelens.memory import PeakMemory
from prunelens.models import load_model
from prunelens.probes.backends import make_backend
name, tokens = sys.argv[1], int(sys.argv[2])
loaded = load_model("smollm2-135m", attn_implementation="eager")
backend = make_backend(name, loaded)
ids = torch.randint(100, 40000, (tokens,), generator=torch.Generator().manual_seed(0)).tolist()
backend.received_attention(ids[:64])  # warm-up
import psutil
before = psutil.Process().memory_info().rss / 2**20
started = time.perf_counter()
with PeakMemory(interval=0.01) as peak:
    received = backend.received_attention(ids)
print(json.dumps({"backend": name, "extra_mb": peak.peak_mb - before, "seconds": time.perf_counter() - started,
                  "shape": list(received.shape)}))
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--backends", nargs="+", default=["hf", "hf_blockwise", "transformer_lens", "nnsight"])
    args = parser.parse_args(argv)
    print(f"| backend | extra peak RSS (MB), {args.tokens} tokens | seconds |\n|---|---|---|")
    for name in args.backends:
        done = subprocess.run([sys.executable, "-c", CHILD, name, str(args.tokens)], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"| {name} | failed: {done.stderr.strip().splitlines()[-1]} | – |")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {name} | {result['extra_mb']:.0f} | {result['seconds']:.1f} |")


if __name__ == "__main__":
    main()
