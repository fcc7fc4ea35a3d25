"""Where exact greedy pruning (the fast scorer) spends its time: torch's profiler over the first steps of greedy
pruning on GSM8K test gold chains, per model, grouped into the output layer's vocabulary tiles (the objective's
log-probabilities), the other linear layers, attention, the rest of torch, and Python outside torch ops.

    python experiments/profile_greedy.py                                   # smollm2-135m and gemma3-270m
    python experiments/profile_greedy.py --models smollm2-135m --steps 2   # a quick look

Run it on quiet cores: the shares are of wall time. Writes results/profile_greedy.md.
"""

import argparse
import time
from pathlib import Path

import torch

from prunelens.datasets import get_benchmark, load_examples
from prunelens.datasets.tokenize import tokenize_chain
from prunelens.memory import PeakMemory
from prunelens.models import load_model
from prunelens.pruning.greedy import greedy_prune
from prunelens.pruning.scorers import make_scorer
from prunelens.report import markdown_table, write_report
from prunelens.selection import ids_by_length

GROUPS = {  # an op's time goes to the first group whose marker is in its name or an enclosing span's
    "output layer tiles (target_logprobs)": ("target_logprobs",),
    "attention": ("scaled_dot_product", "attention", "softmax"),
    "other linear layers": ("aten::linear", "aten::addmm", "aten::mm", "aten::matmul", "aten::bmm"),
}


def profile_chain(loaded, chain, steps: int, token_budget: int) -> tuple[float, dict[str, float]]:
    """Wall seconds of ``steps`` greedy steps on one chain and the CPU seconds of each part: every op inside the
    output layer's ``target_logprobs`` span counts there, every other op by its name (``GROUPS``), the rest as
    other torch ops; Python is the wall time outside any op."""
    from torch.profiler import ProfilerActivity, profile

    scorer = make_scorer("fast", loaded.model, token_budget)
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        greedy_prune(scorer, chain.prompt_ids, chain.reasoning_ids, chain.answer_ids, "joint", keep=0.0,
                     max_steps=steps)  # fmt: skip
    wall = time.perf_counter() - started
    parts = {name: 0.0 for name in GROUPS} | {"other torch ops": 0.0}
    for event in prof.events():
        spans, parent = [], event
        while parent is not None:
            spans.append(parent.name)
            parent = parent.cpu_parent
        if event.name == "target_logprobs":
            continue  # its self time (Python between its ops) is in the wall − ops remainder
        # an op counts in the first group that its own name or an enclosing span names (attention's matmuls run
        # inside scaled_dot_product_attention, the output layer's inside target_logprobs)
        part = next((g for g, markers in GROUPS.items() if any(m in span for span in spans for m in markers)),
                    "other torch ops")  # fmt: skip
        parts[part] += event.self_cpu_time_total / 1e6
    parts["Python outside torch ops"] = max(0.0, wall - sum(parts.values()))
    return wall, parts


def step_memory(loaded, chain, token_budget: int) -> float:
    """How far one exact greedy step on ``chain`` raises this process's resident memory (MB) above what it holds
    before the step, measured on a second step after a first one has paged in every weight (no profiler)."""
    import psutil

    def step():
        scorer = make_scorer("fast", loaded.model, token_budget)
        greedy_prune(scorer, chain.prompt_ids, chain.reasoning_ids, chain.answer_ids, "joint", keep=0.0, max_steps=1)

    step()
    before = psutil.Process().memory_info().rss / 2**20
    with PeakMemory(interval=0.01) as memory:
        step()
    return memory.peak_mb - before


def model_mb(model) -> float:
    """The model's own memory: its parameters and buffers (MB)."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()]) / 2**20


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["smollm2-135m", "gemma3-270m"])
    parser.add_argument("--chains", type=int, default=3, help="GSM8K test gold chains of 25–80 reasoning tokens")
    parser.add_argument("--steps", type=int, default=4, help="greedy steps profiled per chain")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--token-budget", type=int, default=1024)
    parser.add_argument("--memory-tokens", type=int, default=80, help="reasoning tokens of the chain whose exact "
                        "step's peak memory is measured (the longest GSM8K test chain up to this length)")
    parser.add_argument("--out", type=Path, default=Path("results/profile_greedy.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows, memory_rows = [], []
    for model in args.models:
        loaded = load_model(model)
        resident = model_mb(loaded.model)
        examples = load_examples("gsm8k", "test")
        wanted = ids_by_length(examples, loaded.tokenizer, 25, 80, args.chains)
        bench = get_benchmark("gsm8k")
        chains = [tokenize_chain(loaded.tokenizer, bench, e, loaded.max_positions) for e in examples if e.id in wanted]
        wall, totals = 0.0, {}
        for chain in chains:
            seconds, groups = profile_chain(loaded, chain, args.steps, args.token_budget)
            wall += seconds
            for name, value in groups.items():
                totals[name] = totals.get(name, 0.0) + value
        lengths = ", ".join(str(len(c.reasoning_ids)) for c in chains)
        for name, value in totals.items():
            rows.append([model, f"{len(chains)} ({lengths} tokens)", name, f"{value:.2f}", f"{100 * value / wall:.0f}%"])
        rows.append([model, "", "wall time", f"{wall:.2f}", "100%"])
        candidates = set(ids_by_length(examples, loaded.tokenizer, 1, args.memory_tokens, 200))
        chain = max((tokenize_chain(loaded.tokenizer, bench, e, loaded.max_positions) for e in examples
                     if e.id in candidates), key=lambda c: len(c.reasoning_ids))  # fmt: skip
        extra = step_memory(loaded, chain, args.token_budget)
        memory_rows.append([model, f"{chain.id} ({len(chain.reasoning_ids)} tokens)", f"{resident:.0f}",
                            f"{extra:.0f}", f"{(resident + extra) / resident:.2f}×"])  # fmt: skip
    text = "\n".join([
        "# Where exact greedy pruning spends its time (fast scorer, objective joint)",
        "",
        f"`python experiments/profile_greedy.py --steps {args.steps} --chains {args.chains} --threads {args.threads}`: "
        f"torch's profiler over the first {args.steps} greedy steps of each chain (GSM8K test gold chains of 25–80 "
        f"reasoning tokens), torch threads {args.threads}. The output layer is its `target_logprobs` span (vocabulary "
        "tiles: matmul, gather, logsumexp); the other groups are self times of the remaining ops; Python is wall time "
        "outside any torch op.",
        "",
        markdown_table(["model", "chains", "part", "seconds", "share of wall"], rows),
        "",
        f"Peak memory of one exact step (token budget {args.token_budget}) on the longest of the first 200 chains of at "
        f"most {args.memory_tokens} reasoning tokens: how far the step raises the process's resident memory (after a "
        "first step paged in every weight), against the model's own memory, its parameters and buffers (goal: "
        "model + step below 1.5× the model):",
        "",
        markdown_table(["model", "chain", "model MB (parameters, buffers)", "step peak above it MB",
                        "(model + step) ÷ model"], memory_rows),
    ]) + "\n"  # fmt: skip
    write_report(args.out, text)


if __name__ == "__main__":
    main()
