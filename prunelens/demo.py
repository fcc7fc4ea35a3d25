"""`prunelens demo`: the main job in about a minute — exact greedy pruning of short real GSM8K chains
with the embedded model, printed at several keep fractions beside baselines' chains at the same keep."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prunelens.core.errors import PrunelensError
from prunelens.core.progress import log_line
from prunelens.core.ranking import Ranking
from prunelens.core.settings import THREADS_HELP, setting
from prunelens.datasets import load_examples
from prunelens.models import load_tokenizer
from prunelens.pruning.run import PruneConfig, run_pruning
from prunelens.rankers.run import RankConfig, run_rank
from prunelens.selection import ids_by_length, split_ids


@dataclass
class DemoConfig:
    """What the demo runs; every field is a `prunelens demo` option."""

    model: str = setting("smollm2-135m", "alias, HF id, local dir or .gguf path")
    count: int = setting(3, "how many GSM8K test chains", minimum=1)
    min_tokens: int = setting(30, "shortest reasoning to pick, in the model's tokens", minimum=1)
    max_tokens: int = setting(40, "longest reasoning to pick, in the model's tokens", minimum=1)
    keep: float = setting(0.5, "keep fraction to prune to and compare at", minimum=0.0, maximum=1.0)
    baselines: list[str] = setting(default_factory=lambda: ["surprisal", "h2o"], cli_type=str, parse=split_ids,
                                   help="comma-separated rankers shown beside greedy")  # fmt: skip
    out: Path = setting(Path("runs/demo"), "output folder: one subfolder per method")
    threads: int | None = setting(None, THREADS_HELP, minimum=1)

    def output_dir(self) -> Path:
        return Path(self.out)


def chains_by_length(config: DemoConfig) -> list[str]:
    """Ids of the first ``count`` GSM8K test chains whose reasoning has min–max tokens."""
    tokenizer = load_tokenizer(config.model).tokenizer
    return ids_by_length(load_examples("gsm8k", "test"), tokenizer, config.min_tokens, config.max_tokens, config.count)


def run_demo(config: DemoConfig, log=log_line) -> dict[str, list[Ranking]]:
    """Prune the chosen chains exactly and rank them with each baseline; {method: rankings}."""
    if config.min_tokens > config.max_tokens:
        raise PrunelensError(f"--min-tokens {config.min_tokens} exceeds --max-tokens {config.max_tokens}")
    ids = chains_by_length(config)
    if not ids:
        raise PrunelensError(f"no GSM8K test chain has {config.min_tokens}–{config.max_tokens} reasoning tokens")
    common = dict(model=config.model, ids=ids, limit=None, threads=config.threads)
    found = {"greedy": run_pruning(PruneConfig(**common, keep=config.keep, out=config.out / "greedy"), log=log).rankings}
    for method in config.baselines:
        rank = RankConfig(**common, method=method, out=config.out / method)
        found[method] = run_rank(rank, log=log).rankings
    return {method: [r for r in rankings if r.id in ids] for method, rankings in found.items()}


def demo_report(found: dict[str, list[Ranking]], keep: float) -> str:
    """Each chain: greedy at the shown keep fractions, then every method side by side at ``keep``."""
    lines = []
    by_method = {method: {r.id: r for r in rankings} for method, rankings in found.items()}
    for greedy in found["greedy"]:
        lines.append(f"\n=== {greedy.id}: {greedy.n} reasoning tokens, answer {greedy.answer}, "
                     f"greedy pruning {greedy.seconds or 0:.1f} s")  # fmt: skip
        for fraction in greedy.shown_keeps(keep):
            lines.append(f"--- greedy, keep {fraction:g}\n{greedy.marked(fraction)}")
        for method, rankings in by_method.items():
            if method != "greedy":
                lines.append(f"--- {method}, keep {keep:g}\n{rankings[greedy.id].marked(keep)}")
    return "\n".join(lines)
