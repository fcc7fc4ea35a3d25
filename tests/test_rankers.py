"""Every registered ranker run through `run_rank` on the tiny model, and the rank job's shared loop and CLI."""

import json
import shutil

import numpy as np
import pytest
import torch
import typer
from conftest import comparable, interrupt_on_call, write_chains
from test_tokenskip import classifier_dir  # noqa: F401  (module fixture: a saved tiny LLMLingua-2 classifier)
from typer.testing import CliRunner

from prunelens.core.errors import BadRecordError, PrunelensError, SettingsError
from prunelens.core.registry import RANKERS
from prunelens.core.ranking import load_rankings
from prunelens.core.settings import build_config, cli_command
from prunelens.rankers.run import RankConfig, run_rank
from prunelens.rankers.surprisal import SurprisalOptions
from prunelens.rankers.uniform import UniformOptions

CHAINS = [
    {"id": "c1", "question": "Tom has 3 apples and buys 2. How many?", "reasoning": "3 + 2 = 5 apples.", "answer": "5"},
    {"id": "c2", "question": "What is 4 times 6?", "reasoning": "4 * 6 = 24, so the product is 24.", "answer": "24"},
    {"id": "c3", "question": "Half of 10?", "reasoning": "10 / 2 = 5", "answer": "5"},
    {"id": "c4", "question": "What is 7 + 8?", "reasoning": "First add 7 and 8: 7 + 8 = 15. The sum is 15.", "answer": "15"},
]
PRUNED = ["c1", "c2", "c4"]  # the pruning run lacks c3


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    torch.set_num_threads(1)
    return tmp_path_factory.mktemp("rankers")


@pytest.fixture(scope="module")
def chains(root):
    return write_chains(root / "chains.jsonl", CHAINS)


@pytest.fixture(scope="module")
def features_dir(root, chains, tiny_model_dir):
    from prunelens.probes.run import FeaturesConfig, run_features

    out = root / "features"
    run_features(FeaturesConfig(model=str(tiny_model_dir), chains=chains, out=out, limit=None), progress=False)
    return out


@pytest.fixture(scope="module")
def prune_dir(root, chains, tiny_model_dir):
    from prunelens.pruning.run import PruneConfig, run_pruning

    out = root / "prune"
    run_pruning(PruneConfig(model=str(tiny_model_dir), chains=chains, out=out, limit=None, ids=PRUNED, steps=2),
                progress=False)  # fmt: skip
    return out


@pytest.fixture
def rank(tmp_path, chains, tiny_model_dir):
    """run_rank into tmp_path/<out> over every chain unless told otherwise."""

    def run(out="out", **settings):
        values = dict(model=str(tiny_model_dir), chains=chains, out=tmp_path / out, limit=None)
        return run_rank(build_config(RankConfig, {**values, **settings}), progress=False)  # a method's options flat

    return run


def by_id(summary):
    return {r.id: r for r in summary.rankings}


EVERY_OTHER = """
from dataclasses import dataclass

from prunelens.core.ranked import Ranked
from prunelens.core.settings import setting
from prunelens.rankers.base import Ranker


@dataclass
class EveryOtherOptions:
    offset: int = setting(0, "remove every other token from this one first", result=True, name="o")


class EveryOtherRanker(Ranker):
    def rank(self, example, chain):
        first = list(range(self.options.offset, len(chain.reasoning_ids), 2))
        return Ranked(first + [i for i in range(len(chain.reasoning_ids)) if i not in first])
"""


def test_a_ranker_with_an_option_is_one_file_and_one_registration(tmp_path, monkeypatch, chains, tiny_model_dir):
    (tmp_path / "every_other.py").write_text(EVERY_OTHER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(RANKERS, "_entries", dict(RANKERS._entries))
    RANKERS.register("every-other", "every_other:EveryOtherRanker", "every other token first (--offset)",
                     options="every_other:EveryOtherOptions")  # fmt: skip
    with pytest.raises(ValueError, match="already registered"):
        RANKERS.register("every-other", "every_other:EveryOtherRanker", "again")
    command = typer.Typer()
    command.command()(cli_command(RankConfig, lambda config: print(run_rank(config, progress=False).out_dir)))
    args = ["--method", "every-other", "--model", str(tiny_model_dir), "--chains", str(chains), "--limit", "1"]
    with monkeypatch.context() as inside:
        inside.chdir(tmp_path)
        result = CliRunner().invoke(command, [*args, "--offset", "1"])
        assert result.exit_code == 0, result.output
        out = tmp_path / result.output.strip()
        assert out.name.endswith("-every-other-o1")  # the option names the folder, from its own declaration
        (ranking,) = load_rankings(out)
        assert ranking.deletion_order[:2] == [1, 3] and json.loads((out / "run.json").read_text())["identity"]["offset"] == "1"
        refused = CliRunner().invoke(command, ["--method", "uniform", "--offset", "1"])
        assert refused.exit_code != 0 and isinstance(refused.exception, SettingsError)
        assert str(refused.exception) == "offset is a setting of method every-other, not uniform"  # field terms


def test_uniform_is_a_seeded_permutation_whatever_the_selection(rank):
    full = rank("a", method="uniform")
    assert [r.id for r in full.rankings] == ["c1", "c2", "c3", "c4"]
    for r in full.rankings:
        assert sorted(r.deletion_order) == list(range(r.n)) and r.settings == {"seed": 0} and r.scores is None
    assert comparable(rank("b", method="uniform").rankings) == comparable(full.rankings)
    alone = rank("c2", method="uniform", ids=["c2"])
    assert [r.id for r in alone.rankings] == ["c2"]
    assert alone.rankings[0].deletion_order == by_id(full)["c2"].deletion_order
    shard = rank("shard", method="uniform", shard="1/2")
    assert [r.id for r in shard.rankings] == ["c2", "c4"]
    assert [r.deletion_order for r in shard.rankings] == [by_id(full)[i].deletion_order for i in ("c2", "c4")]
    other = by_id(rank("seed1", method="uniform", seed=1))["c4"]
    assert other.n >= 8 and other.deletion_order != by_id(full)["c4"].deletion_order
    assert sorted(other.deletion_order) == list(range(other.n))


def test_uniform_default_output_dir_names_method_and_seed(chains, tiny_model_dir):
    names = [RankConfig(model=str(tiny_model_dir), chains=chains, method="uniform", options=UniformOptions(seed=s)).output_dir()
             for s in (0, 1)]  # fmt: skip
    assert names[0] != names[1] and all("uniform" in str(n) for n in names)


def test_truncation_removes_from_the_end(rank):
    rankings = rank(method="truncation").rankings
    assert any(r.n % 2 for r in rankings)  # an odd length exercises the rounding
    for r in rankings:
        assert r.deletion_order == list(range(r.n - 1, -1, -1))
        half = int(0.5 * r.n + 0.5)  # round(0.5 n) with halves up, as prunelens.core.keep.n_keep documents
        assert r.text(0.5) == "".join(r.reasoning_tokens[:half])
        assert r.text(1.0) == r.reasoning and r.method == "truncation"


def test_surprisal_matches_a_naive_forward(rank, prune_dir, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from prunelens.core.ranking import load_rankings

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    got = by_id(rank(method="surprisal", ids=PRUNED))
    for pruned in load_rankings(prune_dir):  # greedy records carry the prompt and answer ids
        ids = pruned.prompt_ids + pruned.reasoning_ids + pruned.answer_ids
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
        start = len(pruned.prompt_ids)
        expected = [-logprobs[start + j - 1, t].item() for j, t in enumerate(pruned.reasoning_ids)]
        ranking = got[pruned.id]
        assert ranking.reasoning_ids == pruned.reasoning_ids
        np.testing.assert_allclose(ranking.scores, expected, atol=1e-5, rtol=0)
        assert ranking.deletion_order == sorted(range(ranking.n), key=lambda i: (ranking.scores[i], i))


def test_reversed_surprisal_removes_the_most_surprising_first(rank, chains, tiny_model_dir):
    lowest = by_id(rank("low", method="surprisal"))
    highest = by_id(rank("high", method="surprisal", highest_first=True))
    for key, ranking in highest.items():
        np.testing.assert_array_equal(ranking.scores, lowest[key].scores)  # the same forward, the other end first
        assert ranking.deletion_order == sorted(range(ranking.n), key=lambda i: (-ranking.scores[i], i))
        assert ranking.deletion_order != lowest[key].deletion_order
        assert "highest removed first" in ranking.score_meaning and ranking.settings == {"highest_first": True}
    names = {RankConfig(model=str(tiny_model_dir), chains=chains, method="surprisal",
                        options=SurprisalOptions(highest_first=flag)).output_dir().name for flag in (False, True)}  # fmt: skip
    assert len(names) == 2 and any("highest-first" in name for name in names)


def test_h2o_from_features_equals_h2o_from_a_backend(rank, features_dir):
    stored = rank("stored", method="h2o", features=features_dir)
    computed = rank("computed", method="h2o", backend="hf")
    assert [r.id for r in stored.rankings] == [r.id for r in computed.rankings] == ["c1", "c2", "c3", "c4"]
    for a, b in zip(stored.rankings, computed.rankings):
        assert a.deletion_order == b.deletion_order
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
        assert a.deletion_order == sorted(range(a.n), key=lambda i: (a.scores[i], i))
        assert a.settings == {"features": str(features_dir)} and b.settings == {"backend": "hf"}


def test_h2o_refuses_a_feature_store_of_another_model(rank, features_dir, tiny_model_dir, tmp_path):
    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    with pytest.raises(PrunelensError, match=f"feature store {features_dir}.*{tiny_model_dir}.*not '{copy}'"):
        rank(method="h2o", features=features_dir, model=str(copy))
    assert not (tmp_path / "out" / "rankings.jsonl").exists() and not (tmp_path / "out" / "run.json").exists()


def test_greedy_passes_the_pruning_rankings_on(rank, prune_dir):
    from prunelens.core.ranking import load_rankings

    summary = rank(method="greedy", pruning=prune_dir, ids=PRUNED)
    assert comparable(summary.rankings) == comparable(load_rankings(prune_dir))
    assert all(r.method == "greedy" and len(r.deletion_order) == 2 for r in summary.rankings)


def test_greedy_needs_pruning(rank, tmp_path):
    with pytest.raises(PrunelensError, match="needs --pruning") as info:
        rank(method="greedy")
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


def test_greedy_id_missing_from_the_pruning_run_is_a_bad_record(rank, prune_dir, tmp_path):
    with pytest.raises(BadRecordError, match="'c3': no greedy ranking in"):
        rank(method="greedy", pruning=prune_dir)
    lines = (tmp_path / "out" / "rankings.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["c1", "c2"]


def test_greedy_id_missing_from_the_pruning_run_is_skipped_with_skip_bad(rank, prune_dir, tmp_path):
    summary = rank(method="greedy", pruning=prune_dir, skip_bad=True)
    assert [r.id for r in summary.rankings] == PRUNED and summary.skipped == ["c3"]
    skipped = [json.loads(line) for line in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    assert [s["id"] for s in skipped] == ["c3"]


def test_tokenskip_orders_by_keep_probability(rank, classifier_dir):  # noqa: F811
    summary = rank(method="tokenskip", classifier=str(classifier_dir))
    assert len(summary.rankings) == 4
    for r in summary.rankings:
        assert len(r.scores) == r.n and all(0.0 <= s <= 1.0 for s in r.scores)
        assert r.deletion_order == sorted(range(r.n), key=lambda i: (r.scores[i], i))
        assert r.settings == {"classifier": str(classifier_dir)} and "keep probability" in r.score_meaning
    assert np.std(np.concatenate([r.scores for r in summary.rankings])) > 1e-4  # not a constant


def test_tokenskip_unloadable_classifier_is_one_line(rank, tmp_path):
    with pytest.raises(PrunelensError, match="TokenSkip classifier .*could not load") as info:
        rank(method="tokenskip", classifier=str(tmp_path / "no-such-classifier"))
    assert "\n" not in str(info.value) and not (tmp_path / "out" / "rankings.jsonl").exists()


def test_surrogate_orders_by_predicted_score(rank, features_dir, prune_dir, tmp_path):
    from prunelens.probes.store import FeatureIndex, store_meta
    from prunelens.analysis.surrogate_data import load_examples_for_surrogate
    from prunelens.probes.surrogate import (
        Surrogate,
        SurrogateConfig,
        train_surrogate,
    )

    data = load_examples_for_surrogate(features_dir, prune_dir)
    assert [e.id for e in data] == PRUNED
    saved = tmp_path / "s.pt"
    train_surrogate(data, SurrogateConfig(hidden=8, epochs=3), meta=store_meta(features_dir)).save(saved)
    summary = rank(method="surrogate", surrogate=saved, features=features_dir)
    surrogate, store = Surrogate.load(saved), FeatureIndex(features_dir)
    assert len(summary.rankings) == 4
    for r in summary.rankings:
        rows = store.rows_for(r.id, r.reasoning_ids)
        predicted = surrogate.predict(store.attention[rows].reshape(len(rows), -1))
        np.testing.assert_allclose(r.scores, predicted, rtol=1e-6, atol=1e-9)
        assert r.deletion_order == sorted(range(r.n), key=lambda i: (-predicted[i], i))
        assert "highest removed first" in r.score_meaning


def test_surrogate_trained_on_another_feature_definition_is_refused(rank, features_dir, tmp_path):
    from prunelens.probes.store import FeatureIndex, store_meta
    from prunelens.probes.surrogate import Surrogate, SurrogateConfig

    width = FeatureIndex(features_dir).attention[0].size  # same model, same width: only the definition differs
    meta = {**store_meta(features_dir), "feature_definition": "attention[token] = sum over heads"}
    Surrogate(SurrogateConfig(kind="ridge"), np.zeros(width), np.ones(width), {"weights": np.ones(width)},
              meta).save(tmp_path / "old.pt")  # fmt: skip
    refused = r"--surrogate .*old.pt: trained on features defined as 'attention\[token\] = sum over heads', not as"
    with pytest.raises(PrunelensError, match=refused) as info:
        rank(method="surrogate", surrogate=tmp_path / "old.pt", features=features_dir)
    assert "\n" not in str(info.value) and not (tmp_path / "out" / "rankings.jsonl").exists()


@pytest.mark.parametrize("missing", ["surrogate", "features"])
def test_surrogate_needs_its_inputs(rank, features_dir, tmp_path, missing):
    (tmp_path / "s.pt").write_bytes(b"")
    given = {"surrogate": tmp_path / "s.pt", "features": features_dir}
    del given[missing]
    with pytest.raises(PrunelensError, match=f"--method surrogate needs --{missing}"):
        rank(method="surrogate", **given)
    assert not (tmp_path / "out").exists()


def test_interrupted_rank_resumes_to_the_same_result(rank, monkeypatch):
    from prunelens.rankers.uniform import UniformRanker

    clean = rank("clean", method="uniform", seed=3)
    interrupt_on_call(monkeypatch, UniformRanker, "rank")
    with pytest.raises(KeyboardInterrupt):
        rank("resumed", method="uniform", seed=3)
    monkeypatch.undo()
    resumed = rank("resumed", method="uniform", seed=3)
    assert resumed.new_ids == ["c2", "c3", "c4"]
    assert comparable(resumed.rankings) == comparable(clean.rankings)


def test_resume_refuses_another_seed(rank):
    rank(method="uniform", ids=["c1"])
    with pytest.raises(PrunelensError, match=r"other settings: seed='0' \(now '1'\)"):
        rank(method="uniform", seed=1)


def test_unknown_method(rank, tmp_path):
    with pytest.raises(PrunelensError, match="unknown ranker 'nope'"):
        rank(method="nope")


@pytest.mark.parametrize("bad", [{"method": "nope"}, {"model": "/no/such/model-dir"}])
def test_failed_validation_writes_no_run_json(rank, tmp_path, bad):
    with pytest.raises(PrunelensError):
        rank(**{"method": "truncation", **bad})
    assert not (tmp_path / "out" / "run.json").exists()
    assert [r.id for r in rank(method="truncation").rankings] == ["c1", "c2", "c3", "c4"]
    assert json.loads((tmp_path / "out" / "run.json").read_text())["identity"]["method"] == "truncation"


def test_cli_rank(chains, tiny_model_dir, tmp_path):
    from prunelens.cli import app

    out = tmp_path / "out"
    args = ["rank", "--model", str(tiny_model_dir), "--chains", str(chains), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--method", "truncation"])
    assert result.exit_code == 0, result.output
    assert len((out / "rankings.jsonl").read_text().splitlines()) == 3  # the default --limit 3
    failed = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "bad"), "--method", "nope"])
    assert failed.exit_code == 2
    lines = failed.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown ranker 'nope'")
