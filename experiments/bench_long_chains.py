"""Issue 13, long chains: how the cost of greedy pruning to keep 0.5 grows with the chain's length, for the
naive and fast exact scorers and approximate modes, with each mode's empirical exponent and peak memory.

Chains: the prompt and answer of GSM8K test example 0 around real GSM8K train reasoning joined to each
length. Nothing is pruned to the end: exact steps are measured on partial steps, approximate modes on
their first rounds, at every length and at the smallest length's end point; totals are extrapolated
(prunelens.bench.scaling). Each measurement runs in a fresh process, so its peak RSS is its own; the
longest length is measured again at each --memory-budgets budget. Writes results/bench_long_chains.md
and results/bench_long_chains.png.

    python experiments/bench_long_chains.py          # 250 / 500 / 1,000 tokens (~15 min on 2 quiet cores)
    python experiments/bench_long_chains.py --lengths 64 128 --candidates 4 --screened 2 --out-dir /tmp/lc
"""

import argparse
import time
from pathlib import Path

import numpy as np

from prunelens.core.errors import PrunelensError
from prunelens.plots import Curve, curves_figure
from prunelens.core.progress import log_line
from prunelens.bench.modes import DEFAULT_MODES, BenchConfig
from prunelens.core.keep import n_keep
from prunelens.bench.scaling import (
    CostCurve,
    ScalingPoint,
    exponent,
    measure_points,
    round_schedule,
    total_seconds,
)
from prunelens.bench.surrogate import benchmark_surrogate
from prunelens.report import markdown_table, write_report

# lazy screening is left out by default: its round 0 scores every candidate, and measuring its later
# rounds means running that round for real (one exact step: over 10 minutes at 1,000 tokens)
DEFAULT = ("naive", "fast", "fast+block4", "fast+block10%", "fast+window8/m4", "fast+window16/m4")
DATASET = "gsm8k"  # where the chains come from (the report's prose names GSM8K)


def needs(mode, lengths, keep) -> tuple[bool, bool]:
    """Whether a mode's runs have full rounds (costed by exact partial steps) and screened rounds."""
    kinds = {r.full for n in lengths for r in round_schedule(mode.approximation, n, keep)}
    return True in kinds, False in kinds


SCALABLE = [m.name for m in DEFAULT_MODES if m.approximation.rounded is None]  # no screener is built here


def plan(modes, lengths, args) -> list[ScalingPoint]:
    """The measurements the modes need: an exact partial step per (scorer, dtype) whose rounds include
    full ones, and the first rounds of every mode with screened rounds, at every length of the grid (the
    lengths and the smallest one's end point), then at the longest length again for each memory budget."""
    grid = sorted(set(lengths) | {max(1, n_keep(min(lengths), args.keep))})
    steps = list(dict.fromkeys((m.scorer, m.dtype) for m in modes if needs(m, lengths, args.keep)[0]))
    screened = [m for m in modes if needs(m, lengths, args.keep)[1]]
    common = dict(model=args.model, dataset=DATASET, objective=args.objective, keep=args.keep,
                  candidates=args.candidates, screened=args.screened)  # fmt: skip
    points = []
    for length, budget in [(g, args.token_budget) for g in grid] + [(grid[-1], b) for b in args.memory_budgets]:
        points += [ScalingPoint(scorer=s, dtype=d, length=length, token_budget=budget, **common) for s, d in steps]
        points += [ScalingPoint(scorer=m.scorer, dtype=m.dtype, length=length, token_budget=budget,
                                approximation=m.approximation,
                                surrogate=args.surrogate if m.approximation.by_surrogate else None, **common)
                   for m in screened]  # fmt: skip
    return points


def point_name(point: ScalingPoint, modes) -> str:
    if point.approximation is None:
        return f"{point.scorer}{' ' + point.dtype if point.dtype else ''} exact step"
    return next(m.name for m in modes if m.approximation == point.approximation and m.scorer == point.scorer)


def describe(measurement) -> str:
    if measurement.step is not None:
        return f"step: {measurement.step.seconds:.2f} s, {measurement.step.tokens:.0f} tokens"
    return ", ".join(f"round {r.index}: {r.seconds:.2f} s" for r in measurement.rounds)


def curves(mode, measurements, budget):
    """A mode's cost curves at ``budget``: exact step, screened round 0, later screened rounds (mean)."""
    step, first, later = {}, {}, {}
    for m in measurements:
        point = m.point
        if point.token_budget != budget or point.scorer != mode.scorer or point.dtype != mode.dtype:
            continue
        if m.step is not None:
            step[point.length] = m.step.seconds
        elif point.approximation == mode.approximation:
            if m.rounds and not m.rounds[0].round.full:
                first[point.length] = m.rounds[0].seconds
            rest = [r.seconds for r in m.rounds[1:] if not r.round.full]
            if rest:
                later[point.length] = float(np.mean(rest))
    return (CostCurve(step, f"{mode.name}: exact steps"), CostCurve(first, f"{mode.name}: screened round 0"),
            CostCurve(later, f"{mode.name}: later screened rounds"))  # fmt: skip


def peak(mode, measurements, length, budget, uses: tuple[bool, bool]) -> float:
    """The highest peak RSS of the measurements a mode's cost draws on (``uses``: as ``needs`` says) at one
    length and budget."""
    wanted = ([None] if uses[0] else []) + ([mode.approximation] if uses[1] else [])
    return max(m.peak_mb for m in measurements if m.point.length == length and m.point.token_budget == budget
               and m.point.scorer == mode.scorer and m.point.dtype == mode.dtype
               and m.point.approximation in wanted)  # fmt: skip


def format_seconds(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def measurement_rows(measurements, modes) -> list[list]:
    rows = []
    for m in measurements:
        point, name = m.point, point_name(m.point, modes)
        memory = [f"{m.peak_mb:.0f}", f"{m.peak_mb - m.start_mb:.0f}"]
        if m.step is not None:
            rate = m.step.tokens / m.step.seconds
            rows.append([name, point.length, point.token_budget, f"partial step: {m.step.sampled} of {point.length} "
                         "candidates, scaled to all", f"{m.step.seconds:.2f}", f"{m.step.tokens:.0f}", f"{rate:.0f}",
                         *memory])  # fmt: skip
            continue
        first, rest = m.rounds[0], m.rounds[1:]
        kind = "full" if first.round.full else "screened"
        rows.append([name, point.length, point.token_budget, f"round 0 ({kind})", f"{first.seconds:.2f}", first.tokens,
                     f"{first.tokens / first.seconds:.0f}", *memory])  # fmt: skip
        if rest:
            seconds, tokens = np.mean([r.seconds for r in rest]), np.mean([r.tokens for r in rest])
            which = "round 1" if len(rest) == 1 else f"rounds 1–{len(rest)}"
            rows.append([name, point.length, point.token_budget, f"{which} (screened), mean per round",
                         f"{seconds:.2f}", f"{tokens:.0f}", f"{tokens / seconds:.0f}", *memory])  # fmt: skip
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--lengths", type=int, nargs="+", default=[250, 500, 1000], help="reasoning tokens")
    parser.add_argument("--modes", nargs="+", default=list(DEFAULT), choices=SCALABLE,
                        help="benchmark modes (prunelens.bench.modes); lazy screening runs one exact step "
                        "for real per length")  # fmt: skip
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--objective", default="joint", choices=["joint", "answer"])
    parser.add_argument("--token-budget", type=int, default=1024)
    parser.add_argument("--memory-budgets", type=int, nargs="*", default=[256],
                        help="other token budgets measured at the longest length")  # fmt: skip
    parser.add_argument("--candidates", type=int, default=16, help="candidates a partial exact step scores")
    parser.add_argument("--screened", type=int, default=8, help="screened rounds run per approximate measurement")
    parser.add_argument("--surrogate", help="trained surrogate for surrogate screening modes (default: the pruning "
                        "benchmark's, trained there on first use)")  # fmt: skip
    parser.add_argument("--in-process", action="store_true",
                        help="measure in this process (faster to start; peak RSS is then the running maximum)")
    parser.add_argument("--out-dir", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    if len(set(args.lengths)) < 2 or min(args.lengths) < 2:
        parser.error("--lengths needs two or more distinct lengths of at least 2 tokens")
    if not 0 <= args.keep < 1 or args.candidates < 1 or args.screened < 1:
        parser.error("--keep must lie in [0, 1); --candidates and --screened must be at least 1")
    lengths = sorted(set(args.lengths))
    if n_keep(lengths[0], args.keep) == lengths[0]:
        parser.error(f"--keep {args.keep:g} leaves nothing to prune at {lengths[0]} tokens")
    modes = [m for m in DEFAULT_MODES if m.name in args.modes]
    started = time.perf_counter()
    measurements = []
    budget, longest = args.token_budget, lengths[-1]
    totals, slopes, rounds = {}, {}, {}
    try:
        if args.surrogate is None and any(m.approximation.by_surrogate for m in modes):
            args.surrogate = str(benchmark_surrogate(BenchConfig(dataset=DATASET)))
        points = plan(modes, lengths, args)
        for m in measure_points(points, fresh=not args.in_process):
            log_line(f"[{len(measurements) + 1}/{len(points)}] {point_name(m.point, modes)}, {m.point.length} tokens, "
                     f"budget {m.point.token_budget}: {describe(m)}, peak RSS {m.peak_mb:.0f} MB")  # fmt: skip
            measurements.append(m)
        for mode in modes:
            step, first, later = curves(mode, measurements, budget)
            schedules = [round_schedule(mode.approximation, n, args.keep) for n in lengths]
            totals[mode.name] = [total_seconds(s, step, first, later) for s in schedules]
            slopes[mode.name] = exponent(lengths, totals[mode.name])
            rounds[mode.name] = [len(s) for s in schedules]
    except PrunelensError as error:
        raise SystemExit(f"error: {error}") from None
    wall = time.perf_counter() - started
    reference = totals.get("fast")
    header = ["mode", f"rounds at {' / '.join(map(str, lengths))}",
              *(f"total s at {n} (extrapolated)" for n in lengths), "exponent",
              *([f"fast ÷ mode at {longest}"] if reference else []),
              *(f"peak RSS MB at {n}" for n in lengths)]  # fmt: skip
    rows = []
    for mode in modes:
        uses = needs(mode, lengths, args.keep)
        ratio = [f"{reference[-1] / totals[mode.name][-1]:.1f}×"] if reference else []
        rows.append([mode.name, " / ".join(map(str, rounds[mode.name])),
                     *(format_seconds(t) for t in totals[mode.name]), f"{slopes[mode.name]:.2f}", *ratio,
                     *(f"{peak(mode, measurements, n, budget, uses):.0f}" for n in lengths)])  # fmt: skip

    memory_names = list(dict.fromkeys(point_name(m.point, modes) for m in measurements if m.point.length == longest))
    budgets = [budget, *args.memory_budgets]
    memory_rows = []
    for name in memory_names:
        cells = []
        for b in budgets:
            found = [m for m in measurements if m.point.length == longest and m.point.token_budget == b
                     and point_name(m.point, modes) == name]  # fmt: skip
            cells.append(f"{found[0].peak_mb:.0f} (+{found[0].peak_mb - found[0].start_mb:.0f})" if found else "–")
        memory_rows.append([name, *cells])

    figure = args.out_dir / "bench_long_chains.png"
    curves_figure({f"greedy pruning to keep {args.keep:g}": [
        Curve(f"{name} (exponent {slopes[name]:.2f})", np.log10(lengths), np.log10(totals[name])) for name in totals]},
        figure, title="Cost against chain length (log-log, extrapolated totals)",
        xlabel="log10 reasoning tokens", ylabel="log10 seconds (extrapolated)")  # fmt: skip
    threads = measurements[0].threads
    lines = [
        f"# Cost growth with chain length: {args.model}, objective {args.objective}, keep {args.keep:g}, "
        f"token budget {budget}",
        "",
        f"Chains: the prompt and answer of GSM8K test example 0 around {' / '.join(map(str, lengths))} reasoning "
        "tokens of GSM8K train gold reasoning joined end to end. **Every total is extrapolated**: no chain was "
        "pruned to the end. The measured numbers are in the second table."
        + (f" Surrogate screening uses {args.surrogate}." if any(m.approximation.by_surrogate for m in modes) else ""),
        "",
        "Cost model (prunelens/bench/scaling.py). A run is a schedule of rounds fixed by the lengths and the "
        "mode (block deletions per round; which rounds score every candidate). A round that scores every "
        "candidate (every exact step, every block round, lazy screening's round 0) costs what a partial exact "
        f"step measured: {args.candidates} candidates at the midpoints of equal slices of the chain (more where "
        "those computed fewer than 8 × the token budget tokens, so the sample fills the scorer's batches as a full "
        "step does), scaled to all candidates. Screened rounds were run for real: round 0 and up to "
        f"{args.screened} later rounds of greedy pruning at each measured length; a screened round 0 costs what "
        "it measured, later screened rounds their measured mean (the first rounds stand for all later ones). Between measured lengths a round's cost "
        "follows the power law through the two neighbouring measurements (straight in log-log); the rounds of "
        "a run from n tokens start at lengths n down to n × keep, inside the measured range. Left out: the base "
        "score (one forward of the chain) and, after a block round, the recomputed tail of the new chain (at "
        "most one row of n tokens against a step's n²/2). Exponent: least-squares slope of log total seconds "
        "against log length.",
        "",
        markdown_table(header, rows),
        "",
        f"## Measured ({'all in one process' if args.in_process else 'one fresh process each'}; {threads} torch "
        "threads)",
        "",
        "Peak RSS is the process's resident memory during the measurement, model included; \"above start\" "
        "subtracts the resident memory just before it (model loaded, chain built)"
        + (" (in one process: running maxima, so only growth shows)." if args.in_process else "."),
        "",
        markdown_table(["measurement", "chain tokens", "token budget", "what", "seconds", "tokens computed", "tok/s",
                        "peak RSS MB", "above start MB"], measurement_rows(measurements, modes)),  # fmt: skip
        "",
        f"## Peak RSS MB (above start) at {longest} tokens against --token-budget",
        "",
        markdown_table(["measurement", *(f"budget {b}" for b in budgets)], memory_rows),
        "",
        f"Wall time {wall / 60:.1f} min. Figure: {figure.name}.",
    ]
    write_report(args.out_dir / "bench_long_chains.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
