"""The runs the analysis experiments share: exact greedy pruning to keep 0.1 (one run per objective) and
baseline rankings of the same chains, created on first use and reused (resumed) afterwards.

    from analysis_runs import ensure_runs
    runs = ensure_runs("cpu")   # {"greedy-joint": Path, "h2o": Path, "surprisal": Path, ...}

Presets:
- ``cpu``: the first 16 GSM8K test gold chains with 25–40 smollm2-135m reasoning tokens, smollm2-135m
  on the CPU, float32.
- ``paper``: the first 1,000 GSM8K test examples (gold chains) with Qwen2.5-7B-Instruct, the paper's
  pruner for §5.1–5.2 (the paper prunes teacher-generated chains of 1,000 sampled GSM8K examples), on
  a GPU (device auto), float32.
- ``scale-smollm2`` / ``scale-gemma3``: the first 96 / 48 GSM8K test gold chains with 25–80 reasoning tokens of
  each pruner (smollm2-135m, gemma3-270m), float32 on the CPU: the two-family runs behind the paper-claims report.
Folders live under ``runs_dir/<preset>`` (plus ``-n<count>`` and ``-<model>`` where those override the preset),
so each holds exactly its preset's chains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BASELINES = ("h2o", "surprisal", "uniform", "truncation")
# baselines that are another ranker's variant: {folder name: (method, its options, flat)}
VARIANTS = {"surprisal-reversed": ("surprisal", {"highest_first": True})}
KEEP = 0.1


@dataclass(frozen=True)
class Preset:
    """Which chains and which pruner; ``min_tokens``/``max_tokens`` filter by reasoning length when set."""

    model: str
    count: int
    description: str
    min_tokens: int | None = None
    max_tokens: int | None = None
    device: str = "cpu"
    dtype: str = "float32"


# fmt: off
PRESETS = {
    "cpu": Preset("smollm2-135m", 16, "the first {count} GSM8K test gold chains with 25–40 reasoning tokens",
                  min_tokens=25, max_tokens=40),
    "paper": Preset("Qwen/Qwen2.5-7B-Instruct", 1000, "the first {count} GSM8K test examples (gold chains)",
                    device="auto"),
    "scale-smollm2": Preset("smollm2-135m", 96, "the first {count} GSM8K test gold chains with 25–80 reasoning tokens",
                            min_tokens=25, max_tokens=80),
    "scale-gemma3": Preset("gemma3-270m", 48, "the first {count} GSM8K test gold chains with 25–80 reasoning tokens",
                           min_tokens=25, max_tokens=80),
}
# fmt: on


def selection(preset: str, count: int | None = None, model: str | None = None) -> dict:
    """The selection settings (model, dataset, split, ids or limit, device, dtype) of a preset."""
    from prunelens.datasets import load_examples
    from prunelens.models import load_tokenizer
    from prunelens.selection import ids_by_length

    chosen = PRESETS[preset]
    model = model or chosen.model
    count = chosen.count if count is None else count
    common = dict(model=model, dataset="gsm8k", split="test", device=chosen.device, dtype=chosen.dtype, skip_bad=True)
    if chosen.min_tokens is None:
        return dict(common, limit=count)
    tokenizer = load_tokenizer(model).tokenizer
    ids = ids_by_length(load_examples("gsm8k", "test"), tokenizer, chosen.min_tokens, chosen.max_tokens, count)
    return dict(common, ids=ids, limit=None)


def describe(preset: str, count: int | None = None, model: str | None = None) -> str:
    """One sentence naming a preset's chains and pruner."""
    chosen = PRESETS[preset]
    count = chosen.count if count is None else count
    return (f"{chosen.description.format(count=count)}; pruner {model or chosen.model} ({chosen.dtype}); exact greedy "
            f"pruning (fast scorer) to keep {KEEP:g}")  # fmt: skip


def run_folder(preset: str, runs_dir: Path, count: int | None = None, model: str | None = None) -> Path:
    """The folder holding a preset's runs (``-n<count>`` and ``-<model>`` where those override the preset)."""
    from prunelens.core.settings import folder_name

    name = "-".join([preset, *([f"n{count}"] if count is not None else []),
                     *([folder_name(model)] if model is not None else [])])  # fmt: skip
    return Path(runs_dir) / name


def ensure_runs(preset: str = "cpu", objectives=("joint",), baselines=BASELINES, threads: int = 1,
                runs_dir: Path = Path("runs/analyses"), *, count: int | None = None, model: str | None = None,
                progress: bool = True) -> dict[str, Path]:  # fmt: skip
    """Create or resume the greedy runs (``greedy-<objective>``) and baseline rank runs (by method name) of
    a preset; returns {name: run folder}. ``count`` and ``model`` override the preset's (smoke runs)."""
    from prunelens.pruning.run import PruneConfig, run_pruning
    from prunelens.rankers.run import RankConfig, run_rank
    from prunelens.core.settings import build_config

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    folder = run_folder(preset, runs_dir, count, model)
    common = dict(selection(preset, count, model), threads=threads)
    runs = {}
    for objective in objectives:
        out = folder / f"greedy-{objective}"
        runs[out.name] = run_pruning(PruneConfig(**common, objective=objective, keep=KEEP, out=out), progress).out_dir
    for name in baselines:
        method, options = VARIANTS.get(name, (name, {}))
        config = build_config(RankConfig, {**common, "method": method, **options, "out": folder / name})
        runs[name] = run_rank(config, progress).out_dir
    return runs


def add_run_options(parser) -> None:
    """The options every analysis experiment takes: which shared runs (--preset, --count, --model,
    --baselines), how to compute them (--threads) and where things go (--runs-dir, --out-dir, --quiet)."""
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--count", type=int, default=None, help="chains (default: the preset's)")
    parser.add_argument("--model", default=None, help="pruner (default: the preset's)")
    parser.add_argument("--baselines", nargs="*", default=list(BASELINES),
                        help=f"ranker names, or a variant: {', '.join(VARIANTS)}")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/analyses"))
    parser.add_argument("--out-dir", type=Path, default=Path("results"))
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
