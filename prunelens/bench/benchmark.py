"""Scoring benchmark: naive vs fast exact vs approximate modes on GSM8K chains, as a Markdown table.

Every approximate mode is judged against the rounding floor, the exact algorithm in bfloat16 (always
run): it "meets the floor" when its Hit@|S| is at least the floor's in every band and its chains'
objective (rescored in the loaded dtype) is at least exact's at every keep fraction of the grid.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prunelens.core.errors import PrunelensError
from prunelens.memory import PeakMemory
from prunelens.core.progress import log_line
from prunelens.pruning.compare import DEFAULT_BANDS, hit_at_s, kendall_tau
from prunelens.pruning.greedy import EXACT, Approximation, greedy_prune
from prunelens.core.keep import kept_positions
from prunelens.core.objectives import Objective
from prunelens.pruning.scorers import make_scorer
from prunelens.report import markdown_table
from prunelens.selection import ids_by_length, split_ids
from prunelens.core.settings import setting


@dataclass(frozen=True)
class Mode:
    """A scorer, an approximation, and the dtype the model runs in (None: as loaded). Surrogate screening
    modes get the benchmark's surrogate predictor, rounded screening modes a screener over a rounded copy."""

    name: str
    scorer: str
    approximation: Approximation = EXACT
    dtype: str | None = None


def _surrogate(m: int, neighbors: int = 1, window: int = 0) -> Approximation:
    return Approximation(screen=m, rescore_every=0, neighbors=neighbors, window=window, screen_by="surrogate")


def _window(w: int, **extra) -> Approximation:
    """Window screening with m = 4 and no full rounds after the first, plus ``extra`` settings."""
    return Approximation(screen=4, rescore_every=0, window=w, **extra)


FLOOR = "fast bf16"


DEFAULT_MODES = (
    Mode("naive", "naive"),
    Mode("fast", "fast"),
    Mode("fast+block4", "fast", Approximation(block=4)),
    Mode("fast+block10%", "fast", Approximation(block=0.1)),
    Mode("fast+lazy4/n3", "fast", Approximation(screen=4, rescore_every=0, neighbors=3)),
    Mode("fast+window8/m4", "fast", _window(8)),
    Mode("fast+window16/m4", "fast", _window(16)),
    Mode("fast+surr2", "fast", _surrogate(2)),
    Mode("fast+surr4", "fast", _surrogate(4)),
    Mode("fast+surr8", "fast", _surrogate(8)),
    Mode("fast+surr4/n3", "fast", _surrogate(4, neighbors=3)),
    Mode("fast+surr4+window8", "fast", _surrogate(4, window=8)),
    Mode("fast+anchored16/m4", "fast", _window(16, anchored=True)),
    Mode("fast+bf16/v3", "fast", Approximation(rounded="bfloat16", verify=3)),
    Mode("fast+window16/m4+bf16/v3", "fast", _window(16, rounded="bfloat16", verify=3)),
    Mode("fast+window8/m4+bf16/v3", "fast", _window(8, rounded="bfloat16", verify=3)),
    Mode("fast+anchored16/m4+bf16/v3", "fast", _window(16, anchored=True, rounded="bfloat16", verify=3)),
    Mode("fast+anchored8/m4+bf16/v3", "fast", _window(8, anchored=True, rounded="bfloat16", verify=3)),
    # the exact algorithm in bfloat16: how far rounding alone moves greedy orders (the floor for agreement,
    # always run); last, because its model copy stays in the process's resident memory after it is freed
    Mode(FLOOR, "fast", dtype="bfloat16"),
)


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


def keep_grid(keep: float, step: float = 0.1) -> list[float]:
    """Keep fractions 1 − step, 1 − 2·step, … down to ``keep`` (which ends the grid)."""
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
    keep fractions of ``grid`` (default ``keep_grid(keep)``) by the naive scorer on the loaded model, so
    objectives compare across dtypes. Surrogate screening modes need ``predictor``; the tokens of its
    hook passes count among the mode's tokens computed, as do a rounded screener's (at full cost)."""
    from prunelens.models import rounded_copy

    grid = keep_grid(keep) if grid is None else grid
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
                scorer = make_scorer(mode.scorer, model, token_budget)
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


def meets_floor(hits, floor_hits, deltas) -> bool:
    """Whether a mode meets the rounding floor: Hit@|S| ≥ the floor's in every band (bands where either is
    NaN, i.e. empty, say nothing) and Δ objective ≥ 0 at every keep fraction of the grid."""
    bands_ok = all(h >= f for h, f in zip(hits, floor_hits) if np.isfinite(h) and np.isfinite(f))
    return bands_ok and all(d >= 0 for d in deltas if np.isfinite(d))


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


def modes_table(chains, results, flops: float, params: int, reference: str = "naive", floor: str = FLOOR) -> str:
    """The benchmark table; agreement columns compare each mode with the exact ``reference`` orders, and
    "meets floor" judges it against the ``floor`` mode (see ``meets_floor``; "–" without a floor run)."""
    base = results[reference]
    floor_hits = agreement(chains, base, results[floor]).hits if floor in results else None
    header = ["mode", "s/example", "cand. tok/s", "tokens computed", "speed-up vs naive", "FLOP-bound speed-up",
              "of bound", "FLOP floor s/ex", "identical order", "Kendall tau",
              *(f"Hit@S {h:g}→{lo:g}" for h, lo in DEFAULT_BANDS), "Δ objective at end (nats)",
              "min Δ objective over grid", "meets floor", "peak RSS MB"]  # fmt: skip
    rows = []
    for name, r in results.items():
        seconds, tokens = np.mean(r.seconds), np.mean(r.tokens)
        bound = np.mean(base.tokens) / tokens
        floor_s = tokens * 2 * params / flops
        same = all(a == b for a, b in zip(r.orders, base.orders))
        taus = [kendall_tau(a, b, len(c.reasoning_ids)) for a, b, c in zip(base.orders, r.orders, chains)]
        judged = agreement(chains, base, r)
        verdict = "–" if floor_hits is None else "no"
        if floor_hits is not None and meets_floor(judged.hits, floor_hits, judged.deltas):
            verdict = "yes"
        rows.append([name, f"{seconds:.1f}", f"{np.sum(r.candidate_tokens) / np.sum(r.seconds):.0f}", f"{tokens:.0f}",
                     f"{judged.speedup:.1f}×", f"{bound:.1f}×", f"{judged.speedup / bound:.0%}", f"{floor_s:.1f}",
                     "yes" if same else "no", f"{np.mean(taus):.3f}", *(f"{h:.2f}" for h in judged.hits),
                     f"{judged.deltas[-1]:+.3f}", f"{np.nanmin(judged.deltas):+.3f}", verdict,
                     f"{r.peak_rss_mb:.0f}"])  # fmt: skip
    return markdown_table(header, rows)


def pareto_figure(chains, results, path, reference: str = "naive", floor: str = FLOOR, title: str = ""):
    """Speed-up vs Hit@|S| per band (the floor's as a dashed line) and vs the minimum Δ objective over the
    grid (0 dashed), one point per mode."""
    from prunelens.plots import Scatter, scatter_figure

    base = results[reference]
    judged = {name: agreement(chains, base, r) for name, r in results.items() if name != reference}
    floor_hits = judged[floor].hits if floor in judged else [None] * len(DEFAULT_BANDS)
    panels = {f"Hit@S {h:g}→{lo:g}": Scatter({n: (a.speedup, a.hits[b]) for n, a in judged.items()}, "Hit@|S|",
                                              floor_hits[b], f"{floor} (floor)")
              for b, (h, lo) in enumerate(DEFAULT_BANDS)}  # fmt: skip
    panels["min Δ objective over the keep grid"] = Scatter(
        {n: (a.speedup, float(np.nanmin(a.deltas))) for n, a in judged.items()}, "nats vs exact", 0.0, "exact"
    )
    return scatter_figure(panels, path, title=title, xlabel=f"speed-up vs {reference}", logx=True, columns=2)


def per_chain_table(chains, results, reference: str = "naive", exact: str = "fast") -> str:
    """Per chain: lengths, the FLOP-bound speed-up (naive tokens / fast tokens) and the achieved one."""
    naive, fast = results[reference], results[exact]
    rows = []
    for i, chain in enumerate(chains):
        bound = naive.tokens[i] / fast.tokens[i]
        achieved = naive.seconds[i] / fast.seconds[i]
        rows.append([chain.id, len(chain.prompt_ids), len(chain.reasoning_ids), len(chain.answer_ids), naive.tokens[i],
                     fast.tokens[i], f"{bound:.1f}×", f"{achieved:.1f}×", f"{achieved / bound:.0%}"])  # fmt: skip
    header = ["chain", "prompt", "reasoning", "answer", "naive tokens", "fast tokens", "bound", "achieved", "of bound"]
    return markdown_table(header, rows)


@dataclass
class BenchConfig:
    """`prunelens bench` (and experiments/bench_pruning.py): which chains, which modes, where the report goes."""

    n: int = setting(5, "GSM8K test gold chains (the first ones within --max-tokens)", minimum=1)
    max_tokens: int = setting(80, "skip test chains with more reasoning tokens (0: no limit; naive exact on a "
                              "125-token chain takes about 25 min on 2 cores)", minimum=0)  # fmt: skip
    keep: float = setting(0.5, "keep fraction greedy prunes to", minimum=0.0, maximum=1.0)
    objective: str = setting("joint", "joint | answer")
    token_budget: int = setting(1024, "tokens per scorer forward (bounds memory)", minimum=1)
    modes: list[str] = setting(default_factory=lambda: [m.name for m in DEFAULT_MODES], cli_type=str,
                               parse=split_ids, help="comma-separated modes (the floor, fast bf16, always runs)")  # fmt: skip
    synthetic_tokens: int = setting(0, "length of a synthetic long chain to time a few steps on (0: none; "
                                    "experiments/bench_long_chains.py measures long chains)", minimum=0)
    synthetic_steps: int = setting(2, "greedy steps measured on the synthetic chain", minimum=1)
    out: str | None = setting("results/bench_pruning.md", "Markdown report path")
    pareto: str | None = setting("results/bench_pruning_pareto.png", "Pareto plot path")
    surrogate_chains: int = setting(40, "GSM8K train chains the screening surrogate is trained on", minimum=1)
    surrogate_dir: str = setting("runs/bench-surrogate", "where the screening surrogate is cached")

    def __post_init__(self):
        known = [m.name for m in DEFAULT_MODES]
        unknown = [m for m in self.modes if m not in known]
        if unknown:
            raise PrunelensError(f"unknown benchmark mode {unknown[0]!r}; known: {', '.join(known)}")
        Objective.parse(self.objective)  # an unknown objective is one PrunelensError line


def benchmark_surrogate(count: int, folder: Path, log=log_line) -> Path:
    """The surrogate that screens the benchmark's candidates, trained once and then reused from ``folder``:
    the default MLP (Pearson loss) on step-0 exact targets (float32, objective joint, keep 1.0) and
    blockwise attention features of the first ``count`` GSM8K train gold chains, disjoint from the
    test chains the benchmark prunes."""
    from prunelens.probes.run import FeaturesConfig, run_features
    from prunelens.probes.store import store_meta
    from prunelens.analysis.surrogate_data import load_examples_for_surrogate
    from prunelens.probes.surrogate import (
        SurrogateConfig,
        train_surrogate,
    )
    from prunelens.pruning.run import PruneConfig, run_pruning

    path = Path(folder) / f"surrogate-gsm8k-train{count}.pt"
    if path.is_file():
        return path
    common = dict(model="smollm2-135m", dataset="gsm8k", split="train", limit=count, skip_bad=True)
    targets = PruneConfig(**common, steps=1, out=Path(folder) / "targets")
    features = FeaturesConfig(**common, backend="hf_blockwise", out=Path(folder) / "features")
    run_pruning(targets, progress=False, log=log)
    run_features(features, progress=False, log=log)
    data = load_examples_for_surrogate(features.output_dir(), targets.output_dir(), warn=log)
    surrogate = train_surrogate(data, SurrogateConfig(), meta=store_meta(features.output_dir()))
    surrogate.save(path)
    log(f"trained the benchmark surrogate on {len(data)} GSM8K train chains: {path}")
    return path


def synthetic_chain(loaded, length: int):
    """A long chain: GSM8K train gold reasoning texts joined until ``length`` reasoning tokens."""
    from prunelens.datasets import get_benchmark, load_examples
    from prunelens.datasets.tokenize import tokenize_chain

    texts, examples = [], load_examples("gsm8k", "train")
    for example in examples:
        texts.append(example.reasoning)
        joined = type(example)(f"synthetic-{length}", example.question, example.answer, "\n".join(texts))
        chain = tokenize_chain(loaded.tokenizer, get_benchmark("gsm8k"), joined, None)
        if len(chain.reasoning_ids) >= length:
            return type(chain)(**{**chain.__dict__, "reasoning_ids": chain.reasoning_ids[:length]})
    raise ValueError("not enough text for the synthetic chain")


def run_benchmark(config: BenchConfig, log=log_line) -> str:
    """Run the benchmark and return (and optionally write) the Markdown report."""
    import torch

    from prunelens.datasets import get_benchmark, load_examples
    from prunelens.models import load_model
    from prunelens.datasets.tokenize import tokenize_chain

    stage = time.perf_counter()
    loaded = load_model("smollm2-135m")
    bench = get_benchmark("gsm8k")
    examples = load_examples("gsm8k", "test")
    wanted = set(ids_by_length(examples, loaded.tokenizer, 1, config.max_tokens or math.inf, config.n))
    examples = [e for e in examples if e.id in wanted]
    chains = [tokenize_chain(loaded.tokenizer, bench, e, loaded.max_positions) for e in examples]
    modes = [m for m in DEFAULT_MODES if m.name in config.modes or m.name == FLOOR]  # the floor always runs
    predictor, surrogate_note = None, []
    if any(m.approximation.by_surrogate for m in modes):
        from prunelens.pruning.surrogate_screen import load_predictor

        surrogate_path = benchmark_surrogate(config.surrogate_chains, Path(config.surrogate_dir), log)
        predictor = load_predictor(surrogate_path, loaded, "smollm2-135m")
        surrogate_note = [f"Surrogate screening (fast+surr*: m, /n neighbors, +window w) uses {surrogate_path}: "
                          f"the default MLP surrogate (Pearson loss) trained on step-0 exact targets and blockwise "
                          f"attention features of the first {config.surrogate_chains} GSM8K train gold chains "
                          "(disjoint from these test chains); its per-round hook pass counts in its time and tokens."]  # fmt: skip
    flops = matmul_flops()
    params = sum(p.numel() for p in loaded.model.parameters())
    log(f"matmul rate {flops / 1e9:.1f} GFLOP/s, {params / 1e6:.1f} M parameters, torch threads {torch.get_num_threads()}")
    results = run_modes(loaded, chains, modes, config.objective, config.keep, config.token_budget, progress=log,
                        predictor=predictor)  # fmt: skip
    report = [
        f"# Greedy pruning benchmark: smollm2-135m, {len(chains)} GSM8K test gold chains"
        f"{'' if not config.max_tokens else f' of at most {config.max_tokens} reasoning tokens'}, objective "
        f"{config.objective}, keep {config.keep}, token budget {config.token_budget}",
        "",
        f"Machine: {torch.get_num_threads()} threads, measured float32 matmul {flops / 1e9:.1f} GFLOP/s; "
        f"FLOP floor = tokens computed × 2 × {params / 1e6:.1f} M parameters ÷ that rate.",
        "Agreement columns compare with naive exact pruning. Hit@S per keep-fraction band ρ → ρ': S = the tokens "
        "exact pruning deletes in the band; the mode's deletion order ranks the tokens exact still has at ρ, "
        "and Hit@S is the share of S among its first |S| (docs/design.md). Δ objective = the mode's chain's objective "
        "minus exact's (nats, mean over chains, both rescored in float32 by the naive scorer) at the end and, minimum, "
        f"over the keep grid {', '.join(f'{k:g}' for k in keep_grid(config.keep))}. Meets floor: Hit@S ≥ {FLOOR}'s "
        "in every band and Δ objective ≥ 0 at every keep of the grid.",
        *surrogate_note,
        "",
        modes_table(chains, results, flops, params),
        "",
        "## Per chain: FLOP-bound speed-up (naive tokens ÷ fast tokens) and achieved speed-up of fast",
        "",
        per_chain_table(chains, results),
    ]
    if config.pareto:
        pareto_figure(chains, results, config.pareto, title=f"smollm2-135m, {len(chains)} GSM8K test chains: "
                      "speed-up vs agreement with exact greedy")  # fmt: skip
        report += ["", f"Pareto plot: {Path(config.pareto).name}"]
    if config.synthetic_tokens:
        long_chain = synthetic_chain(loaded, config.synthetic_tokens)
        fast_modes = [m for m in DEFAULT_MODES if m.name == "fast"]
        long = run_modes(loaded, [long_chain], fast_modes, config.objective, 0.0, config.token_budget,
                         max_steps=config.synthetic_steps, progress=log)["fast"]  # fmt: skip
        report += ["", f"## Synthetic {config.synthetic_tokens}-token chain, first {config.synthetic_steps} steps",
                   "", "| mode | s/step | tokens computed | peak RSS MB |", "|---|---|---|---|",
                   f"| fast | {long.seconds[0] / config.synthetic_steps:.1f} | {long.tokens[0]} | {long.peak_rss_mb:.0f} |"]  # fmt: skip
        if "naive" in results:
            naive = results["naive"]
            rate = np.sum(naive.tokens) / np.sum(naive.seconds)
            estimate = long.candidate_tokens[0] / rate / config.synthetic_steps
            report.append(f"| naive (estimated: {long.candidate_tokens[0]} tokens at its measured {rate:.0f} tok/s) "
                          f"| {estimate:.1f} | {long.candidate_tokens[0]} | – |")  # fmt: skip
    report += ["", f"Total benchmark time {time.perf_counter() - stage:.0f} s."]
    text = "\n".join(report) + "\n"
    if config.out:
        Path(config.out).parent.mkdir(parents=True, exist_ok=True)
        Path(config.out).write_text(text)
    return text
