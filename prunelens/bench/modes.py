"""The benchmark's modes (a scorer, an approximation, a dtype) and its settings (``BenchConfig``).

``FLOOR``, the exact algorithm in bfloat16, is the rounding floor every approximate mode is judged against;
it always runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prunelens.core.errors import PrunelensError
from prunelens.core.objectives import Objective
from prunelens.core.settings import setting
from prunelens.datasets import get_benchmark
from prunelens.pruning.greedy import EXACT, Approximation
from prunelens.selection import split_ids


@dataclass(frozen=True)
class Mode:
    """A scorer (with its own options, if it has any), an approximation, and the dtype the model runs in (None: as
    loaded). Surrogate screening modes get the benchmark's surrogate predictor, rounded screening modes a screener
    over a rounded copy."""

    name: str
    scorer: str
    approximation: Approximation = EXACT
    dtype: str | None = None
    options: Any = None


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
class BenchConfig:
    """`prunelens bench` (and experiments/bench_pruning.py): which model and chains, which modes, where the
    report goes."""

    model: str = setting("smollm2-135m", "alias, HF id, local dir or .gguf path")
    dataset: str = setting("gsm8k", "benchmark whose test gold chains are pruned (its train chains train the "
                           "screening surrogate and make the synthetic chain)")  # fmt: skip
    n: int = setting(5, "test gold chains (the first ones within --max-tokens)", minimum=1)
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
    out: str | None = setting("results/bench_pruning.md", "Markdown report path (its data goes beside it, .json)")
    from_data: list[str] = setting(default_factory=list, cli_type=str, parse=split_ids,
                                   help="comma-separated data files of earlier runs: rebuild their reports and one "
                                   "Pareto plot (a row per model) without pruning")  # fmt: skip
    pareto: str | None = setting("results/bench_pruning_pareto.png", "Pareto plot path")
    surrogate_chains: int = setting(40, "train chains the screening surrogate is trained on", minimum=1)
    surrogate_dir: str = setting("runs/bench-surrogate", "where the screening surrogate is cached")
    server: str | None = setting(None, "a running OpenAI-compatible server serving --model (e.g. experiments/"
                                 "bench_server.py starts llama.cpp's): adds the mode 'server', the server scorer "
                                 "with that --base-url")  # fmt: skip

    def __post_init__(self):
        known = [m.name for m in DEFAULT_MODES]
        unknown = [m for m in self.modes if m not in known]
        if unknown:
            raise PrunelensError(f"unknown benchmark mode {unknown[0]!r}; known: {', '.join(known)}")
        Objective.parse(self.objective)  # an unknown objective is one PrunelensError line
        get_benchmark(self.dataset)  # and so is an unknown dataset

    def dataset_title(self) -> str:
        """How reports name the dataset (e.g. GSM8K)."""
        bench = get_benchmark(self.dataset)
        return bench.title or bench.name
