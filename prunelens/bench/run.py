"""Running the benchmark's modes and judging them: every chain pruned under every mode and rescored along a
keep grid, agreement with the exact reference orders, the rounding-floor criterion, the tokens naive scoring
computes, the measured matmul rate (the FLOP floor's denominator) and the synthetic long chain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from prunelens.core.keep import kept_positions
from prunelens.datasets import get_benchmark, load_examples
from prunelens.datasets.tokenize import tokenize_chain
from prunelens.memory import PeakMemory
from prunelens.models import rounded_copy
from prunelens.pruning.compare import DEFAULT_BANDS, hit_at_s
from prunelens.pruning.greedy import greedy_prune
from prunelens.pruning.scorers import make_scorer


@dataclass
class ModeResult:
    seconds: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    candidate_tokens: list[int] = field(default_factory=list)
    orders: list[list[int]] = field(default_factory=list)
    objectives: list[list[float]] = field(default_factory=list)  # per chain, at each keep of the grid
    peak_rss_mb: float = 0.0


def matmul_flops(size: int = 1024, repeats: int = 5, device: str = "cpu", dtype: str = "float32") -> float:
    """The measured matmul rate (FLOP/s) of ``device`` in ``dtype``, best of ``repeats``."""
    import torch

    a, b = (torch.randn(size, size, device=device, dtype=getattr(torch, dtype)) for _ in range(2))

    def product():
        a @ b
        if a.device.type == "cuda":
            torch.cuda.synchronize()

    product()
    best = min(_timed(product) for _ in range(repeats))
    return 2 * size**3 / best


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def candidate_tokens(prompt_len: int, n: int, answer_len: int, steps: int) -> int:
    """Tokens that naive scoring pushes through the model: every candidate's whole sequence."""
    return sum((n - t) * (prompt_len + n - t - 1 + answer_len) for t in range(steps))


def keeps_down_to(keep: float, step: float = 0.1) -> list[float]:
    """The keep fractions the benchmark rescores chains at: 1 − step, 1 − 2·step, … down to ``keep`` (which
    ends the list)."""
    grid = [round(1 - step * i, 10) for i in range(1, int((1 - keep) / step + 1e-9) + 1)]
    return grid if grid and abs(grid[-1] - keep) < 1e-9 else grid + [keep]


def grid_objectives(scorer, chain, order, grid, objective) -> list[float]:
    """The objective of the chain ``order`` leaves at each keep fraction of ``grid`` (NaN where it stopped short)."""
    n, values = len(chain.reasoning_ids), []
    for keep in grid:
        try:
            kept = [chain.reasoning_ids[p] for p in kept_positions(order, n, keep)]
        except ValueError:
            values.append(float("nan"))
            continue
        values.append(float(scorer.score(chain.prompt_ids, [kept], chain.answer_ids, objective)[0]))
    return values


def run_modes(loaded, chains, modes, objective="joint", keep=0.5, token_budget=1024, max_steps=None, progress=print,
              grid=None, predictor=None):  # fmt: skip
    """Prune every chain under every mode; returns {mode name: ModeResult}. Each chain is rescored at the
    keep fractions of ``grid`` (default ``keeps_down_to(keep)``) by the naive scorer on the loaded model, so
    objectives compare across dtypes. Surrogate screening modes need ``predictor``; the tokens of its
    hook passes count among the mode's tokens computed, as do a rounded screener's (at full cost)."""
    grid = keeps_down_to(keep) if grid is None else grid
    rescorer = make_scorer("naive", loaded.model, token_budget)
    results = {}
    for mode in modes:
        result = ModeResult()
        model = loaded.model if mode.dtype is None else rounded_copy(loaded.model, mode.dtype)
        mode_predictor = predictor if mode.approximation.by_surrogate else None
        rounded = mode.approximation.rounded
        screen_model = None if rounded is None else rounded_copy(model, rounded)
        with PeakMemory() as memory:
            for chain in chains:
                scorer = make_scorer(mode.scorer, model, token_budget, mode.options, loaded.tokenizer)
                screener = None if screen_model is None else make_scorer(mode.scorer, screen_model, token_budget)
                hooked = mode_predictor.tokens_computed if mode_predictor is not None else 0
                out = greedy_prune(scorer, chain.prompt_ids, chain.reasoning_ids, chain.answer_ids, objective,
                                   keep, max_steps, approximation=mode.approximation,
                                   predictor=mode_predictor, screener=screener)  # fmt: skip
                hooked = mode_predictor.tokens_computed - hooked if mode_predictor is not None else 0
                screened = screener.stats.tokens_computed if screener is not None else 0
                result.seconds.append(out.seconds)
                result.tokens.append(scorer.stats.tokens_computed + hooked + screened)
                result.candidate_tokens.append(
                    candidate_tokens(len(chain.prompt_ids), len(chain.reasoning_ids), len(chain.answer_ids),
                                     len(out.deletion_order))  # fmt: skip
                )
                result.orders.append(out.deletion_order)
                result.objectives.append(grid_objectives(rescorer, chain, out.deletion_order, grid, objective))
                progress(f"{mode.name:>24} {chain.id}: {out.seconds:7.1f} s, {scorer.stats.tokens_computed} tokens")
        result.peak_rss_mb = memory.peak_mb
        results[mode.name] = result
    return results


def meets_floor(hits, floor_hits, deltas, floor_deltas) -> bool:
    """Whether a mode is at least as faithful as the rounding floor (exact greedy in bfloat16), both measured
    against float32 exact: Hit@|S| ≥ the floor's in every band and Δ objective ≥ the floor's Δ objective at every
    keep fraction of the grid (a band or keep where either value is NaN, i.e. empty, says nothing). The floor
    meets it by definition."""
    def at_least(values, reference):
        return all(v >= r for v, r in zip(values, reference) if np.isfinite(v) and np.isfinite(r))

    return at_least(hits, floor_hits) and at_least(deltas, floor_deltas)


@dataclass
class Agreement:
    """One mode against the exact reference: mean speed-up, Hit@|S| per band, mean Δ objective per grid keep."""

    speedup: float
    hits: list[float]
    deltas: list[float]


def agreement(chains, base: ModeResult, r: ModeResult) -> Agreement:
    hits = [np.nanmean([hit_at_s(a, b, len(c.reasoning_ids), h, lo) for a, b, c in zip(base.orders, r.orders, chains)])
            for h, lo in DEFAULT_BANDS]  # fmt: skip
    deltas = np.nanmean(np.array(r.objectives) - np.array(base.objectives), axis=0)
    return Agreement(float(np.mean(base.seconds) / np.mean(r.seconds)), [float(h) for h in hits], list(deltas))


def synthetic_chain(loaded, dataset: str, length: int):
    """A long chain: ``dataset``'s train gold reasoning texts joined until ``length`` reasoning tokens."""
    texts, examples = [], load_examples(dataset, "train")
    for example in examples:
        texts.append(example.reasoning)
        joined = type(example)(f"synthetic-{length}", example.question, example.answer, "\n".join(texts))
        chain = tokenize_chain(loaded.tokenizer, get_benchmark(dataset), joined, None)
        if len(chain.reasoning_ids) >= length:
            return type(chain)(**{**chain.__dict__, "reasoning_ids": chain.reasoning_ids[:length]})
    raise ValueError("not enough text for the synthetic chain")
