"""Rank dynamics (paper §5.2): hand-made runs with known answers, then the tiny model end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_experiment, write_chains

from prunelens.analysis.rank_dynamics import (
    BUILT_IN,
    FROZEN,
    LOCAL,
    RANDOM_DRAW,
    RANDOM_EXPECTED,
    RankDynamics,
    rank_dynamics,
)
from prunelens.core.errors import PrunelensError
from prunelens.pruning.compare import hit_at_s
from prunelens.pruning.store import consolidate, write_part
from prunelens.core.ranking import GreedyRanking, Ranking, keep_grid


def greedy(example_id, order, n, **fields):
    values = dict(id=example_id, model="hand", reasoning="", reasoning_ids=list(range(100, 100 + n)),
                  reasoning_tokens=[f"t{i} " for i in range(n)], offsets=[[3 * i, 3 * i + 3] for i in range(n)],
                  deletion_order=list(order), objective="joint", step_scores=[0.0] * len(order),
                  base_score=0.0)  # fmt: skip
    return GreedyRanking(**{**values, **fields})


def write_run(folder: Path, chains: list[tuple[GreedyRanking, np.ndarray]]) -> Path:
    """A pruning folder (rankings.jsonl, score parts, scores.nc) holding hand-made chains."""
    for ranking, table in chains:
        write_part(folder, ranking.id, table, ranking.reasoning_tokens, {"objective": "joint"})
    consolidate(folder, [r.id for r, _ in chains], {"model": "hand", "objective": "joint"})
    write_rankings(folder, [r for r, _ in chains])
    return folder


def write_rankings(folder: Path, rankings) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rankings.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rankings))
    return folder


def other(example_id, order, n, ids=None):
    return Ranking(id=example_id, method="truncation", model="hand", reasoning="",
                   reasoning_ids=ids or list(range(100, 100 + n)), reasoning_tokens=[f"t{i} " for i in range(n)],
                   offsets=[[3 * i, 3 * i + 3] for i in range(n)], deletion_order=list(order))  # fmt: skip


def scores_following(order, n, first_row=None):
    """A (step, position) table whose every row ranks the tokens left in greedy's own order (the local
    ranking predicts greedy perfectly); ``first_row`` replaces step 0's scores."""
    order = list(order)
    rank = {p: order.index(p) if p in order else len(order) for p in range(n)}
    table = np.full((len(order), n), np.nan)
    for step in range(len(order)):
        for p in set(range(n)) - set(order[:step]):
            table[step, p] = -rank[p]
    if first_row is not None:
        table[0] = first_row
    return table


# Chain "a": greedy deletes 0, 1, …, 9. Step 0 ranks 0, 1, 2, 3, then 9, 8, …, 4 (so frozen is right
# about the first four deletions only); every later step ranks the rest in greedy's order.
ORDER_A = list(range(10))
FIRST_A = [0, -1, -2, -3, -9, -8, -7, -6, -5, -4]
KEEPS = (1.0, 0.6, 0.2)


@pytest.fixture
def hand_run(tmp_path):
    return write_run(tmp_path / "prune", [(greedy("a", ORDER_A, 10), scores_following(ORDER_A, 10, FIRST_A))])


def column(result, name):
    return result.hits[:, :, result.rankings.index(name)]


def test_known_hits_local_frozen_random_and_another_ranking(tmp_path, hand_run):
    truncation = write_rankings(tmp_path / "trunc", [other("a", range(9, -1, -1), 10)])
    result = rank_dynamics(hand_run, {"truncation": truncation}, keeps=KEEPS)
    assert result.rankings == [*BUILT_IN, "truncation"] and result.transitions == [(1.0, 0.6), (0.6, 0.2)]
    # 1.0 → 0.6: S = {0..3} of 10 tokens; 0.6 → 0.2: S = {4..7} of the 6 left ({4..9})
    assert result.removed.tolist() == [[4, 4]] and result.present.tolist() == [[10, 6]]
    assert column(result, LOCAL).tolist() == [[1.0, 1.0]]
    assert column(result, FROZEN).tolist() == [[1.0, 0.5]]  # step 0 puts 9, 8 ahead of 4, 5 among {4..9}
    assert np.allclose(column(result, RANDOM_EXPECTED), [[0.4, 4 / 6]])
    assert column(result, "truncation").tolist() == [[0.0, 0.5]]  # 9, 8, 7, 6 first; 7, 6 are in S
    # the control: greedy's first deletion of each transition (0, then 4) leaves S and the ranked tokens
    left_out = {name: result.hits_without_first[:, :, result.rankings.index(name)] for name in result.rankings}
    assert left_out[LOCAL].tolist() == [[1.0, 1.0]]
    assert np.allclose(left_out[FROZEN], [[1.0, 1 / 3]])  # among {5..9} step 0 puts 9, 8, 7 first: only 7 is in S
    assert np.allclose(left_out[RANDOM_EXPECTED], [[3 / 9, 3 / 5]])
    assert np.allclose(left_out["truncation"], [[0.0, 1 / 3]])


def test_leaving_out_the_first_deletion_removes_the_built_in_floor():
    reference, shares_first_only = list(range(10)), [0, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    assert hit_at_s(reference, shares_first_only, 10, 1.0, 0.6) == 0.25  # 1/|S| for the shared first choice
    assert hit_at_s(reference, shares_first_only, 10, 1.0, 0.6, without_first=True) == 0.0
    assert hit_at_s(reference, reference, 10, 1.0, 0.6, without_first=True) == 1.0
    assert np.isnan(hit_at_s(reference, reference, 10, 1.0, 0.9, without_first=True))  # |S| = 1: nothing left


def test_paired_difference_resamples_examples_with_both_values():
    rng = np.random.default_rng(0)
    hits = rng.uniform(size=(40, 2, 2))
    hits[:, :, 1] = hits[:, :, 0] - 0.1 + rng.normal(0, 0.01, size=(40, 2))  # q trails p by 0.1 in every example
    hits[3, 0, 1] = np.nan
    result = RankDynamics([str(i) for i in range(40)], [1.0, 0.9, 0.8], ["p", "q"], hits, hits,
                          np.ones((40, 2), dtype=int), np.full((40, 2), 10))  # fmt: skip
    mean, low, high, counts = result.paired_difference("p", "q", seed=0)
    assert counts.tolist() == [39, 40] and np.allclose(mean, 0.1, atol=0.01)
    assert np.all(low < mean) and np.all(high > mean) and np.all(high - low < 0.02)  # unpaired would be ~0.2 wide
    mean_q, *_ = result.paired_difference("q", "p", seed=0)
    assert np.allclose(mean_q, -mean)


def test_local_reads_the_step_where_the_transition_starts(tmp_path):
    # step 4 (where 0.6 starts) ranks 9, 8, 7, 6 first: local at 0.6 → 0.2 is then as wrong as that row
    table = scores_following(ORDER_A, 10)
    table[4, 4:] = [-9, -8, -7, -6, -5, -4]
    result = rank_dynamics(write_run(tmp_path / "prune", [(greedy("a", ORDER_A, 10), table)]), keeps=KEEPS)
    assert column(result, LOCAL).tolist() == [[1.0, 0.5]]


def test_ties_go_to_the_lower_position(tmp_path):
    # every step scores all remaining tokens alike, so greedy (ties → lowest position) deletes 0, 1, …, 5;
    # a local ranking that broke ties the other way would score 0 at 1.0 → 0.5
    table = np.where(np.triu(np.ones((6, 6))) > 0, 0.0, np.nan)
    result = rank_dynamics(write_run(tmp_path / "prune", [(greedy("t", range(6), 6), table)]), keeps=(1.0, 0.5))
    assert column(result, LOCAL).tolist() == [[1.0]] and column(result, FROZEN).tolist() == [[1.0]]


def test_random_draw_is_seeded_and_empty_transitions_are_nan(tmp_path):
    order = [3, 7, 1, 0, 9, 2, 8, 5, 4]
    chains = [(greedy("a", ORDER_A, 10), scores_following(ORDER_A, 10, FIRST_A)),
              (greedy("b", order, 10), scores_following(order, 10)),
              (greedy("c", ORDER_A[:4], 4), scores_following(ORDER_A[:4], 4))]  # fmt: skip
    run = write_run(tmp_path / "prune", chains)
    once, again = rank_dynamics(run, seed=3), rank_dynamics(run, seed=3)
    assert np.array_equal(column(once, RANDOM_DRAW), column(again, RANDOM_DRAW), equal_nan=True)
    # the draw is one permutation per chain, in run order, from the seed
    rng = np.random.default_rng(3)
    draws = [rng.permutation(r.n).tolist() for r, _ in chains]
    for row, (ranking, _) in enumerate(chains):
        for index, (high, low) in enumerate(once.transitions):
            expected = hit_at_s(ranking.deletion_order, draws[row], ranking.n, high, low)
            assert np.isclose(once.hits[row, index, BUILT_IN.index(RANDOM_DRAW)], expected, equal_nan=True)
    # default grid: down to 0.1, the deepest every chain reaches; 4 tokens remove none in 1.0 → 0.9
    assert once.keeps == [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    assert once.removed[2, 0] == 0 and np.isnan(once.hits[2, 0]).all() and not np.isnan(once.hits[2, 1]).any()


def test_keep_grid_stops_at_the_deepest_keep_every_ranking_reaches():
    grid = keep_grid([greedy("a", range(7), 10), greedy("b", range(10), 10)])
    assert grid == [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    with pytest.raises(PrunelensError, match="record 'b': pruning stopped at keep 1.000"):
        keep_grid([greedy("a", range(7), 10), greedy("b", [], 10)])


def test_bad_inputs_raise_one_line_errors_naming_the_record(tmp_path, hand_run):
    errors = {
        "other tokens": ({"x": write_rankings(tmp_path / "x", [other("a", range(10), 10, ids=list(range(10)))])}, None),
        "not among the y rankings": ({"y": write_rankings(tmp_path / "y", [other("zz", range(10), 10)])}, None),
        "taken by a built-in": ({LOCAL: write_rankings(tmp_path / "z", [other("a", range(10), 10)])}, None),
        "falling": (None, (0.6, 1.0)),
    }
    for message, (others, keeps) in errors.items():
        with pytest.raises(PrunelensError, match=message) as error:
            rank_dynamics(hand_run, others, keeps=keeps)
        assert "\n" not in str(error.value)
    short = write_run(tmp_path / "short", [(greedy("s", range(5), 10), scores_following(range(5), 10))])
    with pytest.raises(PrunelensError, match="record 's': pruning stopped at keep 0.500, before 0.2"):
        rank_dynamics(short, keeps=KEEPS)
    missing = scores_following(ORDER_A, 10, FIRST_A)
    missing[4, 9] = np.nan  # a screened round scores only some candidates
    with pytest.raises(PrunelensError, match="record 'a': candidate scores missing at step 4"):
        rank_dynamics(write_run(tmp_path / "screened", [(greedy("a", ORDER_A, 10), missing)]), keeps=KEEPS)
    approximate = write_run(tmp_path / "block", [(greedy("a", ORDER_A, 10, exact=False), missing)])
    with pytest.raises(PrunelensError, match="record 'a': approximate pruning"):
        rank_dynamics(approximate, keeps=KEEPS)
    with pytest.raises(PrunelensError, match="record 'a': a truncation ranking"):
        rank_dynamics(write_rankings(tmp_path / "t", [other("a", range(10), 10)]))


def test_bootstrap_interval_contains_the_mean_and_is_seeded():
    rng = np.random.default_rng(0)
    hits = rng.uniform(size=(30, 3, 2))
    hits[0, 1, 0] = np.nan  # a chain with an empty S in one transition is left out of that mean
    result = RankDynamics([str(i) for i in range(30)], [1.0, 0.9, 0.8, 0.7], ["p", "q"], hits, hits[::-1],
                          np.ones((30, 3), dtype=int), np.full((30, 3), 10))  # fmt: skip
    mean, low, high = result.summary(seed=1)
    assert np.allclose(mean, np.nanmean(hits, axis=0))
    assert np.all(low < mean) and np.all(mean < high) and np.all(high - low < 0.5)
    assert all(np.array_equal(a, b) for a, b in zip(result.summary(seed=1), (mean, low, high)))
    assert not np.array_equal(result.summary(seed=2)[1], low)
    assert np.allclose(result.summary(seed=1, without_first=True)[0], np.nanmean(hits[::-1], axis=0))


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, tiny_model_dir):
    from prunelens.pruning.run import PruneConfig, run_pruning
    from prunelens.rankers.run import RankConfig, run_rank

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("rank-dynamics")
    chains = write_chains(root / "chains.jsonl", [
        {"id": "c1", "question": "Tom has 3 apples and buys 2 more. How many?",
         "reasoning": "Tom starts with 3 apples and buys 2 more, so he has 3 + 2 = 5 apples.", "answer": "5"},
        {"id": "c2", "question": "What is 4 times 6?",
         "reasoning": "4 * 6 = 24, so four times six is 24 in total.", "answer": "24"},
    ])  # fmt: skip
    common = dict(model=str(tiny_model_dir), chains=chains, limit=None, threads=1)
    prune = run_pruning(PruneConfig(**common, keep=0.1, out=root / "prune"), progress=False).out_dir
    uniform = run_rank(RankConfig(**common, method="uniform", out=root / "uniform"), progress=False).out_dir
    return prune, uniform


def test_tiny_model_end_to_end_with_save_load_table_and_figure(tmp_path, tiny_runs):
    from matplotlib.image import imread

    from prunelens.core.ranking import load_rankings

    prune, uniform = tiny_runs
    result = rank_dynamics(prune, {"uniform": uniform})
    rankings = {r.id: r for r in load_rankings(prune)}
    uniforms = {r.id: r for r in load_rankings(uniform)}
    assert result.keeps[-1] == 0.1 and result.ids == ["c1", "c2"]
    local, frozen = column(result, LOCAL), column(result, FROZEN)
    assert np.array_equal(local[:, 0], frozen[:, 0])  # at ρ = 1.0 local and frozen are one ranking
    removed = result.removed > 0
    # greedy deletes the local ranking's first token, so local finds at least one of S
    assert np.all(local[removed] >= 1 / result.removed[removed])
    assert np.all(local[result.removed == 1] == 1.0)
    for row, example in enumerate(result.ids):
        n = rankings[example].n
        for index, (high, low) in enumerate(result.transitions):
            expected = hit_at_s(rankings[example].deletion_order, uniforms[example].deletion_order, n, high, low)
            assert np.isclose(column(result, "uniform")[row, index], expected, equal_nan=True)

    saved = RankDynamics.load(result.save(tmp_path / "dyn.nc"))
    for name in ("ids", "keeps", "rankings", "meta"):
        assert getattr(saved, name) == getattr(result, name)
    for name in ("hits", "hits_without_first", "removed", "present"):
        assert np.array_equal(getattr(saved, name), getattr(result, name), equal_nan=True)
    # without its first deletion, a transition that removes one token has nothing left to hit
    assert np.isnan(result.hits_without_first[result.removed == 1]).all()
    with pytest.raises(PrunelensError, match="no such rank-dynamics file"):
        RankDynamics.load(tmp_path / "missing.nc")

    table = result.table()
    assert table.count("\n") == 2 + len(result.transitions) - 1 and "| 1 → 0.9 | 2 |" in table
    assert all(name in table.splitlines()[0] for name in result.rankings)
    image = imread(result.figure(tmp_path / "dyn.png"))
    assert image.shape[0] > 300 and image[..., :3].var() > 0.01


def test_experiment_script_creates_then_reuses_its_runs(tmp_path, tiny_model_dir, monkeypatch):
    module = load_experiment("rank_dynamics", monkeypatch)
    argv = ["--model", str(tiny_model_dir), "--count", "2", "--runs-dir", str(tmp_path / "runs"),
            "--out-dir", str(tmp_path / "out"), "--quiet"]  # fmt: skip
    module.main(argv)
    report = (tmp_path / "out" / "rank_dynamics.md").read_text()
    for name in ("| local |", "h2o", "surprisal", "uniform", "truncation", "local > frozen in", "Wall time"):
        assert name in report
    assert (tmp_path / "out" / "rank_dynamics.png").stat().st_size > 1000
    greedy_file = next((tmp_path / "runs").glob("cpu-n2-*")) / "greedy-joint" / "rankings.jsonl"
    first = greedy_file.read_text()
    assert len(first.splitlines()) == 2
    module.main(argv)  # a rerun reuses the runs: nothing is pruned again
    assert greedy_file.read_text() == first
    assert (tmp_path / "out" / "rank_dynamics.md").read_text().split("Wall time")[0] == report.split("Wall time")[0]
