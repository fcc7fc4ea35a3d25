"""`prunelens distill run`: the whole pipeline on tiny models, config loading, and per-stage resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import interrupt_on_call, load_experiment
from typer.testing import CliRunner

from prunelens.cli import app
from prunelens.distill import sft
from prunelens.distill.run import PRESETS, load_distill_config, run_distill
from prunelens.core.errors import PrunelensError


def tiny_config_file(tmp_path, model_dir) -> str:
    """A run on 4 gold arith chains with a tiny random model as pruner and student."""
    model = str(model_dir)
    config = {
        "out": str(tmp_path / "run"),
        "methods": ["greedy-joint", "uniform", "truncation"],
        "keeps": [0.5],
        "threads": 1,
        "teach": {"limit": 4},
        "prune": {"model": model, "screen": None, "window": 0},
        "rank": {"model": model},
        "train": {"student": model, "steps": 2, "batch_size": 2, "dev_limit": 2, "dev_max_new_tokens": 4,
                  "max_length": 256},
        "eval": {"limit": 3, "max_new_tokens": 4, "batch_size": 3},
    }  # fmt: skip
    path = tmp_path / "distill.json"
    path.write_text(json.dumps(config))
    return str(path)


@pytest.mark.slow
def test_pipeline_runs_every_stage_and_resumes_after_a_kill(tmp_path, tiny_model_dir, monkeypatch):
    config_path = tiny_config_file(tmp_path, tiny_model_dir)
    config = load_distill_config(config_path)
    out = config.out
    interrupt_on_call(monkeypatch, sft, "build_trainer", call=3)  # killed while training the third student
    with pytest.raises(KeyboardInterrupt):
        run_distill(config, log=lambda line: None)
    assert (out / "students" / "full" / "train.json").exists()
    assert (out / "students" / "greedy-joint-keep0.5" / "train.json").exists()
    monkeypatch.undo()
    trainers = []
    real_build = sft.build_trainer
    monkeypatch.setattr(sft, "build_trainer", lambda *a, **k: trainers.append(1) or real_build(*a, **k))
    results = run_distill(config, log=lambda line: None)
    assert len(trainers) == 2  # only uniform and truncation were left to train

    assert [r.student for r in results] == ["zero-shot", "full", "greedy-joint-keep0.5", "uniform-keep0.5",
                                            "truncation-keep0.5"]  # fmt: skip
    chains = [json.loads(line) for line in (out / "teach" / "chains.jsonl").read_text().splitlines()]
    assert [c["id"] for c in chains] == [f"arith-train-{i}" for i in range(4)] and chains[0]["teacher"] == "gold"
    for method in ("greedy-joint", "uniform", "truncation"):
        cut = [json.loads(line) for line in (out / "compress" / method / "keep0.5.jsonl").read_text().splitlines()]
        assert len(cut) == 4 and all(c["student_tokens"] == c["target"] for c in cut)
    truncated = json.loads((out / "compress" / "truncation" / "keep0.5.jsonl").read_text().splitlines()[0])
    assert chains[0]["reasoning"].startswith(truncated["reasoning"].rstrip())  # truncation keeps the start
    saved = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["student"] for r in saved] == [r.student for r in results]
    assert all(r["n"] == 3 and 0 <= r["accuracy"] <= 1 for r in saved)
    assert saved[2]["train_chains"] == 4 and saved[2]["mean_train_tokens"] > 0
    assert "| greedy-joint-keep0.5 | greedy-joint | 0.5 | 0 | 4 |" in (out / "results.md").read_text()
    assert "## Paired comparisons with greedy-joint" in (out / "results.md").read_text()
    assert (out / "results.png").stat().st_size > 1000
    stages = [json.loads(line) for line in (out / "stages.jsonl").read_text().splitlines()]
    assert {"stage": "train full", "complete_before": True} in [{k: s[k] for k in ("stage", "complete_before")}
                                                              for s in stages]  # fmt: skip

    experiment = load_experiment("distill_compare", monkeypatch)  # its report, from the finished run
    experiment.main(["--config", str(config_path), "--results", str(tmp_path / "results"), "--report-only"])
    report = (tmp_path / "results" / "distill_compare.md").read_text()
    assert "| truncation-keep0.5 | truncation | 0.5 | 0 | 4 |" in report and "Partial" not in report
    assert "| train full |" in report and (tmp_path / "results" / "distill_compare.png").stat().st_size > 1000
    (out / "results.jsonl").write_text("".join(line + "\n" for line in (out / "results.jsonl").read_text().splitlines()[:2]))
    experiment.main(["--config", str(config_path), "--results", str(tmp_path / "results"), "--report-only"])
    assert "Partial: 2 of 5 students" in (tmp_path / "results" / "distill_compare.md").read_text()

    # a second seed: seed 0's students are reused, every other student is trained again with seed 1
    trainers.clear()
    config.seeds = [0, 1]
    results = run_distill(config, log=lambda line: None)
    assert len(trainers) == 4 and [r.seed for r in results].count(1) == 4
    assert [r.student for r in results if r.seed == 1] == ["full-seed1", "greedy-joint-keep0.5-seed1",
                                                           "uniform-keep0.5-seed1", "truncation-keep0.5-seed1"]  # fmt: skip
    assert json.loads((out / "students" / "uniform-keep0.5-seed1" / "train.json").read_text())["settings"]["seed"] == 1
    comparisons = (out / "results.md").read_text().split("## Paired comparisons with greedy-joint")[1]
    assert "| 0.5 | uniform | 2 | 3 |" in comparisons and "| 0.5 | truncation | 2 | 3 |" in comparisons


def test_paired_comparisons_average_seeds_per_question_and_holm_correct(tmp_path):
    from prunelens.distill.report import paired_comparisons

    def student(name, grades):
        folder = tmp_path / "eval" / name
        folder.mkdir(parents=True)
        (folder / "predictions.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "correct": bool(g)}) + "\n"
                                                          for i, g in enumerate(grades)))  # fmt: skip
        return name

    rng = np.random.default_rng(0)
    greedy = [rng.random(60) < 0.6 for _ in range(3)]
    rows = [{"student": student(f"g{s}", greedy[s]), "method": "greedy-joint", "keep": 0.5, "seed": s} for s in range(3)]
    rows += [{"student": student(f"u{s}", np.zeros(60)), "method": "uniform", "keep": 0.5, "seed": s} for s in range(3)]
    rows += [{"student": student(f"t{s}", greedy[s]), "method": "truncation", "keep": 0.5, "seed": s} for s in range(2)]
    rows.append({"student": "t2-never-evaluated", "method": "truncation", "keep": 0.5, "seed": 2})  # no predictions
    with (tmp_path / "eval" / "u0" / "predictions.jsonl").open("a") as extra:  # a rerun's duplicate row: the first counts
        extra.write(json.dumps({"id": "q0", "correct": True}) + "\n")
    uniform, truncation = paired_comparisons(tmp_path, rows)
    assert (uniform["seeds"], uniform["questions"], truncation["seeds"]) == (3, 60, 2)
    assert uniform["difference"] == pytest.approx(np.mean(greedy, axis=0).mean()) and uniform["p_holm"] < 0.05
    assert truncation["difference"] == 0.0 and truncation["p_holm"] == 1.0  # the same grades on the seeds both have
    assert sorted([uniform["level"], truncation["level"]]) == pytest.approx([0.95, 0.975])
    assert uniform["low"] < uniform["difference"] < uniform["high"]


def test_config_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('methods = ["uniform"]\nlearning_rate = 1\n')
    with pytest.raises(PrunelensError, match="unknown key.*learning_rate"):
        load_distill_config(bad)
    bad.write_text("[train]\nlr = 1\n")
    with pytest.raises(PrunelensError, match=r"\[train\] has unknown key.*lr"):
        load_distill_config(bad)
    bad.write_text("methods = [")
    with pytest.raises(PrunelensError, match="not valid TOML"):
        load_distill_config(bad)
    with pytest.raises(PrunelensError, match="unknown preset"):
        load_distill_config(None, "gpu")
    with pytest.raises(PrunelensError, match="cannot read config"):
        load_distill_config(tmp_path / "missing.toml")


def test_config_file_merges_tables_over_the_preset(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('keeps = [0.9]\n[train]\nsteps = 3\n')
    config = load_distill_config(path)
    assert config.keeps == [0.9] and config.train["steps"] == 3
    assert config.train["student"] == PRESETS["cpu"]["train"]["student"]  # the rest of the table stays
    paper = load_distill_config(None, "paper")
    assert paper.train["batch_size"] * paper.train["grad_accum"] == 28 and paper.train["steps"] == 1200


def test_cli_dry_run_prints_the_resolved_settings(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('dataset = "gsm8k"\n')
    result = CliRunner().invoke(app, ["distill", "run", str(path), "--dry-run"])
    assert result.exit_code == 0 and json.loads(result.output)["dataset"] == "gsm8k"
    result = CliRunner().invoke(app, ["distill", "run", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2 and "cannot read config" in result.output


@pytest.mark.parametrize("text, message", [
    ('methods = ["h2O"]', "unknown method 'h2O'"),
    ("keeps = [0.5, 1.5]", r"keeps must be numbers in \(0, 1\]"),
    ('[train]\nlearning_rate = "1e-4"', "learning_rate must be a positive number"),
    ('[teach]\nsplit = "test"', "students would be tested on their training data"),
    ("[prune.answer]\nwindow = 8", "greedy-answer cannot use window screening"),
    ("seeds = [0, 0]", r"seeds must be distinct non-negative integers, got \[0, 0\]"),
    ("seeds = []", "seeds must be distinct non-negative integers"),
    ("[train]\nseed = 3", "set the training seeds with the top-level seeds"),
])  # fmt: skip
def test_settings_that_would_fail_late_are_refused_up_front(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(PrunelensError, match=message):
        load_distill_config(path)


def test_cli_interrupt_is_one_line(tmp_path, monkeypatch):
    import prunelens.distill.run as run_module

    def interrupted(config, log=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "run_distill", interrupted)
    path = tmp_path / "mine.toml"
    path.write_text(f'out = "{tmp_path / "run"}"\n')
    result = CliRunner().invoke(app, ["distill", "run", str(path)])
    assert result.exit_code == 130 and "interrupted" in result.output and "Traceback" not in result.output
