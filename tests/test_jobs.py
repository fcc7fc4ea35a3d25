"""The shared job loop end to end: resume refusals, default output names, unconsolidated stores, CLI
errors, merge, surrogate warnings, progress lines and --threads (tiny saved model, tiny chains)."""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import comparable, interrupt_on_call, write_chains
from typer.testing import CliRunner

from prunelens.cli import app
from prunelens.core.errors import PrunelensError, SettingsError
from prunelens.jobs.workers import set_threads
from prunelens.jobs.merge import merge_runs
from prunelens.probes.run import FeaturesConfig, run_features
from prunelens.probes.store import open_features
from prunelens.pruning import run as run_module
from prunelens.pruning.run import PruneConfig, run_pruning
from prunelens.pruning.store import open_scores
from prunelens.core.settings import build_config, identity
from prunelens.rankers.greedy import GreedyOptions
from prunelens.rankers.run import RankConfig, run_rank
from prunelens.rankers.uniform import UniformOptions

CHAINS = [
    {"id": "c1", "question": "Tom has 3 apples and buys 2. How many?", "reasoning": "3 + 2 = 5 apples.", "answer": "5"},
    {"id": "c2", "question": "What is 4 times 6?", "reasoning": "4 * 6 = 24, so 24.", "answer": "24"},
    {"id": "c3", "question": "Half of 10?", "reasoning": "10 / 2 = 5", "answer": "5"},
    # 12 tokens: 0.8 · 12 = 9.6 rounds up to 10 kept, so a run to keep 0.8 stops at 10/12 ≈ 0.83 > 0.8
    {"id": "c4", "question": "What is 5 + 5?", "reasoning": "5 + 5 = 10, so ten.", "answer": "10"},
]
IDS = [c["id"] for c in CHAINS]


def one_line_error(result) -> str:
    """The CLI printed exactly one line, an ``error:`` line; return it."""
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("jobs")


@pytest.fixture(scope="module")
def chains(root):
    return write_chains(root / "chains.jsonl", CHAINS)


@pytest.fixture(scope="module")
def settings(chains, tiny_model_dir):
    """Shared config values: the tiny model over every chain, one torch thread."""
    return dict(model=str(tiny_model_dir), chains=chains, limit=None, threads=1)


@pytest.fixture(scope="module")
def prune_dir(root, settings):
    out = root / "prune"
    run_pruning(PruneConfig(**settings, out=out, steps=2), progress=False)
    return out


@pytest.fixture(scope="module")
def features_dir(root, settings):
    out = root / "features"
    run_features(FeaturesConfig(**settings, out=out), progress=False)
    return out


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# 1. resuming with other result settings


def test_features_resume_refuses_another_backend_or_dtype(tmp_path, settings, features_dir):
    out = tmp_path / "features"
    shutil.copytree(features_dir, out)
    saved = (out / "run.json").read_text()
    with pytest.raises(PrunelensError, match=r"other settings: backend='hf' \(now 'nnsight'\)"):
        run_features(FeaturesConfig(**settings, out=out, backend="nnsight"), progress=False)
    with pytest.raises(PrunelensError, match=r"other settings: dtype='float32' \(now 'bfloat16'\)"):
        run_features(FeaturesConfig(**settings, out=out, dtype="bfloat16"), progress=False)
    with pytest.raises(PrunelensError, match=r"other settings: float16='False' \(now 'True'\)"):
        run_features(FeaturesConfig(**settings, out=out, float16=True), progress=False)
    assert (out / "run.json").read_text() == saved
    with open_features(out) as store:
        assert store.attrs["backend"] == "hf"
        assert list(dict.fromkeys(store["example_id"].values)) == IDS
    assert run_features(FeaturesConfig(**settings, out=out), progress=False).new_ids == []  # same settings resume


# 2. default output folder names


def test_default_output_folders_name_model_method_and_settings():
    default = PruneConfig().output_dir()
    assert default == Path("runs/prune-gsm8k-test-smollm2-135m-joint-k0.5")
    variants = {name: PruneConfig(**values).output_dir().name for name, values in {
        "s4": {"steps": 4}, "b4": {"block": 4}, "m4": {"screen": 4}, "w8": {"window": 8}, "bfloat16": {"dtype": "bfloat16"},
    }.items()}  # fmt: skip
    for part, name in variants.items():
        assert part in name.split("-"), name
    assert len(set(variants.values()) | {default.name}) == len(variants) + 1
    assert PruneConfig(keep=0.25, objective="answer").output_dir().name.endswith("-answer-k0.25")

    assert FeaturesConfig().output_dir() == Path("runs/features-gsm8k-test-smollm2-135m-hf")
    assert FeaturesConfig(float16=True).output_dir() == Path("runs/features-gsm8k-test-smollm2-135m-hf-f16")
    assert FeaturesConfig(backend="nnsight").output_dir().name.endswith("-nnsight")

    rank = RankConfig(method="uniform", options=UniformOptions(seed=3)).output_dir().name
    assert "uniform" in rank.split("-") and "seed3" in rank.split("-")
    assert RankConfig().output_dir() == Path("runs/rank-gsm8k-test-smollm2-135m-uniform")
    hashed = [RankConfig(method="greedy", options=GreedyOptions(pruning=Path(p))).output_dir().name for p in ("x", "y")]
    plain = RankConfig(method="greedy").output_dir().name
    for name in hashed:
        assert name.startswith(plain + "-") and re.fullmatch(r"[0-9a-f]{6}", name[len(plain) + 1 :]), name
    assert hashed[0] != hashed[1]

    assert PruneConfig(shard="1/4").output_dir().name == "prune-gsm8k-test-smollm2-135m-joint-k0.5-shard1of4"
    assert PruneConfig(out=Path("here")).output_dir() == Path("here")
    assert PruneConfig(chains=Path("data/my.chains.jsonl")).output_dir().name.startswith("prune-my.chains-smollm2-135m-")


# 3. stores of runs that never consolidated


def test_open_scores_consolidates_an_unconsolidated_run(tmp_path, prune_dir):
    copy = tmp_path / "prune"
    shutil.copytree(prune_dir, copy)
    (copy / "scores.nc").unlink()
    with open_scores(copy) as rebuilt, open_scores(prune_dir) as reference:
        assert list(rebuilt["example"].values) == IDS
        np.testing.assert_array_equal(rebuilt["candidate_scores"].values, reference["candidate_scores"].values)
        assert rebuilt.attrs["objective"] == "joint"
    assert (copy / "scores.nc").exists()


def test_open_scores_of_an_interrupted_run(tmp_path, settings, monkeypatch):
    interrupt_on_call(monkeypatch, run_module, "greedy_prune")
    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        run_pruning(PruneConfig(**settings, out=out, steps=1), progress=False)
    assert not (out / "scores.nc").exists()
    with open_scores(out) as scores:
        assert list(scores["example"].values) == ["c1"] and scores.sizes["step"] == 1


@pytest.mark.parametrize("opener", [open_scores, open_features])
def test_opening_a_folder_without_results_is_one_line(tmp_path, opener):
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(PrunelensError) as error:
            opener(folder)
        assert "\n" not in str(error.value) and str(folder) in str(error.value)


def test_open_features_consolidates_an_unconsolidated_run(tmp_path, features_dir):
    copy = tmp_path / "features"
    shutil.copytree(features_dir, copy)
    (copy / "features.nc").unlink()
    with open_features(copy) as rebuilt, open_features(features_dir) as reference:
        assert list(rebuilt["example_id"].values) == list(reference["example_id"].values)
        np.testing.assert_array_equal(rebuilt["attention"].values, reference["attention"].values)
        assert rebuilt.attrs["backend"] == "hf"


# 4, 5. one-line CLI errors that leave no run.json, and a corrected rerun


BAD_CHAINS = {
    "binary": b"\x00\x01\xff\xfe",
    "latin-1": json.dumps({"id": "x", "question": "café?", "reasoning": "r", "answer": "1"}, ensure_ascii=False)
    .encode("latin-1") + b"\n",
    "empty": b"",
}  # fmt: skip


@pytest.mark.parametrize("kind", [*BAD_CHAINS, "missing"])
def test_bad_chains_files_are_one_line_cli_errors(tmp_path, tiny_model_dir, kind):
    path = tmp_path / "chains.jsonl"
    if kind != "missing":
        path.write_bytes(BAD_CHAINS[kind])
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["prune", "--model", str(tiny_model_dir), "--chains", str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    line = one_line_error(result)
    assert "chains.jsonl" in line
    assert not (out / "run.json").exists()


@pytest.mark.parametrize("option,bad,expected", [("--model", "nosuch-model", "unknown model 'nosuch-model'"),
                                                 ("--dataset", "gsm9k", "unknown dataset 'gsm9k'")])  # fmt: skip
def test_bad_model_or_dataset_writes_nothing_and_the_fix_reruns(tmp_path, chains, tiny_model_dir, option, bad, expected):
    out = tmp_path / "out"
    good = {"--model": str(tiny_model_dir), "--dataset": "gsm8k"}
    args = ["prune", "--chains", str(chains), "--out", str(out), "--ids", "c3", "--steps", "1", "--threads", "1", "--no-show"]

    def invoke(options):
        return CliRunner().invoke(app, [*args, *(text for pair in options.items() for text in pair)])

    failed = invoke({**good, option: bad})
    assert failed.exit_code == 2 and expected in one_line_error(failed)
    assert not (out / "run.json").exists()
    rerun = invoke(good)
    assert rerun.exit_code == 0, rerun.output
    saved = json.loads((out / "run.json").read_text())
    assert saved["identity"]["dataset"] == "gsm8k" and saved["identity"]["model"] == str(tiny_model_dir)


# 6. merge


@pytest.fixture(scope="module")
def prune_shards(root, settings):
    """Prune shards K/3 (c1+c4, c2, c3), plus a 1/3 shard run with another keep."""
    shards = {k: run_pruning(PruneConfig(**settings, out=root / f"p{k}of3", steps=1, shard=f"{k}/3"),
                             progress=False).out_dir for k in range(3)}  # fmt: skip
    other = run_pruning(PruneConfig(**settings, out=root / "p1of3-keep", steps=1, shard="1/3", keep=0.9), progress=False)
    return shards, other.out_dir


def test_merge_refuses_a_missing_shard(tmp_path, prune_shards):
    shards, _ = prune_shards
    with pytest.raises(PrunelensError, match=r"missing shard\(s\) 1/3"):
        merge_runs(tmp_path / "merged", [shards[0], shards[2]])
    assert not (tmp_path / "merged" / "run.json").exists()


def test_merge_refuses_shards_with_other_settings(tmp_path, prune_shards):
    shards, other = prune_shards
    with pytest.raises(PrunelensError, match=r"keep='0.9'.*keep='0.5'.*refusing to merge"):
        merge_runs(tmp_path / "merged", [shards[0], other, shards[2]])
    assert not (tmp_path / "merged" / "run.json").exists()


def test_merged_prune_run_is_a_whole_run(tmp_path, prune_shards, settings):
    shards, _ = prune_shards
    merged = tmp_path / "merged"
    assert merge_runs(merged, [shards[0], shards[1], shards[2]]) == 4
    saved = json.loads((merged / "run.json").read_text())
    assert saved["config"]["shard"] is None and '"shard": null' in (merged / "run.json").read_text()
    assert saved["config"]["out"] == str(merged)
    # the merged folder resumes like a whole run of the same settings: nothing left to do
    again = run_pruning(PruneConfig(**settings, out=merged, steps=1), progress=False)
    assert again.new_ids == [] and sorted(r.id for r in again.rankings) == sorted(IDS)
    with open_scores(merged) as scores:
        assert sorted(scores["example"].values) == sorted(IDS)


def test_merged_feature_shards_equal_a_whole_run(tmp_path, settings, features_dir):
    shards = [run_features(FeaturesConfig(**settings, out=tmp_path / f"f{k}", shard=f"{k}/2"), progress=False).out_dir
              for k in range(2)]  # fmt: skip
    assert merge_runs(tmp_path / "merged", shards) == 4
    assert json.loads((tmp_path / "merged" / "run.json").read_text())["config"]["shard"] is None
    with open_features(tmp_path / "merged") as merged, open_features(features_dir) as whole:
        assert sorted(dict.fromkeys(merged["example_id"].values)) == sorted(IDS)
        assert merged.sizes == whole.sizes and merged.attrs["backend"] == "hf"
        for example_id in IDS:
            rows_m = merged["example_id"].values == example_id
            rows_w = whole["example_id"].values == example_id
            np.testing.assert_array_equal(merged["attention"].values[rows_m], whole["attention"].values[rows_w])
            np.testing.assert_array_equal(merged["token_id"].values[rows_m], whole["token_id"].values[rows_w])
            np.testing.assert_array_equal(merged["h2o"].values[rows_m], whole["h2o"].values[rows_w])


def test_merged_rank_shards_equal_a_whole_run(tmp_path, settings):
    def rank(out, **values):
        return run_rank(RankConfig(**settings, out=tmp_path / out, method="uniform", options=UniformOptions(seed=1),
                                   **values), progress=False)  # fmt: skip

    whole = rank("whole")
    shards = [rank(f"r{k}", shard=f"{k}/2").out_dir for k in range(2)]
    merged = tmp_path / "merged"
    assert merge_runs(merged, shards) == 4
    records = {json.loads(line)["id"]: json.loads(line) for line in (merged / "rankings.jsonl").read_text().splitlines()}
    assert comparable([records[r.id] for r in whole.rankings]) == comparable(whole.rankings)
    assert json.loads((merged / "run.json").read_text())["job"] == "rank"


# 7. surrogate warnings


def test_surrogate_join_warns_about_thin_targets(tmp_path, settings, features_dir, prune_dir):
    from prunelens.analysis.surrogate_data import load_examples_for_surrogate

    one = run_pruning(PruneConfig(**settings, out=tmp_path / "one", ids=["c1"], steps=1), progress=False).out_dir
    warnings = []
    data = load_examples_for_surrogate(features_dir, one, warn=warnings.append)
    assert [e.id for e in data] == ["c1"]
    assert len(warnings) == 1 and "cover only 1 of the 4 examples" in warnings[0]
    warnings.clear()
    load_examples_for_surrogate(features_dir, one, target="rank", warn=warnings.append)
    assert any("cover only" in w for w in warnings) and any("--target rank" in w and "one step" in w for w in warnings)
    warnings.clear()
    # full coverage, two steps: nothing to warn about
    load_examples_for_surrogate(features_dir, prune_dir, warn=warnings.append)
    load_examples_for_surrogate(features_dir, prune_dir, target="rank", warn=warnings.append)
    assert warnings == []


# 8. progress lines


def test_progress_is_plain_lines_off_a_terminal(monkeypatch, capsys):
    import prunelens.core.progress as progress

    monkeypatch.setattr(progress, "interactive", lambda: False)
    lines = []
    assert list(progress.progress_bar(iter("abc"), total=3, desc="prune", log=lines.append)) == ["a", "b", "c"]
    assert len(lines) == 3
    for k, line in enumerate(lines, start=1):
        assert re.fullmatch(rf"prune \[{k}/3\] \d+\.\d s", line), line
    lines.clear()
    assert list(progress.progress_bar(iter("abc"), total=3, desc="prune", enabled=False, log=lines.append)) == ["a", "b", "c"]
    assert lines == []
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_a_run_off_a_terminal_logs_one_line_per_example(tmp_path, settings, monkeypatch, capfd):
    import prunelens.core.progress as progress

    monkeypatch.setattr(progress, "interactive", lambda: False)
    lines = []
    run_pruning(PruneConfig(**settings, out=tmp_path / "out", ids=["c1", "c3"], steps=1), progress=True, log=lines.append)
    assert [line.split(" ")[:2] for line in lines] == [["prune", "[1/2]"], ["prune", "[2/2]"]]
    captured = capfd.readouterr()
    assert not any(c in text for text in (captured.out, captured.err, *lines) for c in ("\r", "\x1b"))


# 9. --threads


def test_threads_option_sets_torch_threads_during_the_run(tmp_path, chains, tiny_model_dir, monkeypatch):
    real, seen = run_module.greedy_prune, []

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "greedy_prune", spy)
    torch.set_num_threads(2)
    result = CliRunner().invoke(app, ["prune", "--model", str(tiny_model_dir), "--chains", str(chains), "--ids", "c3",
                                      "--steps", "1", "--threads", "1", "--out", str(tmp_path / "out"), "--no-show"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert seen == [1]


@pytest.mark.parametrize("env, expected", [("1", 1), ("3", 3), ("", None), ("0", None), ("many", None)])
def test_without_threads_torch_follows_omp_num_threads(monkeypatch, env, expected):
    # a user sharing cores sets OMP_NUM_THREADS=1; a job without --threads used to override it with all cores
    monkeypatch.setenv("OMP_NUM_THREADS", env)
    set_threads(None)
    assert torch.get_num_threads() == (expected or os.cpu_count())


# 10. printed chains


def test_prune_prints_the_requested_keep_fraction(tmp_path, chains, tiny_model_dir):
    result = CliRunner().invoke(app, ["prune", "--model", str(tiny_model_dir), "--chains", str(chains), "--limit", "4",
                                      "--keep", "0.8", "--threads", "1", "--out", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 0, result.output
    blocks = result.stdout.split("\n=== ")[1:]
    assert [block.split()[0] for block in blocks] == IDS
    for block in blocks:
        headers = [line for line in block.splitlines() if line.startswith("--- keep")]
        # 1, 0.9 and the requested 0.8 always; 0.7 too where it rounds to the same count (8 tokens: 6 kept)
        assert headers[:3] == ["--- keep 1", "--- keep 0.9", "--- keep 0.8"], block


def test_rankings_reach_keep_fractions_as_rounded():
    from prunelens.demo import demo_report
    from prunelens.core.ranking import Ranking

    pieces = [f" t{i}" for i in range(12)]
    ranking = Ranking(id="e", method="greedy", model="m", reasoning="".join(pieces), reasoning_ids=list(range(12)),
                      reasoning_tokens=pieces, offsets=[[3 * i, 3 * i + 3] for i in range(12)], deletion_order=[4, 5])  # fmt: skip
    assert ranking.reaches(1.0) and ranking.reaches(0.9) and ranking.reaches(0.8)  # 0.8 · 12 = 9.6 rounds to 10 kept
    assert not ranking.reaches(0.7) and ranking.deepest_keep > 0.8
    assert ranking.marked(0.8) == " t0 t1 t2 t3[- t4 t5-] t6 t7 t8 t9 t10 t11"
    report = demo_report({"greedy": [ranking]}, keep=0.8)
    assert [line for line in report.splitlines() if line.startswith("---")] == [
        "--- greedy, keep 1", "--- greedy, keep 0.9", "--- greedy, keep 0.8"]  # fmt: skip


def legacy_copy(prune_dir, target):
    """A prune folder as the previous version wrote it: pruning.jsonl records without method / settings /
    score fields, and a run.json without "job" whose float settings were spelled by the CLI ("1.0")."""
    target.mkdir()
    shutil.copytree(prune_dir / "scores", target / "scores")
    dropped = ("method", "settings", "scores", "score_meaning")
    lines = [json.loads(line) for line in (prune_dir / "rankings.jsonl").read_text().splitlines()]
    (target / "pruning.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k not in dropped}) + "\n"
                                                  for r in lines[:2]))  # fmt: skip
    saved = json.loads((prune_dir / "run.json").read_text())
    del saved["job"]
    saved["identity"]["block"] = "1.0"
    (target / "run.json").write_text(json.dumps(saved))
    return target


def test_a_folder_from_the_previous_version_loads_and_resumes(tmp_path, prune_dir, settings):
    from prunelens.core.ranking import GreedyRanking, load_rankings

    legacy = legacy_copy(prune_dir, tmp_path / "legacy")
    old = load_rankings(legacy)
    assert [type(r) for r in old] == [GreedyRanking, GreedyRanking] and old[0].objective == "joint"
    assert old[0].text(1.0) == old[0].reasoning
    with pytest.raises(PrunelensError, match="holds a `prune` run, not `rank`"):
        run_rank(RankConfig(**settings, method="uniform", out=legacy), progress=False)
    resumed = run_pruning(PruneConfig(**settings, out=legacy, steps=2), progress=False)  # block 1 == "1.0"
    assert resumed.new_ids == IDS[2:] and not (legacy / "rankings.jsonl").exists()
    assert [r.deletion_order for r in resumed.rankings] == [r.deletion_order for r in load_rankings(prune_dir)]
    with open_scores(legacy) as scores:
        assert sorted(scores["example"].values) == sorted(IDS)


def test_h2o_records_of_the_previous_version_load(tmp_path, features_dir):
    from prunelens.core.ranking import load_rankings

    records = [json.loads(line) for line in (features_dir / "rankings.jsonl").read_text().splitlines()]
    old = [{**{k: v for k, v in r.items() if k not in ("scores", "score_meaning", "settings")},
            "importance": r["scores"], "definition": "h2o"} for r in records]  # fmt: skip
    (tmp_path / "h2o.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    loaded = load_rankings(tmp_path)
    assert [r.scores for r in loaded] == [r["scores"] for r in records] and loaded[0].method == "h2o"


def test_a_store_that_misses_examples_is_consolidated_again(tmp_path, settings):
    out = tmp_path / "run"
    run_pruning(PruneConfig(**settings, out=out, steps=1, ids=IDS[:1]), progress=False)
    with open_scores(out) as scores:
        assert list(scores["example"].values) == IDS[:1]
    stale = (out / "scores.nc").read_bytes()
    run_pruning(PruneConfig(**settings, out=out, steps=1), progress=False)
    (out / "scores.nc").write_bytes(stale)  # as if the resumed run was killed before consolidating
    with open_scores(out) as scores:
        assert sorted(scores["example"].values) == sorted(IDS)


def test_reading_rankings_never_changes_the_file(tmp_path, prune_dir):
    from prunelens.core.jsonl import append_jsonl, read_finished

    path = tmp_path / "rankings.jsonl"
    text = (prune_dir / "rankings.jsonl").read_text()
    path.write_text(text.rstrip("\n"))  # a valid last line without its newline
    assert len(read_finished(path)) == len(text.splitlines()) and path.read_text() == text.rstrip("\n")
    path.write_text(text + '{"id": "torn')
    assert len(read_finished(path)) == len(text.splitlines()) and path.read_text().endswith('"torn')
    append_jsonl(path, {"id": "next"})
    assert path.read_text() == text + '{"id": "next"}\n'


def test_an_unreadable_run_json_is_one_line(tmp_path, settings):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "run.json").write_text('{"job": "pru')
    with pytest.raises(PrunelensError, match="run.json is not valid JSON"):
        run_pruning(PruneConfig(**settings, out=tmp_path / "out"), progress=False)


def test_a_method_owns_its_settings(settings):
    assert RankConfig(method="uniform").options == UniformOptions(seed=0)  # a method's defaults when not given
    assert RankConfig(method="truncation").options is None  # a method without settings
    seeded = RankConfig(method="uniform", options=UniformOptions(seed=5))
    assert seeded.output_dir() != RankConfig(method="uniform").output_dir() and identity(seeded)["seed"] == "5"
    assert "seed" not in identity(RankConfig(method="truncation"))
    with pytest.raises(PrunelensError, match="method 'truncation' takes no options, not UniformOptions"):
        RankConfig(method="truncation", options=UniformOptions(seed=5))
    with pytest.raises(SettingsError, match="^seed is a setting of method uniform, not h2o$"):  # field terms
        build_config(RankConfig, {"method": "h2o", "seed": 5})
    refused = CliRunner().invoke(app, ["rank", "--method", "truncation", "--backend", "nnsight"])
    assert one_line_error(refused) == "error: --backend is a setting of --method h2o, not truncation"


def test_names_do_not_hash_what_the_prefix_spells_out():
    assert PruneConfig(model="org/other-model", dataset="math500").output_dir() == Path(
        "runs/prune-math500-test-other-model-joint-k0.5")  # fmt: skip
