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
