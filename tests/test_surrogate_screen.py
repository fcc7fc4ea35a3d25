"""Surrogate screening: exact in its limits, refuses mismatched surrogates; the benchmark's floor criterion."""

import numpy as np
import pytest
from conftest import tiny_model

from prunelens.core.errors import PrunelensError
from prunelens.probes.backends import HFBlockwiseBackend
from prunelens.probes.features import FEATURE_DEFINITION
from prunelens.probes.surrogate import Surrogate, SurrogateConfig, surrogate_refusal
from prunelens.bench.run import keeps_down_to, meets_floor
from prunelens.pruning.greedy import Approximation, calibrated_costs, greedy_prune
from prunelens.pruning.prefix_scorer import PrefixCacheScorer
from prunelens.pruning.surrogate_screen import SurrogatePredictor


def surrogate_screen(m, **kwargs):
    return Approximation(screen=m, rescore_every=0, screen_by="surrogate", **kwargs)


def random_surrogate(features: int, seed: int = 0, meta=None) -> Surrogate:
    rng = np.random.default_rng(seed)
    meta = {"feature_definition": FEATURE_DEFINITION, "model": "tiny"} if meta is None else meta
    return Surrogate(SurrogateConfig(kind="ridge"), np.zeros(features), np.ones(features),
                     {"weights": rng.normal(size=features)}, meta)  # fmt: skip


@pytest.fixture
def tiny_case():
    model = tiny_model("llama", seed=11)
    rng = np.random.default_rng(12)
    prompt, reasoning, answer = (rng.integers(0, 96, k).tolist() for k in (4, 14, 2))
    predictor = SurrogatePredictor(random_surrogate(2 * 4), HFBlockwiseBackend(model))  # 2 layers × 4 heads
    return model, prompt, reasoning, answer, predictor


def test_surrogate_screening_with_m_at_least_n_is_exact(tiny_case):
    model, prompt, reasoning, answer, predictor = tiny_case
    exact = greedy_prune(PrefixCacheScorer(model), prompt, reasoning, answer, "joint", keep=0.5)
    screened = greedy_prune(PrefixCacheScorer(model), prompt, reasoning, answer, "joint", keep=0.5,
                            approximation=surrogate_screen(len(reasoning)), predictor=predictor)  # fmt: skip
    assert screened.deletion_order == exact.deletion_order
    np.testing.assert_allclose(screened.step_scores, exact.step_scores, atol=1e-9)


def test_random_surrogate_screening_gives_a_valid_order_and_scores_fewer_candidates(tiny_case):
    model, prompt, reasoning, answer, predictor = tiny_case
    out = greedy_prune(PrefixCacheScorer(model), prompt, reasoning, answer, "joint", keep=0.5,
                       approximation=surrogate_screen(2, neighbors=0), predictor=predictor)  # fmt: skip
    assert len(out.deletion_order) == 7 and len(set(out.deletion_order)) == 7
    assert set(out.deletion_order) <= set(range(len(reasoning)))
    scored = np.isfinite(out.candidate_scores).sum(axis=1)
    assert scored.min() >= 2 and scored.sum() < sum(range(8, 15))  # exact scores 14 + 13 + … + 8
    assert predictor.tokens_computed == sum(4 + 14 - t + 2 for t in range(7))  # one hook pass per round


class AdditiveScorer:
    """Objective = the sum of the kept tokens' values (each deletion costs its token's value)."""

    def __init__(self, values):
        self.values, self.scored = values, 0

    def score(self, prompt_ids, candidates, answer_ids, objective, trunk=None):
        self.scored += len(candidates)
        return np.array([sum(self.values[t] for t in c) for c in candidates], dtype=float)


def test_an_oracle_surrogate_makes_screening_exact():
    values = np.random.default_rng(13).permutation(40).astype(float) + 1
    values[[5, 6]] = values[5]  # a tie: the lowest position goes first, in both
    reasoning = list(range(40))

    def oracle(prompt, current, answer):  # the exact post-deletion scores
        return np.array([sum(values[t] for t in current) - values[t] for t in current])

    exact_scorer, screened_scorer = AdditiveScorer(values), AdditiveScorer(values)
    exact = greedy_prune(exact_scorer, [], reasoning, [], "joint", keep=0.3)
    screened = greedy_prune(screened_scorer, [], reasoning, [], "joint", keep=0.3,
                            approximation=surrogate_screen(2, neighbors=0), predictor=oracle)  # fmt: skip
    assert screened.deletion_order == exact.deletion_order
    assert screened.step_scores == exact.step_scores
    assert screened_scorer.scored < exact_scorer.scored / 5


def test_screening_widens_to_a_candidate_whose_last_known_cost_undercuts_the_best_fresh_one():
    values = np.arange(20, dtype=float) + 1  # deleting token t costs t + 1
    scorer = AdditiveScorer(values)

    def predictor(prompt, current, answer):  # round 0: tokens 0 and 1 first; later: the costliest first
        return -np.array(current, dtype=float) if len(current) == 20 else np.array(current, dtype=float)

    out = greedy_prune(scorer, [], list(range(20)), [], "joint", keep=0.9,
                       approximation=surrogate_screen(2, neighbors=0), predictor=predictor)  # fmt: skip
    # round 1 scores 19 and 18 (costs 20, 19); token 1's cost 2 from round 0 undercuts them, so it is scored
    assert out.deletion_order == [0, 1]
    assert np.isfinite(out.candidate_scores[1]).sum() == 3  # 19, 18, then 1 (the only one that could beat 18)


def test_calibrated_costs_follow_the_line_of_cost_on_prediction():
    np.testing.assert_allclose(calibrated_costs([(1.0, 5.0), (2.0, 3.0), (3.0, 1.0)], np.array([4.0, 0.0])),
                               [-1.0, 7.0])  # fmt: skip
    assert np.isinf(calibrated_costs([(1.0, 1.0), (2.0, 2.0)], np.zeros(3))).all()  # under 3 pairs
    assert np.isinf(calibrated_costs([(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)], np.zeros(3))).all()  # rising
    assert np.isinf(calibrated_costs([(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)], np.zeros(3))).all()  # one prediction


def test_screening_by_surrogate_needs_a_predictor_and_nothing_else_takes_one():
    scorer = AdditiveScorer(np.ones(6))
    with pytest.raises(PrunelensError, match="surrogate screening needs screen and a predictor"):
        greedy_prune(scorer, [], list(range(6)), [], "joint", approximation=surrogate_screen(2))
    with pytest.raises(PrunelensError, match="surrogate screening needs screen and a predictor"):
        greedy_prune(scorer, [], list(range(6)), [], "joint", approximation=Approximation(screen=2),
                     predictor=lambda *a: np.zeros(6))  # fmt: skip
    with pytest.raises(PrunelensError, match="unknown screen_by 'oracle'"):
        Approximation(screen=2, screen_by="oracle")


def test_a_feature_definition_mismatch_is_refused():
    def refusal(surrogate, model="m"):  # screening's features: 8 per token (2 layers × 4 heads)
        return surrogate_refusal(surrogate, model, FEATURE_DEFINITION, 8, "screening computes them")

    assert refusal(random_surrogate(8, meta={"feature_definition": FEATURE_DEFINITION})) is None
    old = random_surrogate(8, meta={"feature_definition": "attention[token] = sum over heads"})
    assert "defined as 'attention[token] = sum over heads', not as screening computes them" in refusal(old)
    assert "defined as None" in refusal(random_surrogate(8, meta={}))
    assert "not 'm'" in refusal(random_surrogate(8, meta={"feature_definition": FEATURE_DEFINITION, "model": "other"}))
    assert "expects 6 features per token, not 8" in refusal(random_surrogate(6), "tiny")


def test_prune_job_refuses_a_mismatched_surrogate_in_one_line(tmp_path, tiny_model_dir):
    from conftest import DATA_DIR

    from prunelens.pruning.run import PruneConfig, run_pruning

    path = tmp_path / "old.pt"
    random_surrogate(8, meta={"feature_definition": "something else"}).save(path)
    config = PruneConfig(model=str(tiny_model_dir), dataset="gsm8k", split="test", limit=1, data_dir=DATA_DIR,
                         steps=2, screen=2, surrogate=path, out=tmp_path / "run")  # fmt: skip
    with pytest.raises(PrunelensError, match=r"--surrogate .*old.pt: trained on features defined as 'something else'"):
        run_pruning(config, progress=False, log=lambda line: None)


def test_prune_job_records_surrogate_screening(tmp_path, tiny_model_dir):
    from conftest import DATA_DIR

    from prunelens.pruning.run import PruneConfig, run_pruning
    from prunelens.core.ranking import load_rankings

    path = tmp_path / "surrogate.pt"
    random_surrogate(8, meta={"feature_definition": FEATURE_DEFINITION, "model": str(tiny_model_dir)}).save(path)
    config = PruneConfig(model=str(tiny_model_dir), dataset="gsm8k", split="test", limit=1, data_dir=DATA_DIR,
                         steps=3, screen=2, rescore_every=0, surrogate=path, out=tmp_path / "run")  # fmt: skip
    run_pruning(config, progress=False, log=lambda line: None)
    (ranking,) = load_rankings(tmp_path / "run")
    assert len(ranking.deletion_order) == 3 and not ranking.exact
    assert ranking.settings["screen_by"] == "surrogate" and ranking.settings["surrogate"] == str(path)


def test_keeps_down_to_runs_from_0_9_to_the_final_keep():
    assert keeps_down_to(0.5) == [0.9, 0.8, 0.7, 0.6, 0.5]
    assert keeps_down_to(0.75) == [0.9, 0.8, 0.75]
    assert keeps_down_to(0.9) == [0.9]


def test_meets_floor_needs_every_band_and_every_keep_against_the_floors_own_values():
    floor, floor_deltas = [0.78, 0.57, 0.63], [-0.5, -1.0, -2.9]
    assert meets_floor(floor, floor, floor_deltas, floor_deltas)  # the floor meets it by definition
    assert meets_floor([0.80, 0.57, 0.70], floor, [0.0, -1.0, -2.0], floor_deltas)  # below exact, not below the floor
    assert not meets_floor([0.80, 0.56, 0.90], floor, [0.0, 0.4, 1.2], floor_deltas)  # one band under the floor
    assert not meets_floor([0.90, 0.90, 0.90], floor, [0.5, -1.01, 1.2], floor_deltas)  # under at a middle keep only
    assert not meets_floor([0.90, 0.90, 0.90], floor, [-0.6, 0.4, 1.2], floor_deltas)  # at the first keep
    assert meets_floor([np.nan, 0.6, 0.7], [np.nan, 0.57, 0.63], [0.0, np.nan], [-0.1, -0.2])  # empty: says nothing
