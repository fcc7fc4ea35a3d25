"""Figure 2 at this machine's scale: students fine-tuned on chains pruned by each method, at matched length.

Runs (or resumes) `prunelens distill run` on a preset (default: the CPU preset, the procedural arithmetic task
with smollm2-135m as pruner and student), then writes results/distill_compare.md (the table, each stage's wall
time) and results/distill_compare.png. Killed runs resume per stage and per student.

    python experiments/distill_compare.py                      # CPU preset (about 2 hours here)
    python experiments/distill_compare.py --config my.toml     # a config file on top of the preset
"""

import argparse
import json
import shutil
from pathlib import Path

from prunelens.distill.report import comparisons_text, table
from prunelens.distill.run import load_distill_config, run_distill
from prunelens.core.errors import PrunelensError
from prunelens.core.jsonl import read_finished
from prunelens.report import markdown_table, write_report


def stage_times(out: Path) -> str:
    """Each stage's wall time, summed over the runs that resumed it (stages.jsonl)."""
    totals: dict[str, float] = {}
    for record in read_finished(out / "stages.jsonl"):
        totals[record["stage"]] = totals.get(record["stage"], 0.0) + record["seconds"]
    rows = [(stage, f"{seconds / 60:.1f}") for stage, seconds in totals.items()]
    return markdown_table(("stage", "minutes"), rows + [("total", f"{sum(totals.values()) / 60:.1f}")])


def finished_rows(config) -> list[dict]:
    """The students a run has evaluated so far (its results.jsonl)."""
    path = Path(config.out) / "results.jsonl"
    if not path.exists():
        raise PrunelensError(f"{config.out} has no evaluated student yet")
    return read_finished(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--config", type=Path, help="TOML or JSON keys on top of the preset")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--report-only", action="store_true",
                        help="write the results files from the students finished so far, marked partial; run nothing")
    args = parser.parse_args(argv)
    try:
        config = load_distill_config(args.config, args.preset)
        if args.threads:
            config.threads = args.threads
        rows = finished_rows(config) if args.report_only else [r.to_dict() for r in run_distill(config)]
    except PrunelensError as error:
        raise SystemExit(f"error: {error}") from None
    except KeyboardInterrupt:
        raise SystemExit("interrupted; rerun the same command to resume") from None
    out = Path(config.out)
    figure = out / "results.png"
    args.results.mkdir(parents=True, exist_ok=True)
    if figure.exists():
        shutil.copyfile(figure, args.results / "distill_compare.png")
    command = f"python experiments/distill_compare.py --preset {args.preset}" + (
        f" --config {args.config}" if args.config else "")  # fmt: skip
    planned = int(config.zero_shot) + len(config.seeds) * (int(config.full) + len(config.methods) * len(config.keeps))
    partial = (f"**Partial: {len(rows)} of {planned} students evaluated so far**; the run resumes with the same command."
               if len(rows) < planned else "")  # fmt: skip
    write_report(args.results / "distill_compare.md", "\n\n".join(part for part in [
        f"# Distillation at matched reasoning length ({args.preset} preset)", partial,
        f"Command: `{command}`; run folder `{out}`. Settings: "
        f"`{json.dumps({k: v for k, v in vars(config).items() if k != 'out'}, default=str)}`.",
        table(rows), comparisons_text(out, rows), "![students](distill_compare.png)" if figure.exists() else "",
        "## Wall time per stage", stage_times(out)] if part) + "\n")  # fmt: skip

if __name__ == "__main__":
    main()
