"""The surrogate that screens the benchmark's candidates (the fast+surr* modes), trained once and then cached."""

from __future__ import annotations

from pathlib import Path

from prunelens.analysis.surrogate_data import surrogate_from_runs
from prunelens.bench.modes import BenchConfig
from prunelens.core.progress import log_line
from prunelens.core.settings import folder_name
from prunelens.probes.run import FeaturesConfig
from prunelens.pruning.run import PruneConfig


def benchmark_surrogate(config: BenchConfig, log=log_line) -> Path:
    """The surrogate that screens the benchmark's candidates, trained once and then reused from
    ``config.surrogate_dir`` (one model's: another model's surrogate there is refused when it loads): the
    default MLP (Pearson loss) on step-0 exact targets (float32, objective joint, keep 1.0) and blockwise
    attention features of the first ``config.surrogate_chains`` train gold chains of ``config.dataset``,
    disjoint from the test chains the benchmark prunes."""
    count = config.surrogate_chains
    folder = Path(config.surrogate_dir)
    if config.model != BenchConfig.model:  # each model its own runs and surrogate (the default keeps its old names)
        folder = folder / folder_name(config.model)
    path = folder / f"surrogate-{config.dataset}-train{count}.pt"
    if path.is_file():
        return path
    common = dict(model=config.model, dataset=config.dataset, split="train", limit=count, skip_bad=True)
    suffix = "" if config.dataset == BenchConfig.dataset else f"-{config.dataset}"
    targets = PruneConfig(**common, steps=1, out=folder / f"targets{suffix}")
    features = FeaturesConfig(**common, backend="hf_blockwise", out=folder / f"features{suffix}")
    surrogate, data = surrogate_from_runs(targets, features, progress=False, log=log, warn=log)
    surrogate.save(path)
    log(f"trained the benchmark surrogate on {len(data)} {config.dataset_title()} train chains: {path}")
    return path
