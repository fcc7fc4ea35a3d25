"""The experiment and benchmark code paths, run end to end on a tiny model."""

import json

import numpy as np
import pytest
import torch
from conftest import DATA_DIR, load_experiment, markdown_tables, numbers

from prunelens.models import load_model
from prunelens.bench.modes import DEFAULT_MODES
from prunelens.bench.data import BenchData
from prunelens.bench.modes import BenchConfig
from prunelens.bench.report import modes_table, pareto_figure, per_chain_table, report_text, run_benchmark
from prunelens.bench.run import run_modes
from prunelens.core.chain import TokenizedChain
from prunelens.probes.surrogate import ExampleData
from prunelens.core.errors import PrunelensError
from prunelens.plots import frontier
from prunelens.pruning.compare import (
    deletion_ranks,
    hit_at_s,
    kendall_tau,
    removed_between,
)


def test_agreement_metrics():
    order = [3, 1, 0, 2]
    assert removed_between(order, 4, 1.0, 0.5) == {3, 1}
    assert hit_at_s(order, order, 4, 1.0, 0.5) == 1.0
    assert hit_at_s(order, [0, 2, 3, 1], 4, 1.0, 0.5) == 0.0
    assert hit_at_s(order, [3, 0, 1, 2], 4, 1.0, 0.5) == 0.5
    assert np.isnan(hit_at_s(order, order, 4, 1.0, 0.9))  # no token leaves in that band
    # the ranking is restricted to the tokens the reference still has at the band's start: deleting
    # token 1 one band early still ranks it ahead of the tokens the reference keeps
    reference, early = list(range(10)), [1, 0, 2, 3, 4, 5, 6, 7, 8, 9]
    assert hit_at_s(reference, early, 10, 0.9, 0.7) == 1.0
    assert hit_at_s(reference, early, 10, 1.0, 0.9) == 0.0
    assert hit_at_s(reference, [0, 9, 8, 1, 2], 10, 0.9, 0.7) == 0.0
    assert list(deletion_ranks([2, 0], 4)) == [1, 2, 0, 2]
    assert kendall_tau(order, order, 4) == 1.0 and kendall_tau(order, order[::-1], 4) < 0


def test_benchmark_tables_on_a_tiny_model(tmp_path, tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    rng = np.random.default_rng(0)
    chains = [TokenizedChain(f"t{i}", rng.integers(0, 500, 12).tolist(), rng.integers(0, 500, 10).tolist(),
                             [5, 6], "", "", [], []) for i in range(2)]  # fmt: skip
    modes = [m for m in DEFAULT_MODES if m.name in ("naive", "fast", "fast bf16", "fast+block4", "fast+lazy4/n3", "fast+window8/m4")]
    results = run_modes(loaded, chains, modes, progress=lambda line: None)
    assert results["fast"].orders == results["naive"].orders
    # naive computes every candidate in full, plus the unpruned chain once for the base score
    assert results["naive"].tokens[0] == results["naive"].candidate_tokens[0] + 12 + 10 + 2
    assert results["fast"].tokens[0] < results["naive"].tokens[0]
    (table,) = markdown_tables(modes_table(chains, results, flops=1e11, params=10**6))
    rows = {row["mode"]: row for row in table}
    assert list(rows) == [m.name for m in modes]
    naive_tokens = np.mean(results["naive"].tokens)
    for name, row in rows.items():  # each row shows its own mode's numbers
        assert (row["identical order"] == "yes") == (results[name].orders == results["naive"].orders)
        assert numbers(row["tokens computed"]) == [pytest.approx(np.mean(results[name].tokens), abs=0.5)]
        bound = naive_tokens / np.mean(results[name].tokens)
        assert numbers(row["FLOP-bound speed-up"]) == [pytest.approx(bound, abs=0.05)]
    assert rows["fast"]["identical order"] == "yes" and numbers(rows["fast"]["Kendall tau"]) == [1.0]
    assert next(loaded.model.parameters()).dtype == torch.float32  # the bf16 mode ran on a copy
    per_chain = markdown_tables(per_chain_table(chains, results))[0]
    assert [row["chain"] for row in per_chain] == ["t0", "t1"]
    for index, row in enumerate(per_chain):
        shown = [numbers(row[column])[0] for column in ("prompt", "reasoning", "answer", "naive tokens", "fast tokens")]
        assert shown == [12, 10, 2, results["naive"].tokens[index], results["fast"].tokens[index]]

    # what the run measured round-trips through its data file, and the report rebuilt from it is the same
    settings = {"model": "tiny", "dataset_title": "GSM8K", "max_tokens": 80, "objective": "joint", "keep": 0.5,
                "token_budget": 1024, "synthetic_tokens": 0, "synthetic_steps": 2}  # fmt: skip
    data = BenchData.of(settings, 1, 1e11, 10**6, [0.9, 0.8, 0.7, 0.6, 0.5], chains, results, seconds=3.0)
    loaded_data = BenchData.load(data.save(tmp_path / "bench.json"))
    assert report_text(loaded_data) == report_text(data) and "| fast bf16 |" in report_text(data)
    assert [c.reasoning_ids for c in loaded_data.tokenized_chains()] == [c.reasoning_ids for c in chains]
    assert loaded_data.results["fast"].orders == results["fast"].orders
    floor_row = next(row for row in markdown_tables(report_text(data))[0] if row["mode"] == "fast bf16")
    assert floor_row["meets floor"] == "yes"  # the floor is as faithful as itself
    report_rows = {row["mode"]: row for row in markdown_tables(report_text(data))[0]}
    assert report_rows["naive"]["meets floor"] == report_rows["fast"]["meets floor"] == "exact"  # not judged
    figure = pareto_figure({"tiny": data, "tiny again": loaded_data}, tmp_path / "pareto.png")
    assert figure.read_bytes()[:4] == b"\x89PNG"
    other = BenchData.of({**settings, "model": "other"}, 1, 1e11, 10**6, data.grid, chains, results, seconds=3.0)
    files = [str(data.save(tmp_path / "a.json")), str(other.save(tmp_path / "b.json"))]
    rebuilt = run_benchmark(BenchConfig(from_data=files, out=str(tmp_path / "r.md"), pareto=str(tmp_path / "p.png")))
    assert rebuilt.count("# Greedy pruning benchmark:") == 2 and "benchmark: other," in rebuilt
    assert (tmp_path / "p.png").exists() and not (tmp_path / "r.json").exists()  # nothing measured, nothing saved
    with pytest.raises(PrunelensError, match="a second benchmark of tiny; give one file per model"):
        run_benchmark(BenchConfig(from_data=[files[0], files[0]], out=None, pareto=None))
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(PrunelensError, match="not a benchmark data file"):
        BenchData.load(tmp_path / "other.json")


def test_frontier_keeps_the_points_nothing_beats_on_both_axes():
    points = {"fast": (4.0, 1.0), "slow": (1.0, 1.0), "quick": (14.0, 0.7), "worse": (10.0, 0.6), "tie": (4.0, 1.0)}
    assert frontier(points) == {"fast", "quick", "tie"}


def test_surrogate_experiment_runs_small(tmp_path, tiny_model_dir):
    module = load_experiment("surrogate_pearson")
    module.main(["--model", str(tiny_model_dir), "--train", "4", "--test", "4", "--epochs", "3", "--curve", "2", "4",
                 "--runs-dir", str(tmp_path / "runs"), "--out-dir", str(tmp_path / "out"), "--data-dir", str(DATA_DIR),
                 "--target-dtype", "float32", "--quiet"])  # fmt: skip
    methods, curve, stages = markdown_tables((tmp_path / "out" / "surrogate_pearson.md").read_text())
    assert [row["method"] for row in methods] == [
        "MLP, Pearson loss (surrogate)", "MLP, MSE loss", "ridge regression", "raw H2O (negated)", "position only (MLP)",
        "surprisal only (MLP)", "attention, trained on rows shuffled within each example (MLP)",
        "attention of a randomly initialised model (MLP)"]  # fmt: skip
    assert any((tmp_path / "runs").glob("features-random-init-test"))  # the control's own feature store
    assert [numbers(row["train examples"]) for row in curve] == [[2], [4]]
    for row in methods + curve:  # a correlation inside its bootstrap interval
        (pearson,), (low, high) = numbers(row["Pearson"]), numbers(row["95% CI"])
        assert -1 <= low <= pearson <= high <= 1
    assert all(0 < numbers(row["examples"])[0] <= 4 for row in methods)
    *steps, total = stages
    assert total["stage"] == "total"
    seconds = [numbers(row["seconds"])[0] for row in steps]
    assert numbers(total["seconds"])[0] == pytest.approx(sum(seconds), abs=0.05 * len(seconds))  # each cell rounded
    assert (tmp_path / "out" / "surrogate_scatter.png").stat().st_size > 1000
    records = [json.loads(line) for line in (tmp_path / "runs" / "targets-train-float32" / "rankings.jsonl").read_text().splitlines()]
    assert all(r["steps"] == 1 for r in records)


def test_gpu_check_smoke_run(tmp_path):
    module = load_experiment("gpu_check")
    # the shapes are the real architectures: SmolLM2-135M's and Llama-3.2-1B's parameter counts
    assert sum(p.numel() for p in module.random_model("smollm2", "meta").parameters()) == 134_515_008
    assert sum(p.numel() for p in module.random_model("llama1b", "meta").parameters()) == 1_235_814_400
    module.main(["--smoke", "--shapes", "smollm2", "--out-dir", str(tmp_path)])
    tables = markdown_tables((tmp_path / "gpu_check_cpu.md").read_text())
    scorers, backends = tables[0], tables[-1]
    rows = {(r["dtype"], r["scorer"], r["budget"]): r for r in scorers}
    assert set(rows) == {(dtype, scorer, budget) for dtype in ("float32", "bfloat16")
                         for scorer, budget in (("naive", "256"), ("fast", "32"), ("fast", "256"))}  # fmt: skip
    for (dtype, scorer, budget), row in rows.items():
        assert row["kernels/step"] == row["copies/step"] == row["peak MB"] == "–"  # no CUDA profile on CPU
        if dtype == "float32":  # the exact scorers agree with naive float32 on every step
            assert row["identical first-k"] == "3/3" and row["Hit@S"] == "1.00"
        # a budget that holds every packed suffix row: one forward per step; a small one splits them
        assert row["forwards/step"] == ("1.0" if scorer == "naive" else {"32": "2.0", "256": "1.0"}[budget])
    assert float(rows["float32", "fast", "256"]["tokens/step"]) < float(rows["float32", "naive", "256"]["tokens/step"])
    assert [r["backend"] for r in backends] == ["hf", "hf_blockwise"]


@pytest.mark.slow
def test_long_chain_benchmark_runs_small(tmp_path, tiny_model_dir):
    from prunelens.probes.features import FEATURE_DEFINITION
    from prunelens.probes.surrogate import Surrogate, SurrogateConfig
    from prunelens.bench.run import candidate_tokens
    from prunelens.pruning.greedy import EXACT, Approximation, greedy_prune
    from prunelens.bench.scaling import ScalingPoint, measure_points, partial_step, round_schedule
    from prunelens.pruning.scorers import make_scorer

    loaded = load_model(str(tiny_model_dir))
    rng = np.random.default_rng(0)
    prompt, reasoning, answer = rng.integers(0, 500, 9).tolist(), rng.permutation(500)[:20].tolist(), [5, 6, 7]
    # the schedule is the one greedy runs: deletions per round, and which rounds score every candidate
    for approximation in (EXACT, Approximation(block=0.1), Approximation(screen=4, rescore_every=3, neighbors=1),
                          Approximation(screen=3, rescore_every=0, window=4)):  # fmt: skip
        deleted = []
        out = greedy_prune(make_scorer("fast", loaded.model, 1024), prompt, reasoning, answer, "joint", 0.5,
                           on_step=deleted.append, approximation=approximation)  # fmt: skip
        schedule = round_schedule(approximation, len(reasoning), 0.5)
        assert deleted == [r.deletions for r in schedule]
        assert [np.isfinite(row).sum() == r.remaining for row, r in zip(out.candidate_scores, schedule)] == [
            r.full for r in schedule
        ]
    # a partial step scales to the full one: exactly for naive, within a few percent for fast
    naive = [partial_step(make_scorer("naive", loaded.model, 1024), prompt, reasoning, answer, "joint", k).tokens
             for k in (20, 5)]  # fmt: skip
    assert naive == [candidate_tokens(9, 20, 3, 1)] * 2
    full, sampled = (partial_step(make_scorer("fast", loaded.model, 1024), prompt, reasoning, answer, "joint", k)
                     for k in (20, 5))  # fmt: skip
    assert full.sampled == 20 and sampled.sampled == 5 and abs(sampled.tokens / full.tokens - 1) < 0.05
    grown = partial_step(make_scorer("fast", loaded.model, 1024), prompt, reasoning, answer, "joint", 2, min_tokens=90)
    assert 2 < grown.sampled < 20 and grown.tokens * grown.sampled / 20 >= 90  # redrawn larger to reach min_tokens

    out, features = tmp_path / "out", 2 * 4  # the tiny model's layers × heads
    surrogate = Surrogate(SurrogateConfig(kind="ridge"), np.zeros(features), np.ones(features),
                          {"weights": rng.normal(size=features)}, {"feature_definition": FEATURE_DEFINITION})  # fmt: skip
    surrogate.save(tmp_path / "surrogate.pt")
    module = load_experiment("bench_long_chains")
    module.main(["--model", str(tiny_model_dir), "--lengths", "8", "16", "--modes", "fast", "fast+block10%",
                 "fast+window8/m4", "fast+surr2", "--surrogate", str(tmp_path / "surrogate.pt"), "--candidates", "4",
                 "--screened", "2", "--memory-budgets", "64", "--in-process", "--out-dir", str(out)])  # fmt: skip
    totals, measured, memory = markdown_tables((out / "bench_long_chains.md").read_text())
    rows = {row["mode"]: row for row in totals}
    assert list(rows) == ["fast", "fast+block10%", "fast+window8/m4", "fast+surr2"]
    assert numbers(rows["fast"]["rounds at 8 / 16"]) == [4, 8]  # rounds to keep 0.5
    assert numbers(rows["fast+block10%"]["rounds at 8 / 16"]) == [4, 7]
    assert all(np.isfinite(float(row["exponent"])) for row in totals)

    def measurements(name, tokens, budget):
        return [row["what"] for row in measured if row["measurement"] == name
                and numbers(row["chain tokens"]) == [tokens] and numbers(row["token budget"]) == [budget]]  # fmt: skip

    (exact,) = measurements("fast exact step", 4, 1024)
    assert exact.startswith("partial step") and numbers(exact) == [4, 4]  # 4 of 4 candidates
    assert measurements("fast+window8/m4", 16, 64)[0] == "round 0 (screened)"
    assert [numbers(column) for column in memory[0]][1:] == [[1024], [64]]  # one column per token budget
    assert (out / "bench_long_chains.png").stat().st_size > 1000
    # a fresh process measures on its own; a chain longer than the model's context is a one-line error
    (fresh,) = measure_points([ScalingPoint(str(tiny_model_dir), "gsm8k", "fast", None, 8, 1024, candidates=2)])
    assert fresh.step.tokens > 0 and fresh.peak_mb >= fresh.start_mb > 0
    with pytest.raises(SystemExit, match=r"needs \d+ positions; the model has 400"):
        module.main(["--model", str(tiny_model_dir), "--lengths", "300", "500", "--modes", "fast", "--in-process",
                     "--out-dir", str(out)])  # fmt: skip
    # rounded screening needs a screener, which these scaling runs do not build: not offered
    assert "fast+window8/m4" in module.SCALABLE and not any("bf16/" in name for name in module.SCALABLE)
    with pytest.raises(SystemExit):
        module.main(["--model", str(tiny_model_dir), "--modes", "fast+bf16/v3", "--out-dir", str(out)])


def test_bench_refuses_unknown_modes_and_objectives_in_one_line():
    from typer.testing import CliRunner

    from prunelens.cli import app

    for args, problem in ((["--modes", "fast,fsat"], "unknown benchmark mode 'fsat'"),
                          (["--objective", "jiont"], "unknown objective 'jiont'")):  # fmt: skip
        result = CliRunner().invoke(app, ["bench", *args])
        lines = result.output.strip().splitlines()
        assert result.exit_code != 0 and len(lines) == 1 and problem in lines[0], result.output


def test_bench_chains_are_the_first_n_within_max_tokens():
    from prunelens.datasets import Example
    from prunelens.selection import ids_by_length

    def words(text, add_special_tokens=False):
        return {"input_ids": text.split()}

    lengths = [5, 90, 3, 80, 81, 7]
    examples = [Example(f"e{i}", "q", "1", " ".join(["w"] * k)) for i, k in enumerate(lengths)]
    assert ids_by_length(examples, words, 1, 80, 3) == ["e0", "e2", "e3"]  # 90 and 81 are skipped, 80 is in
    assert ids_by_length(examples, words, 1, 80, 10) == ["e0", "e2", "e3", "e5"]


def test_profile_script_accounts_for_the_wall_time(tmp_path, tiny_model_dir):
    from prunelens.datasets import get_benchmark, load_examples
    from prunelens.datasets.tokenize import tokenize_chain

    module = load_experiment("profile_greedy")
    loaded = load_model(str(tiny_model_dir))
    example = load_examples("gsm8k", "test")[0]
    chain = tokenize_chain(loaded.tokenizer, get_benchmark("gsm8k"), example, loaded.max_positions)
    wall, parts = module.profile_chain(loaded, chain, 2, 1024)
    assert set(parts) == {*module.GROUPS, "other torch ops", "Python outside torch ops"}
    assert all(parts[group] > 0 for group in module.GROUPS)  # output tiles, attention and the other linear layers
    profiled = sum(v for k, v in parts.items() if k != "Python outside torch ops")
    assert profiled <= wall * 1.02  # each op's self time counted once
    out = tmp_path / "profile.md"
    module.main(["--models", str(tiny_model_dir), "--chains", "1", "--steps", "2", "--out", str(out)])
    table, memory = markdown_tables(out.read_text())
    assert [row["part"] for row in table] == [*parts, "wall time"]
    (row,) = memory
    assert numbers(row["model MB (parameters, buffers)"])[0] > 0 and len(numbers(row["(model + step) ÷ model"])) == 1
    assert "(80 tokens)" in row["chain"] or numbers(row["chain"])[-1] <= 80  # the longest chain within the limit


def test_surrogate_controls_keep_targets_and_change_only_the_features():
    module = load_experiment("surrogate_pearson")
    rng = np.random.default_rng(0)
    examples = [ExampleData(f"e{i}", rng.normal(size=(n, 6)), rng.normal(size=n)) for i, n in enumerate((5, 9))]
    for control in (module.position_only(examples), module.shuffled(examples)):
        assert [c.id for c in control] == ["e0", "e1"] and all(np.array_equal(c.y, e.y) for c, e in zip(control, examples))
    position = module.position_only(examples)[1].x
    assert position.shape == (9, 3) and np.allclose(position[:, 0], np.arange(9) / 9) and np.all(position[:, 2] == 9)
    mixed = module.shuffled(examples)
    for c, e in zip(mixed, examples):  # the same rows, in another order
        assert sorted(map(tuple, c.x)) == sorted(map(tuple, e.x)) and not np.array_equal(c.x, e.x)
