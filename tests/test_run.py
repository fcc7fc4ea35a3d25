"""Pruning runs on a tiny saved model: output files, resume after interruption, bad input."""

import json

import numpy as np
import pytest
from conftest import comparable, interrupt_on_call, write_chains
from typer.testing import CliRunner

from prunelens.cli import app
from prunelens.core.errors import BadRecordError, PrunelensError, SettingsError
from prunelens.pruning import run as run_module
from prunelens.pruning.run import PruneConfig, run_pruning
from prunelens.pruning.store import open_scores

CHAINS = [
    {"id": "c1", "question": "Tom has 3 apples and buys 2. How many?", "reasoning": "3 + 2 = 5 apples.", "answer": "5"},
    {"id": "c2", "question": "What is 4 times 6?", "reasoning": "4 * 6 = 24, so 24.", "answer": "24"},
    {"id": "c3", "question": "Half of 10?", "reasoning": "10 / 2 = 5", "answer": "5"},
]


def config_for(tmp_path, model_dir, name="out", **overrides):
    values = dict(model=str(model_dir), chains=write_chains(tmp_path / "chains.jsonl", CHAINS),
                  out=tmp_path / name, limit=None, keep=0.5)  # fmt: skip
    values.update(overrides)
    return PruneConfig(**values)


def test_run_writes_records_and_score_store(tmp_path, tiny_model_dir):
    summary = run_pruning(config_for(tmp_path, tiny_model_dir), progress=False)
    assert [r.id for r in summary.rankings] == ["c1", "c2", "c3"]
    record = summary.rankings[0].to_dict()
    n = len(record["reasoning_ids"])
    assert "".join(record["reasoning_tokens"]) == CHAINS[0]["reasoning"]
    assert len(record["offsets"]) == n and len(record["deletion_order"]) == n - round(n / 2 + 1e-9)
    assert record["prompt_ids"] and record["answer_ids"] and record["objective"] == "joint"
    for key in ("base_score", "step_scores", "keep", "seconds", "model", "question", "answer"):
        assert key in record
    with open_scores(tmp_path / "out") as scores:
        assert scores["candidate_scores"].dims == ("example", "step", "position")
        assert list(scores["example"].values) == ["c1", "c2", "c3"]
        table = scores["candidate_scores"].sel(example="c1").values
        assert np.isnan(table[1, record["deletion_order"][0]])
        assert table[0, record["deletion_order"][0]] == pytest.approx(record["step_scores"][0])


def test_interrupted_run_resumes_to_the_same_result(tmp_path, tiny_model_dir, monkeypatch):
    clean = run_pruning(config_for(tmp_path, tiny_model_dir, "clean"), progress=False)

    interrupt_on_call(monkeypatch, run_module, "greedy_prune")
    with pytest.raises(KeyboardInterrupt):
        run_pruning(config_for(tmp_path, tiny_model_dir, "resumed"), progress=False)
    monkeypatch.undo()
    lines = (tmp_path / "resumed" / "rankings.jsonl").read_text().splitlines()
    assert len(lines) == 1
    # a kill mid-write leaves a torn line: resume drops it and redoes that example
    with open(tmp_path / "resumed" / "rankings.jsonl", "a") as handle:
        handle.write('{"id": "c2", "quest')
    resumed = run_pruning(config_for(tmp_path, tiny_model_dir, "resumed"), progress=False)
    assert resumed.new_ids == ["c2", "c3"]
    assert comparable(resumed.rankings) == comparable(clean.rankings)
    with open_scores(tmp_path / "clean") as a, open_scores(tmp_path / "resumed") as b:
        np.testing.assert_array_equal(a["candidate_scores"].values, b["candidate_scores"].values)


def test_rerun_skips_finished_ids(tmp_path, tiny_model_dir):
    run_pruning(config_for(tmp_path, tiny_model_dir, limit=1), progress=False)
    again = run_pruning(config_for(tmp_path, tiny_model_dir), progress=False)
    assert again.new_ids == ["c2", "c3"] and len(again.rankings) == 3


def test_resume_refuses_other_settings(tmp_path, tiny_model_dir):
    run_pruning(config_for(tmp_path, tiny_model_dir, limit=1), progress=False)
    with pytest.raises(PrunelensError, match="other settings.*objective='joint'"):
        run_pruning(config_for(tmp_path, tiny_model_dir, objective="answer"), progress=False)


def test_resume_accepts_a_run_json_from_before_a_setting_existed(tmp_path, tiny_model_dir):
    first = run_pruning(config_for(tmp_path, tiny_model_dir, limit=1), progress=False)
    run_json = first.out_dir / "run.json"
    saved = json.loads(run_json.read_text())
    del saved["identity"]["window"], saved["identity"]["neighbors"]  # settings added later
    run_json.write_text(json.dumps(saved))
    assert run_pruning(config_for(tmp_path, tiny_model_dir), progress=False).new_ids == ["c2", "c3"]
    with pytest.raises(PrunelensError, match="other settings.*window='0'"):
        run_pruning(config_for(tmp_path, tiny_model_dir, screen=2, window=3), progress=False)


@pytest.mark.parametrize(
    "bad,message",
    [({"id": "x", "question": "q", "reasoning": "  ", "answer": "1"}, "'x': empty reasoning"),
     ({"id": "x", "question": "q", "reasoning": "r"}, "'x': missing 'answer'"),
     ({"id": "x", "question": "q", "reasoning": "word " * 500, "answer": "1"}, "'x': sequence of .* exceeds the model's context of 400")],
)  # fmt: skip
def test_bad_record_errors_and_keeps_finished_work(tmp_path, tiny_model_dir, bad, message):
    write = write_chains(tmp_path / "bad.jsonl", [CHAINS[0], bad, CHAINS[1]])
    config = config_for(tmp_path, tiny_model_dir, chains=write)
    with pytest.raises(BadRecordError, match=message):
        run_pruning(config, progress=False)
    finished = (tmp_path / "out" / "rankings.jsonl").read_text() if (tmp_path / "out" / "rankings.jsonl").exists() else ""
    if "missing 'answer'" not in message:  # missing answer is caught while reading, before any work
        assert [json.loads(line)["id"] for line in finished.splitlines()] == ["c1"]
    config.skip_bad = True
    summary = run_pruning(config, progress=False)
    assert [r.id for r in summary.rankings] == ["c1", "c2"] and summary.skipped == ["x"]
    skipped = [json.loads(line) for line in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    assert skipped[-1]["id"] == "x" and "x" in skipped[-1]["error"]


def test_malformed_chains_line(tmp_path, tiny_model_dir):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(CHAINS[0]) + "\n{not json\n")
    with pytest.raises(BadRecordError, match="broken.jsonl:2.*malformed JSON"):
        run_pruning(config_for(tmp_path, tiny_model_dir, chains=path), progress=False)
    summary = run_pruning(config_for(tmp_path, tiny_model_dir, chains=path, skip_bad=True), progress=False)
    assert [r.id for r in summary.rankings] == ["c1"]


def test_unknown_ids_are_reported(tmp_path, tiny_model_dir):
    with pytest.raises(PrunelensError, match="unknown id.*nope"):
        run_pruning(config_for(tmp_path, tiny_model_dir, ids=["c1", "nope"]), progress=False)


def test_shards_partition_the_examples_and_merge_back(tmp_path, tiny_model_dir):
    from prunelens.jobs.merge import merge_runs
    from prunelens.selection import parse_shard

    whole = run_pruning(config_for(tmp_path, tiny_model_dir, "whole"), progress=False)
    shards = [run_pruning(config_for(tmp_path, tiny_model_dir, f"s{k}", shard=f"{k}/2"), progress=False) for k in (0, 1)]
    assert [r.id for r in shards[0].rankings] == ["c1", "c3"] and [r.id for r in shards[1].rankings] == ["c2"]
    assert merge_runs(tmp_path / "merged", [s.out_dir for s in shards]) == 3
    with open_scores(tmp_path / "merged") as merged, open_scores(tmp_path / "whole") as reference:
        assert sorted(merged["example"].values) == ["c1", "c2", "c3"]
        for example_id in ("c1", "c2", "c3"):
            np.testing.assert_array_equal(
                merged["candidate_scores"].sel(example=example_id).values,
                reference["candidate_scores"].sel(example=example_id).values,
            )
    merged_records = {json.loads(line)["id"]: json.loads(line) for line in (tmp_path / "merged" / "rankings.jsonl").read_text().splitlines()}
    assert comparable([merged_records[r.id] for r in whole.rankings]) == comparable(whole.rankings)
    with pytest.raises(PrunelensError, match="K/N"):
        parse_shard("2")
    with pytest.raises(PrunelensError, match="0 ≤ K < N"):
        parse_shard("2/2")
    other = run_pruning(config_for(tmp_path, tiny_model_dir, "other", objective="answer", limit=1), progress=False)
    with pytest.raises(PrunelensError, match="was run with objective=.answer.*objective=.joint.; refusing"):
        merge_runs(tmp_path / "merged2", [shards[0].out_dir, other.out_dir])


def test_rounded_screening_run_records_its_approximation_and_names_its_folder(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = config_for(tmp_path, tiny_model_dir, out=None, screen_dtype="bfloat16", verify=2)
    summary = run_pruning(config, progress=False)
    assert summary.out_dir.name.endswith("-dbfloat16-v2")
    record = summary.rankings[0].to_dict()
    assert record["exact"] is False
    assert record["approximation"]["rounded"] == "bfloat16" and record["approximation"]["verify"] == 2
    assert "anchored" not in record["approximation"]
    with open_scores(summary.out_dir) as scores:  # only the verified candidates are scored in each round
        rounds = scores["candidate_scores"].sel(example="c2").values[: len(summary.rankings[1].deletion_order)]
        assert (np.isfinite(rounds).sum(axis=1) == 2).all()
    anchored = config_for(tmp_path, tiny_model_dir, out=None, screen=2, window=2, anchored=True)
    summary = run_pruning(anchored, progress=False)
    assert summary.out_dir.name.endswith("-m2-w2-anchored")
    assert summary.rankings[0].to_dict()["approximation"]["anchored"] is True


@pytest.mark.parametrize("overrides, message, flags", [
    (dict(screen_dtype="int3"), "unknown dtype 'int3' for screen_dtype", "unknown dtype 'int3' for --screen-dtype"),
    (dict(screen_dtype="bfloat16", screen=2), "rounded screening (screen_dtype) combines with full rounds or window",
     "rounded screening (--screen-dtype) combines with full rounds or --window"),
    (dict(verify=5), "verify counts the candidates rounded screening rescores: give screen_dtype too",
     "--verify counts the candidates rounded screening rescores: give --screen-dtype too"),
    (dict(anchored=True, screen=2), "anchored anchors window screening's estimates: it needs screen and window",
     "--anchored anchors window screening's estimates: it needs --screen and --window"),
])  # fmt: skip
def test_refused_settings_are_one_line_in_field_terms_or_flags(tmp_path, tiny_model_dir, overrides, message, flags):
    with pytest.raises(SettingsError) as refused:  # checked once, by the config: nothing is loaded or written
        config_for(tmp_path, tiny_model_dir, **overrides)
    assert str(refused.value).startswith(message) and "--" not in str(refused.value)
    args = [a for key, value in overrides.items() for a in ([f"--{key.replace('_', '-')}"] +
            ([] if value is True else [str(value)]))]  # fmt: skip
    result = CliRunner().invoke(app, ["prune", "--out", str(tmp_path / "cli"), *args])
    assert result.exit_code == 2 and result.output.startswith(f"error: {flags}") and len(result.output.splitlines()) == 1
    assert not (tmp_path / "cli").exists()
