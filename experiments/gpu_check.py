"""Scorer and probe checks on an accelerator, with a randomly initialised smollm2-shaped model.

No weights travel to a GPU machine here, so the model is SmolLM2-135M's architecture (30 layers, 9
query / 3 KV heads, vocab 49,152) with random weights: exactness and speed do not depend on the
weights. Prints a Markdown report: fast vs naive agreement in float32, scoring throughput in float32
and bfloat16, and the received-attention backends (hf vs hf_blockwise) on a long sequence with peak
device memory.

    python experiments/gpu_check.py --device cuda
    python experiments/gpu_check.py --device cpu --reasoning 12 --layers 2 --long 64   # a smoke run
"""

import argparse
import time

import numpy as np


def smollm2_shaped(layers, dtype, device, seed=0):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=layers,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                         rope_theta=100000.0, tie_word_embeddings=True)  # fmt: skip
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    return model.to(device).eval()


def synchronize(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None):
    import torch

    from prunelens.probes.backends import HFBlockwiseBackend, HFEagerBackend
    from prunelens.pruning.greedy import greedy_prune
    from prunelens.pruning.prefix_scorer import PrefixCacheScorer
    from prunelens.pruning.scorer import HFScorer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--prompt", type=int, default=110)
    parser.add_argument("--reasoning", type=int, default=100)
    parser.add_argument("--answer", type=int, default=6)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--long", type=int, default=2000, help="tokens for the attention-backend check")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    prompt, reasoning, answer = (rng.integers(100, 40000, k).tolist() for k in (args.prompt, args.reasoning, args.answer))
    device = torch.device(args.device)
    print(f"# GPU check: {torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu'}, torch {torch.__version__}\n")

    model = smollm2_shaped(args.layers, "float32", device)
    naive = greedy_prune(HFScorer(model, 8192), prompt, reasoning, answer, "joint", 0.0, args.steps)
    fast = greedy_prune(PrefixCacheScorer(model, 8192), prompt, reasoning, answer, "joint", 0.0, args.steps)
    same = fast.deletion_order == naive.deletion_order
    diff = np.nanmax(np.abs(fast.candidate_scores - naive.candidate_scores))
    print(f"float32, {args.steps} steps: identical deletion order: {same}; max |fast − naive| score: {diff:.2e}\n")

    print("| dtype | scorer | token budget | s/step | tokens computed/step | tokens/s | speed-up | FLOP-bound |")
    print("|---|---|---|---|---|---|---|---|")
    for dtype in ("float32", "bfloat16"):
        model = smollm2_shaped(args.layers, dtype, device)
        timing = {}
        for name, scorer_type, budget in (("naive", HFScorer, 16384), ("fast", PrefixCacheScorer, 16384),
                                          ("fast", PrefixCacheScorer, 4096)):  # fmt: skip
            scorer = scorer_type(model, budget)
            greedy_prune(scorer, prompt, reasoning, answer, "joint", 0.0, 1)  # warm-up
            scorer = scorer_type(model, budget)
            synchronize(device)
            started = time.perf_counter()
            greedy_prune(scorer, prompt, reasoning, answer, "joint", 0.0, args.steps)
            synchronize(device)
            per_step = (time.perf_counter() - started) / args.steps
            tokens = scorer.stats.tokens_computed / args.steps
            timing.setdefault("naive", (per_step, tokens))
            base_seconds, base_tokens = timing["naive"]
            print(f"| {dtype} | {name} | {budget} | {per_step:.3f} | {tokens:.0f} | {tokens / per_step:.0f} | "
                  f"{base_seconds / per_step:.1f}× | {base_tokens / tokens:.1f}× |")  # fmt: skip

    model = smollm2_shaped(args.layers, "float32", device)
    ids = rng.integers(100, 40000, args.long).tolist()
    print(f"\n| backend | {args.long} tokens: seconds | peak device memory above the model (MB) | max |diff| vs hf |")
    print("|---|---|---|---|")
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
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device.type == "cuda" else float("nan")
        reference = received if reference is None else reference
        print(f"| {backend.name} | {seconds:.2f} | {peak:.0f} | {np.abs(received - reference).max():.1e} |")


if __name__ == "__main__":
    main()
