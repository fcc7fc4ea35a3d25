"""How greedy pruning's cost grows with chain length, without running long chains to the end.

A run is a schedule of rounds fixed by the lengths and the approximation (``round_schedule``). A *full*
round scores every candidate, as an exact step does; its cost at chain length m is measured on a partial
step (``partial_step``: a few evenly spaced candidates, scaled to all). A *screened* round's cost is
measured on the first rounds of a real run (``first_rounds``). Costs are measured at a few points, chain
lengths with the settings to measure there (``ScalingPoint``, ``measure_point``; one fresh process each, so
its peak memory is its own), and interpolated between them as a power law (``CostCurve``); a total is the
sum over the schedule (``total_seconds``): an extrapolation, never a timed run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from prunelens.bench.run import synthetic_chain
from prunelens.core.errors import PrunelensError
from prunelens.datasets import get_benchmark, load_examples
from prunelens.datasets.tokenize import tokenize_chain
from prunelens.memory import PeakMemory
from prunelens.models import load_model
from prunelens.pruning.greedy import Approximation, greedy_prune, planned_steps
from prunelens.pruning.scorers import make_scorer
from prunelens.pruning.surrogate_screen import load_predictor

# imported once by the fork server, so each fresh measurement process starts without paying for them
PRELOAD = ("torch", "transformers", "transformers.modeling_utils", "transformers.models.auto.modeling_auto",
           "transformers.models.auto.tokenization_auto", "tokenizers", "safetensors.torch", "prunelens.models",
           "prunelens.pruning.scorers", "prunelens.bench.run")  # fmt: skip


@dataclass(frozen=True)
class Round:
    """One scoring round of a greedy run: reasoning tokens before it, deletions it makes, whether it
    scores every candidate."""

    remaining: int
    deletions: int
    full: bool


def round_schedule(approximation: Approximation, n: int, keep: float) -> list[Round]:
    """The rounds greedy pruning makes from n reasoning tokens down to ``keep``, as ``greedy_prune`` plans
    them (a screened round that scored fewer candidates than its block size would delete fewer)."""
    steps, done, rounds = planned_steps(n, keep), 0, []
    while done < steps:
        remaining = n - done
        deletions = min(steps - done, approximation.deletions(remaining))
        rounds.append(Round(remaining, deletions, approximation.full_round(len(rounds), remaining)))
        done += deletions
    return rounds


def measured_rounds(schedule: list[Round], screened: int) -> list[Round]:
    """The rounds a measurement runs: round 0, then up to ``screened`` screened rounds, stopping before any
    later full round (its cost is a partial step's)."""
    chosen = schedule[:1]
    for entry in schedule[1:]:
        if entry.full or len(chosen) > screened:
            break
        chosen.append(entry)
    return chosen


@dataclass
class StepCost:
    """An exact step's cost over all candidates, scaled up from ``sampled`` of them."""

    seconds: float
    tokens: float
    sampled: int


def partial_step(scorer, prompt_ids, reasoning_ids, answer_ids, objective, candidates: int,
                 min_tokens: int = 0) -> StepCost:  # fmt: skip
    """The cost of one exact greedy step over ``reasoning_ids``, from ``candidates`` deletions at the
    midpoints of equal slices of the chain, scaled by len / candidates: a candidate's work is linear in
    its position for the fast scorer and constant for the naive one, so midpoint samples sum like all
    candidates. A sample that computed fewer than ``min_tokens`` tokens is drawn again, larger, to reach
    them (a sample too small to fill the scorer's batches runs slower per token than a full step). The
    chain is scored first, untimed, as greedy's base score is (the fast scorer caches it); adjacent
    equal tokens, which greedy scores once, are counted separately (an overestimate)."""
    m = len(reasoning_ids)
    scorer.score(prompt_ids, [reasoning_ids], answer_ids, objective)
    k = min(candidates, m)
    seconds, tokens = _sample(scorer, prompt_ids, reasoning_ids, answer_ids, objective, k)
    if tokens < min_tokens and k < m:
        k = min(m, math.ceil(k * min_tokens / max(tokens, 1)))
        seconds, tokens = _sample(scorer, prompt_ids, reasoning_ids, answer_ids, objective, k)
    return StepCost(seconds * m / k, tokens * m / k, k)


def _sample(scorer, prompt_ids, reasoning_ids, answer_ids, objective, k: int) -> tuple[float, int]:
    """Seconds and tokens computed scoring k deletions at the midpoints of k equal slices of the chain."""
    m = len(reasoning_ids)
    sample = [reasoning_ids[:p] + reasoning_ids[p + 1 :] for p in (int((i + 0.5) * m / k) for i in range(k))]
    tokens, started = scorer.stats.tokens_computed, time.perf_counter()
    scorer.score(prompt_ids, sample, answer_ids, objective, trunk=reasoning_ids)
    return time.perf_counter() - started, scorer.stats.tokens_computed - tokens


@dataclass
class RoundCost:
    """A round a measurement ran for real: its place in the schedule, seconds and tokens computed."""

    index: int
    round: Round
    seconds: float
    tokens: int


def first_rounds(scorer, chain, objective, keep: float, approximation: Approximation, screened: int,
                 predictor=None) -> list[RoundCost]:  # fmt: skip
    """Run greedy pruning of ``chain`` under ``approximation`` (surrogate screening: with ``predictor``, whose
    hook passes count among the tokens) for ``measured_rounds`` and time each round."""
    wanted = measured_rounds(round_schedule(approximation, len(chain.reasoning_ids), keep), screened)
    scorer.score(chain.prompt_ids, [chain.reasoning_ids], chain.answer_ids, objective)  # cached as in partial_step

    def mark() -> tuple[float, int]:
        hooked = predictor.tokens_computed if predictor is not None else 0
        return time.perf_counter(), scorer.stats.tokens_computed + hooked

    marks = [mark()]
    greedy_prune(scorer, chain.prompt_ids, chain.reasoning_ids, chain.answer_ids, objective, keep,
                 max_steps=sum(r.deletions for r in wanted), on_step=lambda _: marks.append(mark()),
                 approximation=approximation, predictor=predictor)  # fmt: skip
    return [RoundCost(i, r, t1 - t0, k1 - k0) for i, (r, (t0, k0), (t1, k1)) in enumerate(zip(wanted, marks, marks[1:]))]


def long_chain(loaded, dataset: str, length: int, example: int = 0):
    """The prompt and answer of ``dataset``'s test example ``example`` around ``length`` reasoning tokens of
    its real train reasoning joined end to end (``prunelens.bench.run.synthetic_chain``)."""
    question = load_examples(dataset, "test")[example]
    host = tokenize_chain(loaded.tokenizer, get_benchmark(dataset), question, None)
    try:
        reasoning = synthetic_chain(loaded, dataset, length)
    except ValueError as error:
        raise PrunelensError(f"a {length}-token chain: {error}") from None
    chain = replace(reasoning, id=f"long-{length}", prompt_ids=host.prompt_ids, answer_ids=host.answer_ids,
                    answer_text=host.answer_text)  # fmt: skip
    limit = loaded.max_positions
    if limit is not None and chain.total_len > limit:
        raise PrunelensError(f"a {length}-token chain needs {chain.total_len} positions; the model has {limit}")
    return chain


@dataclass(frozen=True)
class ScalingPoint:
    """What to measure at one chain length (a ``long_chain`` of ``dataset``): an exact partial step of
    ``scorer`` (``approximation`` None; ``candidates``, at least 8 × ``token_budget`` tokens), or round 0 and
    ``screened`` screened rounds of greedy pruning under ``approximation`` (surrogate screening: with the
    trained ``surrogate`` file)."""

    model: str
    dataset: str
    scorer: str
    dtype: str | None
    length: int
    token_budget: int
    objective: str = "joint"
    keep: float = 0.5
    approximation: Approximation | None = None
    candidates: int = 16
    screened: int = 8
    surrogate: str | None = None


@dataclass
class Measurement:
    """What was measured at a point, with this process's peak resident memory during it and just before it (MB)."""

    point: ScalingPoint
    step: StepCost | None = None
    rounds: list[RoundCost] = field(default_factory=list)
    peak_mb: float = 0.0
    start_mb: float = 0.0
    threads: int = 0


def measure_point(point: ScalingPoint) -> Measurement:
    """Load the model, build the chain and measure at ``point`` (in the calling process)."""
    import psutil
    import torch

    loaded = load_model(point.model, dtype=point.dtype or "float32")
    chain = long_chain(loaded, point.dataset, point.length)
    predictor = None
    if point.surrogate is not None:
        predictor = load_predictor(point.surrogate, loaded, point.model)
    scorer = make_scorer(point.scorer, loaded.model, point.token_budget)
    # a first forward brings the weights into memory (they may be mapped from the file), so the memory at the
    # start holds them
    scorer.score(chain.prompt_ids, [chain.reasoning_ids], chain.answer_ids, point.objective)
    result = Measurement(point, start_mb=psutil.Process().memory_info().rss / 2**20, threads=torch.get_num_threads())
    with PeakMemory(interval=0.01) as memory:
        if point.approximation is None:
            result.step = partial_step(scorer, chain.prompt_ids, chain.reasoning_ids, chain.answer_ids, point.objective,
                                       point.candidates, min_tokens=8 * point.token_budget)  # fmt: skip
        else:
            result.rounds = first_rounds(scorer, chain, point.objective, point.keep, point.approximation,
                                         point.screened, predictor)  # fmt: skip
    result.peak_mb = memory.peak_mb
    return result


def measure_points(points: list[ScalingPoint], fresh: bool = True):
    """Yield the Measurement at each point in order; with ``fresh`` each is measured in a new process forked
    from a server that has imported torch and transformers (so one measurement's memory does not hide another's)."""
    if not fresh:
        for point in points:
            yield measure_point(point)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    with ProcessPoolExecutor(1, mp_context=context, max_tasks_per_child=1) as pool:
        yield from pool.map(measure_point, points)


class CostCurve:
    """Seconds per round against chain length through measured points, interpolated as a power law
    (straight in log-log) between neighbouring lengths and held constant beyond the outermost ones."""

    def __init__(self, points: dict[int, float], what: str = "rounds"):
        self.points, self.what = dict(sorted(points.items())), what

    def __call__(self, lengths) -> np.ndarray:
        if not self.points:
            raise PrunelensError(f"no measured cost of {self.what} to extrapolate from")
        x, y = np.log(list(self.points)), np.log(list(self.points.values()))
        return np.exp(np.interp(np.log(np.asarray(lengths, dtype=float)), x, y))


def total_seconds(schedule: list[Round], step: CostCurve, first: CostCurve, later: CostCurve) -> float:
    """A run's extrapolated seconds: full rounds at ``step``'s cost, a screened round 0 at ``first``'s, later
    screened rounds at ``later``'s (each at the chain length where the round starts)."""
    full = [r.remaining for r in schedule if r.full]
    screened = [r.remaining for r in schedule[1:] if not r.full]
    total = float(np.sum(step(full))) if full else 0.0
    if screened:
        total += float(np.sum(later(screened)))
    if schedule and not schedule[0].full:
        total += float(first([schedule[0].remaining])[0])
    return total


def exponent(lengths, seconds) -> float:
    """The least-squares slope of log seconds against log length (cost ∝ length^slope)."""
    if len(lengths) < 2:
        return float("nan")
    return float(np.polyfit(np.log(lengths), np.log(seconds), 1)[0])
