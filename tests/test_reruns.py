"""A run is its content: changed inputs are never served from old lines, a failed command leaves nothing that
blocks its fix, exit codes tell the truth, long chains report progress, and bad input is one line."""

import json
import os

import pytest
from conftest import write_chains
from openai_stub import ScriptedServer, isolate_from_openai, labels_reply, write_rankings
from typer.testing import CliRunner

from prunelens.cli import app
from prunelens.core.errors import PrunelensError
from prunelens.core.settings import build_config, settings_for
from prunelens.pruning import run as prune_module
from prunelens.pruning.eta import StepClock, step_work
from prunelens.pruning.run import PruneConfig, run_pruning
from prunelens.rankers.greedy import GreedyOptions
from prunelens.rankers.run import RankConfig, run_rank

CHAINS = [
    {"id": "c1", "question": "Tom has 3 apples and buys 2. How many?", "reasoning": "3 + 2 = 5 apples.", "answer": "5"},
    {"id": "c2", "question": "What is 4 times 6?", "reasoning": "4 * 6 = 24, so 24.", "answer": "24"},
]


def one_line_error(result) -> str:
    """The CLI failed with exactly one ``error:`` line; return it."""
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def final_error(result) -> str:
    """The CLI failed, its log lines followed by one ``error:`` line; return that line."""
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and lines[-1].startswith("error:"), result.output
    assert not any(line.startswith("Traceback") for line in lines), result.output
    return lines[-1]


def rank_uniform(chains, out, tiny_model_dir, **overrides):
    return run_rank(RankConfig(model=str(tiny_model_dir), chains=chains, out=out, limit=None, method="uniform",
                               **overrides), progress=False)  # fmt: skip


# 1. results are keyed by content


def test_an_edited_chain_is_refused_then_redone_alone(tmp_path, tiny_model_dir):
    chains = write_chains(tmp_path / "e.jsonl", CHAINS)
    first = rank_uniform(chains, tmp_path / "out", tiny_model_dir)
    write_chains(chains, [CHAINS[0], {**CHAINS[1], "reasoning": "4 * 6 is 24."}])
    with pytest.raises(PrunelensError, match=r"1 finished example\(s\) were computed from other inputs \(example: c2\)"
                                             r".*--redo-changed"):  # fmt: skip
        rank_uniform(chains, tmp_path / "out", tiny_model_dir)
    redone = rank_uniform(chains, tmp_path / "out", tiny_model_dir, redo_changed=True)
    assert redone.new_ids == ["c2"]
    assert [r.id for r in redone.rankings] == ["c1", "c2"]
    assert redone.rankings[0].to_dict() == first.rankings[0].to_dict()  # c1 kept as it was, timing included
    assert redone.rankings[1].reasoning == "4 * 6 is 24."
    assert rank_uniform(chains, tmp_path / "out", tiny_model_dir).new_ids == []


def test_the_same_content_by_another_path_resumes(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_chains(tmp_path / "e.jsonl", CHAINS)
    rank_uniform("e.jsonl", tmp_path / "out", tiny_model_dir)
    (tmp_path / "copy").mkdir()
    copy = write_chains(tmp_path / "copy" / "e.jsonl", CHAINS)
    assert rank_uniform(copy.resolve(), tmp_path / "out", tiny_model_dir).new_ids == []


def test_a_changed_input_folder_names_the_input(tmp_path, tiny_model_dir):
    chains = write_chains(tmp_path / "e.jsonl", CHAINS)
    prune = run_pruning(PruneConfig(model=str(tiny_model_dir), chains=chains, out=tmp_path / "p", limit=None, steps=1,
                                    threads=1), progress=False)  # fmt: skip
    config = dict(model=str(tiny_model_dir), chains=chains, limit=None, method="greedy",
                  options=GreedyOptions(pruning=prune.out_dir))  # fmt: skip
    run_rank(RankConfig(**config, out=tmp_path / "g"), progress=False)
    records = (tmp_path / "p" / "rankings.jsonl").read_text().splitlines()
    edited = json.loads(records[0]) | {"step_scores": [0.0]}
    (tmp_path / "p" / "rankings.jsonl").write_text("\n".join([json.dumps(edited), records[1]]) + "\n")
    with pytest.raises(PrunelensError, match=r"other inputs \(pruning: c1\)"):
        run_rank(RankConfig(**config, out=tmp_path / "g"), progress=False)
    assert run_rank(RankConfig(**config, out=tmp_path / "g", redo_changed=True), progress=False).new_ids == ["c1"]


# 2. a failed command leaves nothing that blocks its fix


def test_a_failed_compress_writes_nothing_and_the_fix_runs(tmp_path):
    rankings = write_rankings(tmp_path / "r")
    short = [json.loads(line) | {"deletion_order": [0]} for line in (rankings / "rankings.jsonl").read_text().splitlines()]
    (rankings / "rankings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in short))
    out = tmp_path / "c"
    args = ["compress", "--rankings", str(rankings), "--out", str(out), "--student-tokenizer"]
    failed = CliRunner().invoke(app, [*args, "smollm2-135m", "--keep", "0.5,0.95"])
    assert "keep fraction 0.5 not reached" in one_line_error(failed)
    assert not out.exists()
    fixed = CliRunner().invoke(app, [*args, "smollm2-135m", "--keep", "0.95"])
    assert fixed.exit_code == 0, fixed.output
    assert (out / "keep0.95.jsonl").read_text().count("\n") == 2
    added = CliRunner().invoke(app, [*args, "smollm2-135m", "--keep", "0.99"])  # each keep is its own file
    assert added.exit_code == 0, added.output


def test_a_changed_ranking_is_refused_by_compress_then_cut_again(tmp_path):
    rankings = write_rankings(tmp_path / "r")
    args = ["compress", "--rankings", str(rankings), "--out", str(tmp_path / "c"), "--keep", "0.9"]
    assert CliRunner().invoke(app, args).exit_code == 0
    lines = (rankings / "rankings.jsonl").read_text().splitlines()
    edited = json.loads(lines[1]) | {"deletion_order": list(range(len(json.loads(lines[1])["deletion_order"])))}
    (rankings / "rankings.jsonl").write_text("\n".join([lines[0], json.dumps(edited)]) + "\n")
    assert "came from other rankings (rankings: b)" in one_line_error(CliRunner().invoke(app, args))
    redone = CliRunner().invoke(app, [*args, "--redo-changed"])
    assert redone.exit_code == 0, redone.output
    chains = [json.loads(line) for line in (tmp_path / "c" / "keep0.9.jsonl").read_text().splitlines()]
    assert [c["id"] for c in chains] == ["a", "b"]


def test_a_prune_that_fails_on_its_only_chain_leaves_no_run_json(tmp_path, tiny_model_dir):
    chains = write_chains(tmp_path / "e.jsonl", [{**CHAINS[0], "reasoning": "   "}])
    result = CliRunner().invoke(app, ["prune", "--model", str(tiny_model_dir), "--chains", str(chains), "--out",
                                      str(tmp_path / "p"), "--threads", "1", "--keep", "0.9"])  # fmt: skip
    one_line_error(result)
    assert not (tmp_path / "p" / "run.json").exists()
    fixed = CliRunner().invoke(app, ["prune", "--model", str(tiny_model_dir), "--chains", str(write_chains(chains, CHAINS)),
                                     "--out", str(tmp_path / "p"), "--threads", "1", "--keep", "0.5", "--no-show"])  # fmt: skip
    assert fixed.exit_code == 0, fixed.output


# 3. exit codes tell the truth


def test_a_job_whose_every_example_failed_exits_non_zero(tmp_path, tiny_model_dir):
    chains = write_chains(tmp_path / "e.jsonl", [{**c, "reasoning": " "} for c in CHAINS])
    args = ["rank", "--method", "uniform", "--model", str(tiny_model_dir), "--chains", str(chains), "--skip-bad"]
    failed = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "all")])
    lines = failed.output.strip().splitlines()  # a log line per skipped record, then the error
    assert failed.exit_code == 2 and len(lines) == 3 and "no selected example finished: 2 skipped" in lines[-1]
    write_chains(chains, [CHAINS[0], {**CHAINS[1], "reasoning": " "}])
    partial = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "part")])
    assert partial.exit_code == 0 and "1 rankings (1 new); 1 skipped, reasons in" in partial.output


def test_annotate_without_a_server_fails_and_retry_failed_retries(tmp_path, monkeypatch):
    isolate_from_openai(monkeypatch, tmp_path)
    rankings = write_rankings(tmp_path / "r")
    args = ["annotate", "--rankings", str(rankings), "--annotator", "llm", "--llm-model", "stub-model",
            "--max-retries", "0", "--timeout", "2", "--concurrency", "1"]  # fmt: skip
    with ScriptedServer([]) as dead:
        url = dead.url
    line = final_error(CliRunner().invoke(app, [*args, "--base-url", url]))
    assert "every chain failed (2;" in line and "--retry-failed" in line
    with ScriptedServer([labels_reply]) as server:
        skipped = CliRunner().invoke(app, [*args, "--base-url", server.url])  # nothing labelled: still a failure
        assert "0 chains labelled, 2 failed (rerun with --retry-failed" in final_error(skipped)
        assert server.requests == []  # stored failures are not retried unasked
        retried = CliRunner().invoke(app, [*args, "--base-url", server.url, "--retry-failed"])
    assert retried.exit_code == 0 and "2 chains labelled, 0 failed;" in retried.output, retried.output


def test_audit_without_a_server_says_so_in_its_report_and_exit_code(tmp_path, monkeypatch):
    isolate_from_openai(monkeypatch, tmp_path)
    rankings = write_rankings(tmp_path / "r")
    out = tmp_path / "audit"
    args = ["audit", "--rankings", str(rankings), "--llm-model", "stub-model", "--max-retries", "0", "--timeout", "2",
            "--keep", "0.5", "--out", str(out), "--concurrency", "1"]  # fmt: skip
    with ScriptedServer([]) as dead:
        url = dead.url
    line = final_error(CliRunner().invoke(app, [*args, "--base-url", url]))
    assert "every verdict failed (2)" in line
    assert "No chain was rated" in (out / "audit.md").read_text()


# 4. progress inside a long chain


def test_the_cost_model_counts_candidates_and_recalibrates():
    naive = step_work(4, prompt=10, answer=2, steps=2, scorer="naive")
    assert naive == [4 * (10 + 3 + 2), 3 * (10 + 2 + 2)]
    fast = step_work(4, prompt=10, answer=2, steps=2, scorer="fast")
    assert fast[0] < naive[0] and fast[1] < fast[0]
    clock = StepClock([10.0, 10.0, 10.0], seconds_per_position=1.0)
    assert clock.total() == 30.0
    clock.started -= 40.0  # the first step took 40 s, not 10: what is left scales with it
    assert clock.step() == pytest.approx(80.0, rel=0.01)


def test_long_chains_warn_before_and_report_inside(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(prune_module, "HOUR", 0.0)
    monkeypatch.setattr(prune_module, "LONG_CHAIN_SECONDS", 0.0)
    monkeypatch.setattr(prune_module, "PROGRESS_EVERY", 0.0)
    logged = []
    run_pruning(PruneConfig(model=str(tiny_model_dir), chains=write_chains(tmp_path / "e.jsonl", CHAINS[:1]),
                            out=tmp_path / "p", limit=None, steps=2, threads=1), log=logged.append)  # fmt: skip
    warning = next(line for line in logged if line.startswith("warning: c1:"))
    assert "exact greedy steps estimated at" in warning and "--screen-dtype bfloat16" in warning
    steps = [line for line in logged if line.startswith("c1: step ")]
    assert [line.split(",")[0] for line in steps] == ["c1: step 1/2", "c1: step 2/2"] and "left" in steps[0]


# 5. one line, non-zero exit


def test_an_unwritable_output_folder_is_one_line(tmp_path, tiny_model_dir, monkeypatch):
    chains = write_chains(tmp_path / "e.jsonl", CHAINS)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    args = ["rank", "--method", "uniform", "--model", str(tiny_model_dir), "--chains", str(chains)]
    assert "is a file, not a folder" in one_line_error(CliRunner().invoke(app, [*args, "--out", str(blocker / "o")]))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(tmp_path) else real_access(path, mode))
    line = one_line_error(CliRunner().invoke(app, [*args, "--out", str(tmp_path / "ro")]))
    assert f"{tmp_path} is not writable" in line


def test_an_os_error_while_writing_is_one_line(tmp_path, tiny_model_dir, monkeypatch):
    from prunelens.jobs import loop

    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out" / "rankings.jsonl"))

    monkeypatch.setattr(loop, "append_jsonl", refuse)
    chains = write_chains(tmp_path / "e.jsonl", CHAINS)
    result = CliRunner().invoke(app, ["rank", "--method", "uniform", "--model", str(tiny_model_dir), "--chains",
                                      str(chains), "--out", str(tmp_path / "out")])  # fmt: skip
    assert one_line_error(result) == f"error: {tmp_path / 'out' / 'rankings.jsonl'}: Permission denied"


def test_a_device_torch_cannot_use_names_what_is_available(tmp_path, tiny_model_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this torch has CUDA")
    chains = write_chains(tmp_path / "e.jsonl", CHAINS)
    result = CliRunner().invoke(app, ["prune", "--model", str(tiny_model_dir), "--chains", str(chains), "--device",
                                      "cuda", "--out", str(tmp_path / "p")])  # fmt: skip
    assert "--device cuda: not usable with this torch build here (available: cpu)" in one_line_error(result)
    assert not (tmp_path / "p").exists()


def test_files_and_folders_in_each_others_place_are_named(tmp_path, tiny_model_dir):
    args = ["rank", "--method", "uniform", "--out", str(tmp_path / "o")]
    folder = CliRunner().invoke(app, [*args, "--model", str(tiny_model_dir), "--chains", str(tmp_path)])
    assert "is a folder; a JSON Lines file is expected" in one_line_error(folder)
    model_file = write_chains(tmp_path / "e.jsonl", CHAINS)
    as_model = CliRunner().invoke(app, [*args, "--model", str(model_file), "--chains", str(model_file)])
    assert "is a file; --model takes an alias, a model folder, a .gguf file" in one_line_error(as_model)


def test_keep_zero_is_the_full_deletion_order(tmp_path, tiny_model_dir):
    assert "0: the full deletion order" in PruneConfig.__dataclass_fields__["keep"].metadata["help"]
    run = run_pruning(PruneConfig(model=str(tiny_model_dir), chains=write_chains(tmp_path / "e.jsonl", CHAINS[:1]),
                                  out=tmp_path / "p", limit=None, keep=0.0, threads=1), progress=False)  # fmt: skip
    ranking = run.rankings[0]
    assert sorted(ranking.deletion_order) == list(range(ranking.n)) and ranking.deepest_keep == 0.0


def test_distillation_outputs_refuse_a_changed_question(tmp_path):
    from prunelens.distill.teach import TeachConfig, run_teach

    chains = write_chains(tmp_path / "e.jsonl", CHAINS)
    config = dict(teacher="gold", chains=chains, limit=None, out=tmp_path / "teach")
    assert run_teach(TeachConfig(**config)).new == 2
    write_chains(chains, [CHAINS[0], {**CHAINS[1], "question": "What is 4 times 7?"}])
    with pytest.raises(PrunelensError, match=r"1 finished question\(s\) have changed since \(example: c2\)"):
        run_teach(TeachConfig(**config))


def test_a_redo_killed_before_consolidation_never_serves_the_old_store(tmp_path, tiny_model_dir, monkeypatch):
    from prunelens.pruning.store import open_scores

    chains = write_chains(tmp_path / "e.jsonl", CHAINS)
    config = dict(model=str(tiny_model_dir), chains=chains, out=tmp_path / "p", limit=None, steps=1, threads=1)
    run_pruning(PruneConfig(**config), progress=False)
    write_chains(chains, [{**CHAINS[0], "reasoning": "3 plus 2 gives 5 apples, so the answer is 5."}, CHAINS[1]])

    def killed(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(prune_module.PruneJob, "finish", classmethod(killed))
    with pytest.raises(KeyboardInterrupt):
        run_pruning(PruneConfig(**config, redo_changed=True), progress=False)
    monkeypatch.undo()
    redone = run_pruning(PruneConfig(**config), progress=False)
    assert [r.id for r in redone.rankings] == ["c1", "c2"]  # back in selection order, as a clean run writes them
    with open_scores(tmp_path / "p") as scores:
        width = int(scores["n_tokens"].sel(example="c1"))
    assert width == redone.rankings[0].n  # consolidated again from the new part, not the old store


def test_an_input_named_relatively_or_absolutely_names_one_default_folder(tmp_path, monkeypatch):
    from prunelens.rankers.h2o import H2OOptions

    monkeypatch.chdir(tmp_path)
    (tmp_path / "feats").mkdir()
    relative = RankConfig(method="h2o", options=H2OOptions(features="feats")).output_dir()
    assert relative == RankConfig(method="h2o", options=H2OOptions(features=tmp_path / "feats")).output_dir()


def test_a_file_given_as_a_feature_folder_is_named(tmp_path, tiny_model_dir):
    chains = write_chains(tmp_path / "e.jsonl", CHAINS)
    result = CliRunner().invoke(app, ["rank", "--method", "h2o", "--features", str(chains), "--model",
                                      str(tiny_model_dir), "--chains", str(chains), "--out", str(tmp_path / "o")])  # fmt: skip
    assert "is a file; a `prunelens features` output folder (or its features.nc) is expected" in one_line_error(result)


def test_annotations_of_changed_tokens_are_refused_then_redone(tmp_path, monkeypatch):
    isolate_from_openai(monkeypatch, tmp_path)
    rankings = write_rankings(tmp_path / "r")
    args = ["annotate", "--rankings", str(rankings)]
    assert CliRunner().invoke(app, args).exit_code == 0  # the offline annotator
    lines = (rankings / "rankings.jsonl").read_text().splitlines()
    edited = json.loads(lines[0])
    edited["reasoning_ids"] = [i + 1 for i in edited["reasoning_ids"]]
    (rankings / "rankings.jsonl").write_text("\n".join([json.dumps(edited), lines[1]]) + "\n")
    assert "1 chain(s) were labelled on other tokens (a)" in one_line_error(CliRunner().invoke(app, args))
    assert CliRunner().invoke(app, [*args, "--redo-changed"]).exit_code == 0
    assert CliRunner().invoke(app, args).exit_code == 0  # labelled again: nothing refused


def test_a_pipeline_table_gives_each_ranker_its_own_settings_and_refuses_a_wrong_one_up_front(tmp_path):
    from prunelens.distill.run import load_distill_config

    config = tmp_path / "d.toml"
    config.write_text('[rank]\nclassifier = "/x"\nseed = 3\n')
    loaded = load_distill_config(config, "cpu")
    for method, options in (("uniform", {"seed": 3}), ("truncation", None), ("tokenskip", {"classifier": "/x"})):
        built = build_config(RankConfig, settings_for(RankConfig, {**loaded.rank, "method": method}, method))
        assert (None if built.options is None else vars(built.options)) == options
    config.write_text('[teach]\nteacher = "gold"\nsamples = 2\n')
    with pytest.raises(PrunelensError, match=r"\[teach\] samples is a setting of teacher model, not gold$"):
        load_distill_config(config, "cpu")
