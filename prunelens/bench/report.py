"""Scoring benchmark: naive vs fast exact vs approximate modes on test gold chains, as a Markdown report.

Every approximate mode is judged against the rounding floor, the exact algorithm in bfloat16 (always run): it
"meets the floor" when it is at least as faithful to float32 exact as the floor is (``meets_floor``: Hit@|S| in
every band, Δ objective at every keep of the grid). A run saves what it measured (``BenchData``) beside its
report; ``--from-data`` rebuilds the report and the Pareto plot from such files without pruning.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from prunelens.bench.data import BenchData
from prunelens.bench.modes import DEFAULT_MODES, FLOOR, BenchConfig, Mode
from prunelens.bench.run import agreement, keeps_down_to, matmul_flops, meets_floor, run_modes, synthetic_chain
from prunelens.bench.surrogate import benchmark_surrogate
from prunelens.core.errors import PrunelensError
from prunelens.core.jsonl import write_atomic
from prunelens.core.progress import log_line
from prunelens.datasets import get_benchmark, load_examples
from prunelens.datasets.tokenize import tokenize_chain
from prunelens.models import load_model
from prunelens.plots import Scatter, scatter_figure
from prunelens.pruning.compare import DEFAULT_BANDS, kendall_tau
from prunelens.pruning.server_scorer import ServerSettings
from prunelens.pruning.surrogate_screen import load_predictor
from prunelens.report import markdown_table
from prunelens.selection import ids_by_length


def modes_table(chains, results, flops: float, params: int, reference: str = "naive", floor: str = FLOOR) -> str:
    """The benchmark table; agreement columns compare each mode with the exact ``reference`` orders, and
    "meets floor" judges it against the ``floor`` mode (see ``meets_floor``; "–" without a floor run, "exact" for
    modes whose orders are the reference's)."""
    base = results[reference]
    floor_judged = agreement(chains, base, results[floor]) if floor in results else None
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
        if floor_judged is None:
            verdict = "–"
        elif name == floor:
            verdict = "yes"  # by definition
        elif same:  # the criterion judges approximations; an exact order can fail it where the floor's beats exact's
            verdict = "exact"
        else:
            verdict = "yes" if meets_floor(judged.hits, floor_judged.hits, judged.deltas, floor_judged.deltas) else "no"
        rows.append([name, f"{seconds:.1f}", f"{np.sum(r.candidate_tokens) / np.sum(r.seconds):.0f}", f"{tokens:.0f}",
                     f"{judged.speedup:.1f}×", f"{bound:.1f}×", f"{judged.speedup / bound:.0%}", f"{floor_s:.1f}",
                     "yes" if same else "no", f"{np.mean(taus):.3f}", *(f"{h:.2f}" for h in judged.hits),
                     f"{judged.deltas[-1]:+.3f}", f"{np.nanmin(judged.deltas):+.3f}", verdict,
                     f"{r.peak_rss_mb:.0f}"])  # fmt: skip
    return markdown_table(header, rows)


def pareto_figure(runs: dict[str, BenchData], path, reference: str = "naive", floor: str = FLOOR, title: str = ""):
    """One row of panels per model ({model: data}): speed-up vs Hit@|S| per band (the floor's dashed) and vs the
    minimum Δ objective over the grid (the floor's dashed, exact's 0 dotted). Modes on the Pareto frontier of a
    panel are labelled on it; every mode has its own colour and marker, named in the legend."""
    panels = {}
    for model, data in runs.items():
        chains, results = data.tokenized_chains(), data.results
        base = results[reference]
        judged = {name: agreement(chains, base, r) for name, r in results.items() if name != reference}
        floor_judged = judged.get(floor)
        for b, (h, lo) in enumerate(DEFAULT_BANDS):
            panels[f"{model}: Hit@|S| {h:g}→{lo:g}"] = Scatter(
                {n: (a.speedup, a.hits[b]) for n, a in judged.items()}, "Hit@|S| against exact",
                floor_judged.hits[b] if floor_judged else None, f"{floor} (floor)")  # fmt: skip
        panels[f"{model}: min Δ objective over the keep grid"] = Scatter(
            {n: (a.speedup, float(np.nanmin(a.deltas))) for n, a in judged.items()}, "nats against exact",
            float(np.nanmin(floor_judged.deltas)) if floor_judged else None, f"{floor} (floor)", 0.0)  # fmt: skip
    return scatter_figure(panels, path, title=title, xlabel=f"speed-up vs {reference}", logx=True,
                          columns=len(DEFAULT_BANDS) + 1, label="frontier")  # fmt: skip


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


def run_benchmark(config: BenchConfig, log=log_line) -> str:
    """Run the benchmark (or, with ``config.from_data``, read what earlier runs measured) and return the Markdown
    report; the report, its data (``<out>.json``) and the Pareto plot are written where the config says."""
    if config.from_data:
        runs = {}
        for path in config.from_data:
            data = BenchData.load(Path(path))
            if data.settings["model"] in runs:
                raise PrunelensError(f"{path}: a second benchmark of {data.settings['model']}; give one file per model")
            runs[data.settings["model"]] = data
    else:
        data = measure(config, log)
        runs = {config.model: data}
        if config.out:
            data.save(Path(config.out).with_suffix(".json"))
    texts = [report_text(data) for data in runs.values()]
    if config.pareto:
        title = ", ".join(f"{m}: {len(d.chains)} chains" for m, d in runs.items())
        pareto_figure(runs, config.pareto, title=f"Speed-up vs agreement with exact greedy ({title})")
        texts[-1] += f"\nPareto plot: {Path(config.pareto).name}\n"
    text = "\n".join(texts)
    if config.out:
        Path(config.out).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(Path(config.out), text)
    return text


def measure(config: BenchConfig, log=log_line) -> BenchData:
    """Prune the benchmark chains under every mode of ``config`` and measure the machine."""
    import torch

    stage = time.perf_counter()
    loaded = load_model(config.model)
    bench, title = get_benchmark(config.dataset), config.dataset_title()
    examples = load_examples(config.dataset, "test")
    wanted = set(ids_by_length(examples, loaded.tokenizer, 1, config.max_tokens or math.inf, config.n))
    examples = [e for e in examples if e.id in wanted]
    chains = [tokenize_chain(loaded.tokenizer, bench, e, loaded.max_positions) for e in examples]
    modes = [m for m in DEFAULT_MODES if m.name in config.modes or m.name == FLOOR]  # the floor always runs
    if config.server:
        modes.insert(-1, Mode("server", "server", options=ServerSettings(base_url=config.server, concurrency=1)))
    predictor, surrogate_note = None, []
    if any(m.approximation.by_surrogate for m in modes):
        surrogate_path = benchmark_surrogate(config, log)
        predictor = load_predictor(surrogate_path, loaded, config.model)
        surrogate_note = [f"Surrogate screening (fast+surr*: m, /n neighbors, +window w) uses {surrogate_path}: "
                          f"the default MLP surrogate (Pearson loss) trained on step-0 exact targets and blockwise "
                          f"attention features of the first {config.surrogate_chains} {title} train gold chains "
                          "(disjoint from these test chains); its per-round hook pass counts in its time and tokens."]  # fmt: skip
    flops = matmul_flops()
    params = sum(p.numel() for p in loaded.model.parameters())
    log(f"matmul rate {flops / 1e9:.1f} GFLOP/s, {params / 1e6:.1f} M parameters, torch threads {torch.get_num_threads()}")
    results = run_modes(loaded, chains, modes, config.objective, config.keep, config.token_budget, progress=log,
                        predictor=predictor)  # fmt: skip
    synthetic = None
    if config.synthetic_tokens:
        long_chain = synthetic_chain(loaded, config.dataset, config.synthetic_tokens)
        fast_modes = [m for m in DEFAULT_MODES if m.name == "fast"]
        synthetic = run_modes(loaded, [long_chain], fast_modes, config.objective, 0.0, config.token_budget,
                              max_steps=config.synthetic_steps, progress=log)["fast"]  # fmt: skip
    settings = {name: getattr(config, name) for name in ("model", "dataset", "n", "max_tokens", "keep", "objective",
                                                         "token_budget", "synthetic_tokens", "synthetic_steps")}  # fmt: skip
    settings["dataset_title"] = title
    return BenchData.of(settings, torch.get_num_threads(), flops, params, keeps_down_to(config.keep), chains, results,
                        surrogate_note=surrogate_note, synthetic=synthetic, seconds=time.perf_counter() - stage)  # fmt: skip


def report_text(data: BenchData) -> str:
    """The Markdown report of one benchmark run."""
    settings, chains, results = data.settings, data.tokenized_chains(), data.results
    limit = settings["max_tokens"]
    report = [
        f"# Greedy pruning benchmark: {settings['model']}, {len(chains)} {settings['dataset_title']} test gold chains"
        f"{'' if not limit else f' of at most {limit} reasoning tokens'}, objective "
        f"{settings['objective']}, keep {settings['keep']}, token budget {settings['token_budget']}",
        "",
        f"Machine: {data.threads} threads, measured float32 matmul {data.flops / 1e9:.1f} GFLOP/s; "
        f"FLOP floor = tokens computed × 2 × {data.params / 1e6:.1f} M parameters ÷ that rate.",
        "Agreement columns compare with naive exact pruning. Hit@S per keep-fraction band ρ → ρ': S = the tokens "
        "exact pruning deletes in the band; the mode's deletion order ranks the tokens exact still has at ρ, "
        "and Hit@S is the share of S among its first |S| (docs/design.md). Δ objective = the mode's chain's objective "
        "minus exact's (nats, mean over chains, both rescored in float32 by the naive scorer) at the end and, minimum, "
        f"over the keep grid {', '.join(f'{k:g}' for k in data.grid)}. Meets floor: at least as faithful as {FLOOR} "
        "(exact greedy in bfloat16): Hit@S ≥ its Hit@S in every band and Δ objective ≥ its Δ objective at every keep "
        "of the grid; modes with exact's orders are marked exact, not judged (greedy is not optimal, so the floor's "
        "chain can beat exact's at a keep, and exact would fail the test).",
        *data.surrogate_note,
        "",
        modes_table(chains, results, data.flops, data.params),
        "",
        "## Per chain: FLOP-bound speed-up (naive tokens ÷ fast tokens) and achieved speed-up of fast",
        "",
        per_chain_table(chains, results),
    ]
    if data.synthetic is not None:
        long, steps = data.synthetic, settings["synthetic_steps"]
        report += ["", f"## Synthetic {settings['synthetic_tokens']}-token chain, first {steps} steps",
                   "", "| mode | s/step | tokens computed | peak RSS MB |", "|---|---|---|---|",
                   f"| fast | {long.seconds[0] / steps:.1f} | {long.tokens[0]} | {long.peak_rss_mb:.0f} |"]  # fmt: skip
        if "naive" in results:
            naive = results["naive"]
            rate = np.sum(naive.tokens) / np.sum(naive.seconds)
            estimate = long.candidate_tokens[0] / rate / steps
            report.append(f"| naive (estimated: {long.candidate_tokens[0]} tokens at its measured {rate:.0f} tok/s) "
                          f"| {estimate:.1f} | {long.candidate_tokens[0]} | – |")  # fmt: skip
    report += ["", f"Total benchmark time {data.seconds:.0f} s."]
    return "\n".join(report) + "\n"
