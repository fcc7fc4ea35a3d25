"""Greedy-pruning scorers on an accelerator at real pruner sizes, with randomly initialised models.

No weights travel to a GPU machine, so each shape is a real architecture with random weights: speed,
forwards and kernel launches do not depend on the weights (agreement does: random weights leave small
score gaps, so bfloat16 agreement here is a stress test). Shapes: ``smollm2`` (SmolLM2-135M: 30
layers, hidden 576, 9 query / 3 KV heads, vocab 49,152) and ``llama1b`` (Llama-3.2-1B: 16 layers,
hidden 2048, 32 / 8 heads, intermediate 8192, vocab 128,256, tied embeddings, rope theta 500,000;
its llama3 rope scaling is left out, which changes no cost). Each shape runs in float32 (no TF32), then
the same weights rounded to bfloat16. The chain is random tokens: prompt, reasoning, answer.

    python experiments/gpu_check.py --device cuda --shapes smollm2 llama1b

writes results/gpu_check_<device>.md (e.g. gpu_check_h100.md; ``--out-dir`` changes the folder). On the
device tool, from the repository root, with timeout_s 420 (the plan's estimate on an H100 is 2-3
minutes, not yet measured; rows that would start after ``--time-limit`` = 330 s are skipped, so the
report is always written), then copy the returned file into results/:

    PYTHONUNBUFFERED=1 PYTHONPATH=. python3 experiments/gpu_check.py --device cuda --shapes smollm2 llama1b --out-dir $OUT

A CPU smoke run (< 60 s; both shapes with one layer and a 4,096-token vocabulary):

    python experiments/gpu_check.py --smoke

Columns of the scorer table, per shape, dtype, scorer and token budget (``--naive-budget``,
``--fast-budgets``; the CLI's default budget is 1024). Step 1 (which also scores the whole chain and,
for fast, builds the prompt and trunk caches) is a warm-up, the last step is profiled, the steps
between are timed:
- s/step: seconds per timed greedy step (all deletion candidates scored once);
- forwards/step: model forwards per timed step (ScorerStats.forward_calls);
- tokens/step: real tokens pushed through the model per timed step;
- kernels/step: CUDA kernels in the profiled step (torch.profiler, GPU events of activity "kernel");
  copies/step: its host/device copies and memsets; "–" on CPU;
- FLOP floor s/step: tokens/step × 2 × non-embedding parameters ÷ the device's measured matmul rate in
  that dtype (the output projection left out): how far s/step is from compute-bound;
- peak MB: peak device memory allocated above the model during the run ("–" on CPU);
- speed-up: naive s/step ÷ this row's, same shape and dtype;
- agreement with float32 exact (naive float32, same weights): identical first-k deletions (the
  length of the common prefix of the two deletion orders, of all steps), Hit@S (Hit@|S|) with S = exact's
  deletions in those steps (prunelens.pruning.compare.hit_at_s), and the largest |score difference|
  over step 1's candidates (nats).
A second table lists, per shape and dtype, the most frequent kernels of the profiled step of fast at
its largest budget; a third times the received-attention backends (hf vs hf_blockwise) on ``--long``
tokens with peak device memory.
"""

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHAPES = {
    "smollm2": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0,
                    tie_word_embeddings=True),
    "llama1b": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                    num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072,
                    rope_theta=500000.0, tie_word_embeddings=True),
}  # fmt: skip
SMOKE = dict(device="cpu", layers=1, vocab=4096, prompt=8, reasoning=10, answer=2, steps=3, naive_budget=256,
             fast_budgets=[32, 256], long=48)  # fmt: skip
DTYPES = ("float32", "bfloat16")


def random_model(shape: str, device, layers: int | None = None, vocab: int | None = None, seed: int = 0):
    """A float32 Llama model of ``shape`` (SHAPES) with random weights, built on ``device``."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    overrides = {"num_hidden_layers": layers, "vocab_size": vocab}
    config = LlamaConfig(**{**SHAPES[shape], **{k: v for k, v in overrides.items() if v}})
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model.eval()


def synchronize(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def profiled_counts(profiler) -> tuple[Counter, int]:
    """The GPU kernels of a finished torch.profiler span by name, and its host/device copies and memsets."""
    from torch.autograd import DeviceType

    kernels, copies = Counter(), 0
    for event in profiler.events():
        if event.device_type != DeviceType.CUDA:
            continue
        # activity types are kineto's; a torch without them: copies and memsets are named Memcpy…/Memset…
        kind = getattr(event, "activity_type", None)
        if kind in ("gpu_memcpy", "gpu_memset") or (kind is None and event.name.startswith(("Memcpy", "Memset"))):
            copies += 1
        elif kind in ("kernel", None):
            kernels[event.name] += 1
    return kernels, copies


@dataclass
class Row:
    """One greedy run of one scorer: per-step costs over the timed steps, the profiled step's kernels."""

    shape: str
    dtype: str
    scorer: str
    budget: int
    seconds: float
    forwards: float
    tokens: float
    peak_mb: float | None
    kernels: Counter | None
    copies: int | None
    order: list[int]
    first_scores: np.ndarray


def run_scorer(model, scorer_name: str, budget: int, chain, steps: int, device, shape: str, dtype: str) -> Row:
    """Greedy-prune ``chain`` (prompt, reasoning, answer) for ``steps`` ≥ 3 steps: step 1 warms up, the last
    is profiled on CUDA, the ones between are timed."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from prunelens.pruning.greedy import greedy_prune
    from prunelens.pruning.scorers import make_scorer

    scorer = make_scorer(scorer_name, model, budget)
    marks, profiler = [], None

    def on_step(_deleted):
        nonlocal profiler
        synchronize(device)
        marks.append((time.perf_counter(), scorer.stats.forward_calls, scorer.stats.tokens_computed))
        if device.type == "cuda" and len(marks) == steps - 1:
            profiler = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
            profiler.start()
        elif profiler is not None and len(marks) == steps:
            profiler.stop()

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    try:
        result = greedy_prune(scorer, *chain, "joint", 0.0, steps, on_step=on_step)
    finally:
        if profiler is not None and len(marks) < steps:  # it failed in the profiled step
            profiler.stop()
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device.type == "cuda" else None
    kernels, copies = profiled_counts(profiler) if profiler is not None else (None, None)
    (start, *first), (end, *last) = marks[0], marks[-2]
    timed = len(marks) - 2
    per_step = [(b - a) / timed for a, b in zip(first, last)]
    return Row(shape, dtype, scorer_name, budget, (end - start) / timed, *per_step, peak, kernels, copies,
               result.deletion_order, result.candidate_scores[0])  # fmt: skip


def fast_tokens(n: int, answer: int, steps: int) -> int:
    """Tokens the fast scorer feeds in ``steps`` greedy steps: every candidate's suffix after its deletion."""
    return sum(m * (m - 1) // 2 + m * (answer - 1) for m in range(n, n - steps, -1))


def plan(args, body: dict[str, int], rates: dict[str, float]) -> str:
    """The planned runs and their FLOP floor in seconds on this device (launches and profiling on top)."""
    from prunelens.bench.run import candidate_tokens

    naive = candidate_tokens(args.prompt, args.reasoning, args.answer, args.steps)
    fast = fast_tokens(args.reasoning, args.answer, args.steps)
    runs = 1 + len(args.fast_budgets)
    floor = sum(2 * body[shape] * (naive + fast * len(args.fast_budgets)) / rates[dtype]
                for shape in args.shapes for dtype in DTYPES)  # fmt: skip
    return (f"Plan: {len(args.shapes)} shapes × {len(DTYPES)} dtypes × {runs} scorer runs of {args.steps} steps; "
            f"{naive} naive and {fast} fast tokens per run; FLOP floor {floor:.0f} s on this device; rows that "
            f"would start after {args.time_limit:.0f} s are skipped.")  # fmt: skip


def scorer_table(rows: list[Row], floors: dict[tuple[str, str], float], skipped: list[list]) -> str:
    """The scorer table (columns: the module docstring); ``skipped`` rows are [shape, dtype, scorer, budget, why]."""
    from prunelens.pruning.compare import hit_at_s
    from prunelens.pruning.prefix_scorer import common_prefix
    from prunelens.report import markdown_table

    header = ["shape", "dtype", "scorer", "budget", "s/step", "forwards/step", "tokens/step", "kernels/step",
              "copies/step", "FLOP floor s/step", "peak MB", "speed-up", "identical first-k", "Hit@S",
              "max abs Δ score step 1"]  # fmt: skip
    exact = {r.shape: r for r in rows if r.scorer == "naive" and r.dtype == "float32"}
    naive = {(r.shape, r.dtype): r for r in rows if r.scorer == "naive"}
    dash, cells = "–", []
    for r in rows:
        ref, base, n = exact.get(r.shape), naive.get((r.shape, r.dtype)), len(r.first_scores)
        agreement = [dash] * 3  # no float32 exact run to compare with (it ran out of memory)
        if ref is not None:
            steps = len(ref.order)
            agreement = [f"{common_prefix(r.order, ref.order)}/{steps}",
                         f"{hit_at_s(ref.order, r.order, n, 1.0, (n - steps) / n):.2f}",
                         f"{np.nanmax(np.abs(r.first_scores - ref.first_scores)):.1e}"]  # fmt: skip
        cells.append([r.shape, r.dtype, r.scorer, r.budget, f"{r.seconds:.3f}", f"{r.forwards:.1f}", f"{r.tokens:.0f}",
                      dash if r.kernels is None else sum(r.kernels.values()), dash if r.copies is None else r.copies,
                      f"{r.tokens * floors[(r.shape, r.dtype)]:.3f}", dash if r.peak_mb is None else f"{r.peak_mb:.0f}",
                      dash if base is None else f"{base.seconds / r.seconds:.1f}×", *agreement])  # fmt: skip
    cells += [[*row, *["–"] * (len(header) - 5)] for row in skipped]
    return markdown_table(header, cells)


def kernel_table(rows: list[Row], top: int = 5) -> str:
    """The ``top`` most frequent kernels of the profiled step of fast at its largest budget, per shape and dtype."""
    from prunelens.report import markdown_table

    largest = max((r.budget for r in rows if r.scorer == "fast"), default=None)
    cells = []
    for r in (r for r in rows if r.scorer == "fast" and r.budget == largest and r.kernels is not None):
        for name, count in r.kernels.most_common(top):
            short = name.replace("|", "/")
            cells.append([r.shape, r.dtype, r.budget, short[:90] + ("…" if len(short) > 90 else ""), count])
    return markdown_table(["shape", "dtype", "budget", "kernel", "launches in the step"], cells) if cells else ""


def backend_table(models: dict[str, object], tokens: int, device) -> str:
    """Received attention by the hf and hf_blockwise backends on ``tokens`` random tokens, per shape."""
    import torch

    from prunelens.probes.backends import HFBlockwiseBackend, HFEagerBackend
    from prunelens.report import markdown_table

    cells = []
    for shape, model in models.items():
        ids = np.random.default_rng(1).integers(100, model.config.vocab_size, tokens).tolist()
        reference = None
        for backend_type in (HFEagerBackend, HFBlockwiseBackend):
            backend = backend_type(model)
            backend.received_attention(ids[:32])
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            synchronize(device)
            started = time.perf_counter()
            received = backend.received_attention(ids)
            synchronize(device)
            seconds = time.perf_counter() - started
            peak = f"{(torch.cuda.max_memory_allocated() - base) / 2**20:.0f}" if device.type == "cuda" else "–"
            reference = received if reference is None else reference
            cells.append([shape, backend.name, f"{seconds:.2f}", peak, f"{np.abs(received - reference).max():.1e}"])
    header = ["shape", "backend", f"{tokens} tokens: seconds", "peak MB above the model", "max abs diff vs hf"]
    return markdown_table(header, cells)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["smollm2", "llama1b"])
    parser.add_argument("--layers", type=int, help="override every shape's layer count (CPU smoke runs)")
    parser.add_argument("--vocab", type=int, help="override every shape's vocabulary (CPU smoke runs)")
    parser.add_argument("--prompt", type=int, default=100)
    parser.add_argument("--reasoning", type=int, default=200)
    parser.add_argument("--answer", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6, help="greedy steps per run (≥ 3: warm-up, timed, profiled)")
    parser.add_argument("--naive-budget", type=int, default=16384)
    parser.add_argument("--fast-budgets", type=int, nargs="+", default=[1024, 4096, 32768])
    parser.add_argument("--long", type=int, default=2000, help="tokens for the attention-backend check (0: none)")
    parser.add_argument("--time-limit", type=float, default=330, help="seconds after which no new row starts")
    parser.add_argument("--out-dir", type=Path, default=Path("results"), help="folder of gpu_check_<device>.md")
    parser.add_argument("--smoke", action="store_true", help=f"a small CPU run; its defaults: {SMOKE}")
    args = parser.parse_args(argv)
    if args.smoke:  # the smoke sizes replace the defaults, not the options given
        parser.set_defaults(**SMOKE)
        args = parser.parse_args(argv)
    if not 3 <= args.steps <= args.reasoning:
        parser.error("--steps must be at least 3 (a warm-up, a timed and a profiled step) and at most --reasoning")
    return args


def main(argv=None):
    import torch
    import transformers

    from prunelens.models import rounded_copy
    from prunelens.bench.run import matmul_flops
    from prunelens.report import write_report

    args = parse_args(argv)
    started = time.perf_counter()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    slug = name.lower().replace("nvidia ", "").split(" ")[0]
    rng = np.random.default_rng(0)
    rates = {dtype: matmul_flops(4096 if device.type == "cuda" else 512, 5, str(device), dtype) for dtype in DTYPES}
    models, body = {}, {}
    for shape in args.shapes:
        models[shape] = random_model(shape, device, args.layers, args.vocab)
        body[shape] = sum(p.numel() for n, p in models[shape].named_parameters() if "embed_tokens" not in n)
    planned = plan(args, body, rates)
    print(planned, flush=True)

    rows, skipped, floors = [], [], {}
    for shape, model in models.items():
        vocab = model.config.vocab_size
        chain = [rng.integers(100, vocab, k).tolist() for k in (args.prompt, args.reasoning, args.answer)]
        for dtype in DTYPES:
            scored = rounded_copy(model, dtype)
            floors[(shape, dtype)] = 2 * body[shape] / rates[dtype]
            for scorer, budget in [("naive", args.naive_budget)] + [("fast", b) for b in args.fast_budgets]:
                if time.perf_counter() - started > args.time_limit:
                    skipped.append([shape, dtype, scorer, budget, "skipped (time limit)"])
                    continue
                try:
                    r = run_scorer(scored, scorer, budget, chain, args.steps, device, shape, dtype)
                except torch.OutOfMemoryError:
                    skipped.append([shape, dtype, scorer, budget, "out of device memory"])
                    continue
                rows.append(r)
                print(f"{shape} {dtype} {scorer} {budget}: {r.seconds:.3f} s/step, {r.forwards:.1f} forwards/step",
                      flush=True)  # fmt: skip
            del scored
    backends = backend_table(models, args.long, device) if args.long else ""

    lines = [
        f"# GPU check: {name}, torch {torch.__version__}, transformers {transformers.__version__}",
        "",
        f"`{' '.join(['python experiments/gpu_check.py', *(sys.argv[1:] if argv is None else argv)])}`",
        "",
        f"Random-weight shapes {', '.join(f'{s} ({body[s] / 1e6:.0f} M non-embedding parameters)' for s in models)}; "
        f"random chain of {args.prompt} prompt, {args.reasoning} reasoning, {args.answer} answer tokens; "
        f"objective joint; {args.steps} greedy steps per run (step 1 warm-up, last profiled). Measured matmul "
        f"rate: {', '.join(f'{d} {r / 1e12:.1f} TFLOP/s' for d, r in rates.items())}. Columns: see the "
        "docstring of experiments/gpu_check.py.",
        "",
        planned,
        "",
        scorer_table(rows, floors, skipped),
    ]
    kernels = kernel_table(rows)
    if kernels:
        lines += ["", "Most frequent kernels in one step of fast at its largest budget:", "", kernels]
    if backends:
        lines += ["", backends]
    lines += ["", f"Total time {time.perf_counter() - started:.0f} s."]
    write_report(args.out_dir / f"gpu_check_{slug}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
