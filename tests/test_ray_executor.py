"""`--executor ray` on a real local Ray cluster (2 CPUs, started once): the same folder as a local run,
a killed worker, a failing example, and resume across executors (tiny saved model, tiny chains)."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import comparable, interrupt_on_call, write_chains

from prunelens.core.errors import PrunelensError
from prunelens.jobs import ray_executor
from prunelens.jobs.loop import run_job
from prunelens.pruning import run as run_module
from prunelens.pruning.run import PruneConfig, PruneJob, run_pruning
from prunelens.pruning.store import open_scores
from prunelens.rankers.run import RankConfig, run_rank
from prunelens.core.ranking import load_rankings

ray = pytest.importorskip("ray")

CHAINS = [  # lengths differ, so longest-first hands them out in another order than the selection's
    {"id": "c1", "question": "Tom has 3 apples and buys 2. How many?", "reasoning": "3 + 2 = 5 apples.", "answer": "5"},
    {"id": "c2", "question": "What is 4 times 6?", "reasoning": "4 * 6 = 24, so 24 in all.", "answer": "24"},
    {"id": "c3", "question": "Half of 10?", "reasoning": "10 / 2 = 5", "answer": "5"},
    {"id": "c4", "question": "What is 5 + 5?", "reasoning": "5 + 5 = 10, so ten.", "answer": "10"},
]
IDS = [c["id"] for c in CHAINS]


class DyingPruneJob(PruneJob):
    """The first example handed out (once per chains file) kills its worker process."""

    def process(self, example, chain):
        try:
            os.close(os.open(Path(self.config.chains).with_suffix(".died"), os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return super().process(example, chain)
        os._exit(1)


class FailingPruneJob(PruneJob):
    """c2 always raises; each attempt leaves a line in <chains>.attempts."""

    def process(self, example, chain):
        if example.id == "c2":
            with open(Path(self.config.chains).with_suffix(".attempts"), "a") as handle:
                handle.write(f"{os.getpid()}\n")
            raise RuntimeError("boom")
        return super().process(example, chain)


class UnstartablePruneJob(PruneJob):
    def start(self, loaded):
        raise PrunelensError("no scorer here")


pytestmark = pytest.mark.slow  # every test here runs on a local Ray cluster


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, log_to_driver=False, configure_logging=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job classes above, in the workers
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("ray")


@pytest.fixture(scope="module")
def settings(root, tiny_model_dir):
    return dict(model=str(tiny_model_dir), chains=write_chains(root / "chains.jsonl", CHAINS), limit=None, threads=1)


@pytest.fixture(scope="module")
def local_prune(root, settings):
    return run_pruning(PruneConfig(**settings, out=root / "local-prune", steps=3), progress=False)


def same_scores(a: Path, b: Path) -> None:
    with open_scores(a) as first, open_scores(b) as second:
        assert list(first["example"].values) == list(second["example"].values) == IDS
        np.testing.assert_array_equal(first["candidate_scores"].values, second["candidate_scores"].values)


def own_settings(settings, chains_name):
    """``settings`` over its own copy of the chains (the test jobs keep their markers beside it)."""
    return {**settings, "chains": write_chains(Path(settings["chains"]).with_name(chains_name), CHAINS)}


def test_prune_on_ray_writes_what_a_local_run_writes(root, settings, local_prune, capfd):
    out = root / "ray-prune"
    summary = run_pruning(PruneConfig(**settings, out=out, steps=3, executor="ray", workers=2), progress=True)
    assert summary.new_ids == IDS
    assert comparable(load_rankings(out)) == comparable(local_prune.rankings)  # same records, same order
    same_scores(root / "local-prune", out)
    saved = json.loads((out / "run.json").read_text())
    assert saved["identity"] == json.loads((root / "local-prune" / "run.json").read_text())["identity"]
    assert not (out / "skipped.jsonl").exists()
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("prune [")]
    assert len(lines) == 4 and lines[-1].startswith("prune [4/4]") and lines[-1].endswith("tok/s")


def test_rank_on_ray_writes_what_a_local_run_writes(root, settings):
    local = run_rank(RankConfig(**settings, method="surprisal", out=root / "local-rank"), progress=False)
    remote = run_rank(RankConfig(**settings, method="surprisal", out=root / "ray-rank", executor="ray"), progress=False)
    assert comparable(remote.rankings) == comparable(local.rankings)


def test_a_killed_worker_loses_and_duplicates_nothing(root, settings, local_prune):
    config = PruneConfig(**own_settings(settings, "dying.jsonl"), out=root / "dying", steps=3, executor="ray", workers=2)
    summary = run_job(DyingPruneJob(config), progress=False)
    assert Path(config.chains).with_suffix(".died").exists()  # a worker did die
    assert summary.new_ids == IDS and not summary.skipped
    assert comparable(load_rankings(root / "dying")) == comparable(local_prune.rankings)
    same_scores(root / "local-prune", root / "dying")


def test_a_failing_example_is_retried_then_skipped(root, settings, local_prune):
    config = PruneConfig(**own_settings(settings, "failing.jsonl"), out=root / "failing", steps=3, executor="ray",
                         workers=2)  # fmt: skip
    summary = run_job(FailingPruneJob(config), progress=False)
    attempts = Path(config.chains).with_suffix(".attempts").read_text().split()
    assert len(attempts) == 1 + ray_executor.RETRIES and len(set(attempts)) == 2  # both workers tried it
    assert summary.skipped == ["c2"] and summary.new_ids == ["c1", "c3", "c4"]
    [skipped] = [json.loads(line) for line in (root / "failing" / "skipped.jsonl").read_text().splitlines()]
    assert skipped["id"] == "c2" and "failed on 3 Ray workers: RuntimeError: boom" in skipped["error"]
    expected = [r for r in comparable(local_prune.rankings) if r["id"] != "c2"]
    assert comparable(summary.rankings) == expected


def test_interrupted_runs_resume_across_executors(root, settings, local_prune, monkeypatch):
    config = PruneConfig(**settings, out=root / "resumed", steps=3)
    interrupt_on_call(monkeypatch, run_module, "greedy_prune")  # local: Ctrl-C during the second example
    with pytest.raises(KeyboardInterrupt):
        run_pruning(config, progress=False)
    monkeypatch.undo()
    interrupt_on_call(monkeypatch, ray_executor, "append_jsonl")  # Ray: Ctrl-C while writing its second record
    with pytest.raises(KeyboardInterrupt):
        run_pruning(PruneConfig(**settings, out=root / "resumed", steps=3, executor="ray"), progress=False)
    monkeypatch.undo()
    written = [json.loads(line)["id"] for line in (root / "resumed" / "rankings.jsonl").read_text().splitlines()]
    assert len(written) == 2 and written[0] == "c1"
    finished = run_pruning(config, progress=False)  # and locally again
    assert finished.new_ids == [i for i in IDS if i not in written]
    by_id = {r["id"]: r for r in comparable(finished.rankings)}
    assert [by_id[i] for i in IDS] == comparable(local_prune.rankings)
    with open_scores(root / "local-prune") as first, open_scores(root / "resumed") as second:
        np.testing.assert_array_equal(first["candidate_scores"].sel(example=IDS).values,
                                      second["candidate_scores"].sel(example=IDS).values)  # fmt: skip


def test_a_worker_that_cannot_start_the_job_is_one_line(root, settings):
    config = PruneConfig(**settings, out=root / "unstartable", steps=3, executor="ray", workers=1)
    with pytest.raises(PrunelensError, match=r"^a Ray worker could not start the prune job: PrunelensError: no scorer here$"):
        run_job(UnstartablePruneJob(config), progress=False)
    assert not (root / "unstartable" / "run.json").exists()


def test_a_missing_ray_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(PrunelensError, match=r"^--executor ray needs Ray: pip install 'prunelens\[ray\]'$"):
        ray_executor.import_ray()


def test_default_workers_fit_the_cluster():
    assert ray_executor.default_workers({"CPU": 8.0}, 1, 0) == 8
    assert ray_executor.default_workers({"CPU": 8.0, "GPU": 2.0}, 1, 1) == 2
    assert ray_executor.default_workers({"CPU": 8.0}, 4, 0.5) == 1
    assert ray_executor.default_workers({"CPU": 2.0}, 0, 0) == 1


def test_a_retry_waits_for_another_worker_rather_than_the_one_that_failed():
    class Example:
        def __init__(self, id):
            self.id = id

    a, b = (Example("a"), None), (Example("b"), None)
    assert ray_executor.next_for(0, [a, b], {"a": [0]}, [0, 1]) is b  # another example first
    assert ray_executor.next_for(0, [a], {"a": [0]}, [0, 1]) is None  # worker 1 may take it: wait for it
    assert ray_executor.next_for(1, [a], {"a": [0]}, [0, 1]) is a
    assert ray_executor.next_for(0, [a], {"a": [0, 1]}, [0, 1]) is a  # every live worker failed on it
    assert ray_executor.next_for(0, [a], {"a": [0]}, [0]) is a  # the only worker
