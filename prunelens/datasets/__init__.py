"""Benchmarks (GSM8K, MATH-500, MMLU-Pro, generated arith): loading, fixed seeded splits, prompts and grading."""

from __future__ import annotations

import random
from pathlib import Path

from prunelens.datasets.base import Benchmark, Example
from prunelens.core.errors import BadRecordError, PrunelensError
from prunelens.core.registry import BENCHMARKS

__all__ = ["Benchmark", "Example", "get_benchmark", "load_examples", "partition"]


def get_benchmark(name: str) -> Benchmark:
    """The registered benchmark called ``name`` (``prunelens.core.registry.BENCHMARKS``); a one-line error
    for an unknown one."""
    return BENCHMARKS.load(name)()


def partition(n: int, sizes: dict[str, int | None], seed: int) -> dict[str, list[int]]:
    """Split indices 0..n-1 into named parts of the given sizes (None = the rest) by a seeded shuffle.

    Each part lists its indices in ascending order, so "the first k" of a split is stable.
    """
    order = list(range(n))
    random.Random(seed).shuffle(order)
    fixed = sum(size for size in sizes.values() if size is not None)
    if fixed > n:
        raise PrunelensError(f"split sizes {sizes} exceed the {n} available rows")
    parts, start = {}, 0
    for name, size in sizes.items():
        take = n - fixed if size is None else size
        parts[name] = sorted(order[start : start + take])
        start += take
    return parts


def load_examples(
    dataset: str,
    split: str,
    *,
    data_dir: Path | None = None,
    skip_bad: bool = False,
    on_skip=None,
) -> list[Example]:
    """The examples of one split, in a fixed order. Bad rows raise BadRecordError unless ``skip_bad``."""
    bench = get_benchmark(dataset)
    if split not in bench.splits:
        raise PrunelensError(f"dataset {dataset}: unknown split {split!r} (known: {', '.join(bench.splits)})")
    rule = bench.splits[split]
    rows = bench.rows(rule.raw, data_dir)
    indices = range(len(rows))
    if rule.part is not None:
        indices = partition(len(rows), bench.partitions[rule.raw], bench.seed)[rule.part]
    examples = []
    for index in indices:
        try:
            examples.append(bench.parse(rows[index], rule.raw, index))
        except BadRecordError as error:
            if not skip_bad:
                raise
            if on_skip is not None:
                on_skip(error)
    return examples
