"""Claim tests: the verdict rule on values with known answers, then the paper-claims script end to end on the tiny
model (export with --prune, then the report from the exported data alone)."""

import json

import numpy as np
import pytest
from conftest import load_experiment

from prunelens.analysis.claims import ABOVE, BELOW, MIN_EXAMPLES, ClaimTest, claims_table, evaluate_claims


def claim(direction, target=40):
    return ClaimTest("§0", "a claim", "Fig. 0", "m", "a measure", direction, 0, target, float("nan"))


def evaluated(*pairs):
    return evaluate_claims([(claim(direction, *rest), values) for direction, values, *rest in pairs], resamples=4000)


def test_directional_claims_hold_contradict_or_stay_inconclusive():
    rng = np.random.default_rng(0)
    up, down, flat = rng.normal(0.3, 0.1, 40), rng.normal(-0.3, 0.1, 40), rng.normal(0.0, 0.1, 40)
    verdicts = [c.verdict for c in evaluated((ABOVE, up), (BELOW, up), (BELOW, down), (ABOVE, flat))]
    assert verdicts == ["holds", "contradicts", "holds", "inconclusive"]


def test_an_interval_excludes_zero_exactly_where_the_verdict_is_not_inconclusive():
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 1.0, 40)
    noise = (noise - noise.mean()) / noise.std()
    # two weak effects, each below 0.05 alone, beside a strong one: Holm rejects the strong one and stops there
    claims = evaluated((ABOVE, noise + 0.34), (ABOVE, noise[::-1] + 0.34), (ABOVE, noise + 2.0))
    assert all(claim.p < 0.05 for claim in claims)
    assert [c.verdict for c in claims] == ["inconclusive", "inconclusive", "holds"]
    for claim in claims:
        assert (claim.verdict == "inconclusive") == (claim.low <= 0 <= claim.high), claim


def test_holm_family_levels_few_examples_and_provisional_verdicts():
    rng = np.random.default_rng(2)
    few = rng.normal(1.0, 0.1, MIN_EXAMPLES - 1)
    claims = evaluated((ABOVE, rng.normal(0.3, 0.1, 30), 96), (ABOVE, few),
                       (ABOVE, np.r_[rng.normal(0.3, 0.1, 30), np.nan], 30))
    first, small, third = claims
    assert first.verdict == "holds (provisional)" and third.n == 30 and third.verdict == "holds"
    assert small.verdict == f"no verdict (fewer than {MIN_EXAMPLES} chains)" and np.isnan(small.p_holm)
    assert sorted([first.level, third.level]) == pytest.approx([0.95, 1 - 0.05 / 2])  # a family of two, not three
    assert first.low < first.estimate < first.high
    table = claims_table(claims)
    assert table.count("\n") == 4 and "| 0.3" not in table and "no verdict" in table


@pytest.mark.slow
def test_paper_claims_script_exports_then_reports_from_the_data_alone(tmp_path, tiny_model_dir, monkeypatch):
    module = load_experiment("paper_claims", monkeypatch)
    data, out = tmp_path / "data", tmp_path / "out"
    module.main(["export", "--prune", "--models", "smollm2-135m", "--model", str(tiny_model_dir), "--count", "2",
                 "--runs-dir", str(tmp_path / "runs"), "--data", str(data), "--quiet"])  # fmt: skip
    exported = data / "smollm2-135m"
    assert sorted(p.name for p in exported.iterdir()) == ["rank_dynamics.nc", "rank_dynamics_grid0.2.nc",
                                                          "retention.nc", "runs.json"]  # fmt: skip
    summary = json.loads((exported / "runs.json").read_text())
    assert summary["target"] == 2 and summary["runs"]["greedy-joint"]["chains"] == 2 and summary["threads"] == 1
    assert set(summary["runs"]) == {"greedy-joint", "greedy-answer", *module.BASELINES}
    module.main(["--models", "smollm2-135m", "gemma3-270m", "--data", str(data), "--out-dir", str(out)])
    report = (out / "paper_claims.md").read_text()
    for text in ("**Verdict rule.**", "local rankings predict greedy's next deletions", "SymbMath is over-retained",
                 "Ans moves CoRef closer to uniform than Joint", "first deletion left out", "surprisal-reversed",
                 "Relative area", "No exported data in", "## Not testable on these machines", "Pearson 0.88",
                 "| smollm2-135m | greedy-joint | 2 |"):  # fmt: skip
        assert text in report, text
    assert "no verdict (fewer than 10 chains)" in report and "| holds" not in report  # two chains: no verdicts
    for figure in ("rank_dynamics", "retention"):
        assert (out / f"paper_claims_smollm2-135m_{figure}.png").read_bytes()[:4] == b"\x89PNG"
    first = report.split("This report:")[0]
    module.main(["--models", "smollm2-135m", "gemma3-270m", "--data", str(data), "--out-dir", str(out)])
    assert (out / "paper_claims.md").read_text().split("This report:")[0] == first  # the same data, the same report


def test_model_claims_read_the_right_transitions_and_signs(monkeypatch):
    from prunelens.analysis.rank_dynamics import BUILT_IN, FROZEN, LOCAL, RANDOM_EXPECTED, RankDynamics
    from prunelens.analysis.retention import RetentionCounts

    module = load_experiment("paper_claims", monkeypatch)
    keeps = [round(1.0 - 0.1 * k, 10) for k in range(10)]  # transitions start at 1.0, 0.9, …, 0.2
    starts = np.array(keeps[:-1])
    rng = np.random.default_rng(0)
    hits = np.full((30, 9, len(BUILT_IN)), 0.1)
    hits[:, :, BUILT_IN.index(LOCAL)] = 0.6
    hits[:, :, BUILT_IN.index(FROZEN)] = np.where((starts >= 0.4) & (starts <= 0.7), 0.2, 0.5)  # widest mid-way
    hits[:, :, BUILT_IN.index(RANDOM_EXPECTED)] = 0.1
    hits += rng.normal(0, 0.002, hits.shape)
    dynamics = RankDynamics([f"c{i}" for i in range(30)], keeps, list(BUILT_IN), hits, hits,
                            np.ones((30, 9), dtype=int), np.full((30, 9), 10))  # fmt: skip
    gap = module.per_chain_gap(dynamics, LOCAL, FROZEN, False)  # after the first transition: 4 × 0.4 + 4 × 0.1
    assert np.allclose(gap, (4 * 0.4 + 4 * 0.1) / 8, atol=0.02)
    assert np.allclose(module.per_chain_gap(dynamics, LOCAL, FROZEN, False, module.MIDDLE), 0.4, atol=0.02)
    assert np.allclose(module.per_chain_gap(dynamics, LOCAL, FROZEN, False, module.LATE), 0.1, atol=0.02)
    # SymbMath kept to the end in every chain, the rest removed first
    tokens = np.tile([10, 0, 0, 4, 0, 6], (30, 1))
    kept = np.zeros((1, 30, 6, 3))
    kept[0, :, :, 0] = tokens  # keep 1.0: everything
    kept[0, :, 0, 1] = 10  # keep 0.5: the 10 SymbMath tokens
    counts = RetentionCounts([f"c{i}" for i in range(30)], ["greedy (joint)"], [1.0, 0.5, 0.0], tokens, kept, {})
    claims = evaluate_claims(module.model_claims("m", dynamics, dynamics, counts, 30))
    verdict = {(c.claim, c.measure): c.verdict for c in claims}
    rank = [c for c in claims if c.section == "§5.2" and "as defined" in c.measure]
    assert [c.verdict for c in rank] == ["holds"] * 5  # local > frozen (two grids), > random, wider than early and late
    assert verdict[("SymbMath is over-retained", "raw area (joint)")] == "holds"
    assert not any(c.claim.startswith("Ans") for c in claims)  # no answer-objective run: no such claims
