"""The experiment and benchmark code paths, run end to end on a tiny model."""

import json

import numpy as np
import torch
from conftest import DATA_DIR, load_experiment

from prunelens.models import load_model
from prunelens.pruning.benchmark import (
    DEFAULT_MODES,
    modes_table,
    per_chain_table,
    run_modes,
)
from prunelens.pruning.chain import TokenizedChain
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


def test_benchmark_tables_on_a_tiny_model(tiny_model_dir):
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
    table = modes_table(chains, results, flops=1e11, params=10**6)
    assert "| fast | " in table and table.count("| yes |") >= 2
    assert "| fast bf16 | " in table and "| fast+lazy4/n3 | " in table and "| fast+window8/m4 | " in table
    assert next(loaded.model.parameters()).dtype == torch.float32  # the bf16 mode ran on a copy
    assert "| t0 | 12 | 10 | 2 |" in per_chain_table(chains, results)


def test_surrogate_experiment_runs_small(tmp_path, tiny_model_dir):
    module = load_experiment("surrogate_pearson")
    module.main(["--model", str(tiny_model_dir), "--train", "4", "--test", "4", "--epochs", "3", "--curve", "2", "4",
                 "--runs-dir", str(tmp_path / "runs"), "--out-dir", str(tmp_path / "out"), "--data-dir", str(DATA_DIR),
                 "--target-dtype", "float32", "--quiet"])  # fmt: skip
    report = (tmp_path / "out" / "surrogate_pearson.md").read_text()
    for row in ("MLP, Pearson loss (surrogate)", "MLP, MSE loss", "ridge regression", "raw H2O (negated)", "| total |"):
        assert row in report
    assert (tmp_path / "out" / "surrogate_scatter.png").stat().st_size > 1000
    records = [json.loads(line) for line in (tmp_path / "runs" / "targets-train-float32" / "rankings.jsonl").read_text().splitlines()]
    assert all(r["steps"] == 1 for r in records)
