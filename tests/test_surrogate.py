"""The Pearson-loss surrogate, its baselines, the feature/target join, and the surrogate CLI."""

import json

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr
from typer.testing import CliRunner

from prunelens.cli import app
from prunelens.core.errors import PrunelensError
from prunelens.analysis.surrogate_data import load_examples_for_surrogate
from prunelens.probes.surrogate import (
    ExampleData,
    Surrogate,
    SurrogateConfig,
    correlations,
    pearson_loss,
    train_surrogate,
)  # fmt: skip


def synthetic(n_examples, seed, features=12):
    """Targets a nonlinear function of the features plus a large per-example offset that attention
    cannot know: a within-example correlation is learnable, absolute levels are not."""
    rng = np.random.default_rng(seed)
    data = []
    for i in range(n_examples):
        x = rng.normal(size=(int(rng.integers(8, 20)), features)).astype(np.float32)
        y = np.tanh(x[:, 0]) + 0.5 * x[:, 1] ** 2 + 0.05 * rng.normal(size=len(x)) + rng.normal(scale=100)
        data.append(ExampleData(f"e{i}", x, y))
    return data


def test_pearson_loss_is_one_minus_mean_within_example_correlation():
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=10), rng.normal(size=10)
    expected = 1 - np.mean([pearsonr(p[:4], t[:4]).statistic, pearsonr(p[4:], t[4:]).statistic])
    assert pearson_loss(torch.tensor(p), torch.tensor(t), [4, 6]).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("kind,loss,floor", [("mlp", "pearson", 0.9), ("mlp", "mse", 0.85), ("ridge", "pearson", 0.3)])
def test_surrogates_learn_within_example_structure(kind, loss, floor):
    train, test = synthetic(60, 1), synthetic(30, 2)
    model = train_surrogate(train, SurrogateConfig(kind=kind, loss=loss, epochs=60))
    summary = correlations(test, [model.predict(e.x) for e in test]).summary()
    assert summary["pearson"] > floor and summary["n_examples"] == 30
    low, high = summary["pearson_ci"]
    assert low <= summary["pearson"] <= high


def test_untrained_baseline_is_near_zero():
    test = synthetic(30, 3)
    rng = np.random.default_rng(4)
    summary = correlations(test, [rng.normal(size=len(e.y)) for e in test]).summary()
    assert abs(summary["pearson"]) < 0.2


def test_save_and_load_roundtrip(tmp_path):
    train = synthetic(10, 5)
    model = train_surrogate(train, SurrogateConfig(epochs=5), meta={"model": "m", "feature_definition": "d"})
    model.save(tmp_path / "s.pt")
    loaded = Surrogate.load(tmp_path / "s.pt")
    np.testing.assert_allclose(loaded.predict(train[0].x), model.predict(train[0].x))
    assert loaded.meta == {"model": "m", "feature_definition": "d", "train_ids": [e.id for e in train]}
    assert loaded.config.epochs == 5


def test_config_rejects_unknown_choices():
    with pytest.raises(PrunelensError, match="unknown surrogate loss 'l1'"):
        SurrogateConfig(loss="l1")


@pytest.fixture(scope="module")
def tiny_artifacts(tmp_path_factory, tiny_model_dir):
    """Step-0 pruning targets and features for the same chains with the tiny model."""
    from prunelens.probes.run import FeaturesConfig, run_features
    from prunelens.pruning.run import PruneConfig, run_pruning

    root = tmp_path_factory.mktemp("artifacts")
    chains = root / "chains.jsonl"
    rows = [{"id": f"c{i}", "question": f"What is {i} + {i}?", "reasoning": f"{i} + {i} = {2 * i}, so the sum is {2 * i}.",
             "answer": str(2 * i)} for i in range(6)]  # fmt: skip
    chains.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_pruning(PruneConfig(model=str(tiny_model_dir), chains=chains, out=root / "prune", limit=None, steps=1), progress=False)
    run_features(FeaturesConfig(model=str(tiny_model_dir), chains=chains, out=root / "features", limit=None), progress=False)
    return root


def test_join_uses_step_zero_scores(tiny_artifacts):
    from prunelens.pruning.store import open_scores

    data = load_examples_for_surrogate(tiny_artifacts / "features", tiny_artifacts / "prune")
    assert [e.id for e in data] == [f"c{i}" for i in range(6)]
    with open_scores(tiny_artifacts / "prune") as scores:
        np.testing.assert_allclose(data[2].y, scores["candidate_scores"].sel(example="c2").values[0, : len(data[2].y)])
    assert data[0].x.shape[1] == 2 * 4  # layers × heads
    ranks = load_examples_for_surrogate(tiny_artifacts / "features", tiny_artifacts / "prune", target="rank")
    assert ranks[0].y.min() == 0


def test_join_refuses_mismatched_tokens(tiny_artifacts, tmp_path):
    import shutil

    bad = tmp_path / "prune"
    shutil.copytree(tiny_artifacts / "prune", bad)
    lines = (bad / "rankings.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["reasoning_ids"][0] += 1
    (bad / "rankings.jsonl").write_text("\n".join([json.dumps(first)] + lines[1:]) + "\n")
    with pytest.raises(PrunelensError, match="'c0': the feature store .* holds other tokens"):
        load_examples_for_surrogate(tiny_artifacts / "features", bad)


def test_surrogate_cli(tiny_artifacts, tmp_path):
    runner = CliRunner()
    features, targets, saved = tiny_artifacts / "features", tiny_artifacts / "prune", tmp_path / "s.pt"
    trained = runner.invoke(app, ["surrogate", "train", "--features", str(features), "--targets", str(targets),
                                  "--out", str(saved), "--epochs", "3"])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert Surrogate.load(saved).meta["model"] and "mean over later" in Surrogate.load(saved).meta["feature_definition"]
    evaluated = runner.invoke(app, ["surrogate", "eval", "--surrogate", str(saved), "--features", str(features),
                                    "--targets", str(targets)])  # fmt: skip
    assert evaluated.exit_code == 0 and json.loads(evaluated.stdout)["n_examples"] == 6
    assert json.loads(evaluated.stdout)["in_sample_examples"] == 6  # evaluated on its own training examples
    assert "6 of the 6 evaluation examples were in the surrogate's training set" in evaluated.stderr
    out = tmp_path / "p.jsonl"
    predicted = runner.invoke(app, ["surrogate", "predict", "--surrogate", str(saved), "--features", str(features),
                                    "--out", str(out)])  # fmt: skip
    assert predicted.exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and all(np.isfinite(r["predictions"]).all() for r in rows)
