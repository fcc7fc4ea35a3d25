"""Category retention on hand-made rankings and labels whose curves and areas are known exactly."""

from dataclasses import replace

import numpy as np
import pytest
from conftest import load_experiment

from prunelens.analysis.retention import RetentionCounts, area_table, area_tests, category_retention
from prunelens.core.bootstrap import holm
from prunelens.annotate.labels import CATEGORIES, Annotation, tokens_digest
from prunelens.core.errors import PrunelensError
from prunelens.core.ranking import Ranking

GRID = [round(1.0 - 0.1 * k, 10) for k in range(11)]  # 1.0, 0.9, …, 0.0: includes the kink at 0.5


def ranking(id: str, n: int, order: list[int], method: str = "m") -> Ranking:
    return Ranking(id=id, method=method, model="tok", reasoning="x" * n, reasoning_ids=list(range(100, 100 + n)),
                   reasoning_tokens=["x"] * n, offsets=[[i, i + 1] for i in range(n)],
                   deletion_order=order)  # fmt: skip


def annotation(id: str, n: int, labels: list[str], **changes) -> Annotation:
    made = Annotation(id=id, annotator="test", model="tok", digest=tokens_digest("tok", list(range(100, 100 + n))),
                      labels=labels)  # fmt: skip
    return replace(made, **changes)


# chain a: 5 SymbMath then 5 Grammar; chain c: 4 Grammar; chain d: never annotated, chain f: annotation failed
LABELS = {"a": ["SymbMath"] * 5 + ["Grammar"] * 5, "c": ["Grammar"] * 4, "f": ["CoRef"] * 3}
ANNOTATIONS = {
    "a": annotation("a", 10, LABELS["a"]),
    "c": annotation("c", 4, LABELS["c"]),
    "f": annotation("f", 3, [], status="failed", reason="malformed reply"),
}
FROM_END = {"a": list(range(9, -1, -1)), "c": [3, 2, 1, 0], "d": [1, 0], "f": [2, 1, 0]}
SIZES = {"a": 10, "c": 4, "d": 2, "f": 3}


def truncation(ids=("a", "c", "d", "f")) -> list[Ranking]:
    return [ranking(i, SIZES[i], FROM_END[i]) for i in ids]


def test_truncation_over_retains_the_category_that_comes_first():
    result = category_retention({"truncation": truncation()}, ANNOTATIONS, keeps=GRID)
    curves = result.methods["truncation"].curves
    assert list(curves) == ["SymbMath", "Grammar"]  # categories present, in priority order
    symb, grammar = curves["SymbMath"], curves["Grammar"]
    # chain a keeps its first 10ρ tokens: SymbMath min(2ρ, 1), Grammar max(0, 2ρ − 1); chain c keeps round(4ρ)/4
    np.testing.assert_allclose(symb.retention, [min(2 * k, 1) for k in GRID])
    c_kept = [min(4, int(np.floor(4 * k + 0.5))) / 4 for k in GRID]
    pairs = list(zip(GRID, c_kept, strict=True))
    np.testing.assert_allclose(grammar.retention, [(max(0, 2 * k - 1) + c) / 2 for k, c in pairs])
    np.testing.assert_allclose(grammar.uniform, [(k + c) / 2 for k, c in pairs])
    # areas against uniform deletion: ∫(min(2ρ,1) − ρ) = +0.25 for SymbMath; Grammar (−0.25 + 0) / 2
    assert symb.area == pytest.approx(0.25) and grammar.area == pytest.approx(-0.125)
    assert symb.area_low == pytest.approx(0.25) == symb.area_high  # one chain: the interval is the point
    assert grammar.area_low <= grammar.area <= grammar.area_high
    assert np.all(np.array(grammar.low) <= np.array(grammar.retention) + 1e-12)
    assert (symb.chains, grammar.chains) == (1, 2)
    run = result.methods["truncation"]
    assert (run.chains, run.skipped) == (2, 2)  # d: no annotation; f: annotation failed


def test_a_category_blind_order_matches_uniform_deletion_despite_rounding():
    three = ranking("g", 3, [2, 1, 0])
    result = category_retention({"truncation": [three]}, {"g": annotation("g", 3, ["Grammar"] * 3)}, keeps=GRID)
    grammar = result.methods["truncation"].curves["Grammar"]
    assert grammar.area == pytest.approx(0.0)
    # round(3ρ)/3 sits off the diagonal: measured against y = ρ itself the same curve would get 1/60
    off = np.array(grammar.retention) - GRID
    assert sum((off[i] + off[i + 1]) / 2 * 0.1 for i in range(len(GRID) - 1)) == pytest.approx(1 / 60)


def test_two_methods_distribution_table_and_figures(tmp_path):
    from_start = [ranking("a", 10, list(range(10))), ranking("c", 4, [0, 1, 2, 3])]
    result = category_retention({"truncation": truncation(), "from start": from_start}, ANNOTATIONS, keeps=GRID)
    assert result.methods["from start"].curves["SymbMath"].area == pytest.approx(-0.25)
    shares = {"SymbMath": 5 / 14, "MetaDisc": 0, "CoRef": 0, "EntName": 0, "VerbalMath": 0, "Grammar": 9 / 14}
    assert result.distribution == pytest.approx(shares)  # each chain counted once, though two methods rank it
    assert (result.tokens, result.chains) == (14, 2)
    table = result.table()
    assert "| truncation | +0.250 [+0.250, +0.250] | – | – | – | – |" in table
    assert "| from start | -0.250 [-0.250, -0.250] |" in table
    assert "| Grammar | 9 | 64.3% | 2 |" in result.distribution_table()
    assert "| SymbMath | 5 | 35.7% | 1 |" in result.distribution_table()
    for written in (result.figure(tmp_path / "r.png"), result.distribution_figure(tmp_path / "d.png", "gold chains")):
        assert written.read_bytes()[:4] == b"\x89PNG"


def test_default_grid_stops_at_the_deepest_keep_every_ranking_reaches():
    stopped = ranking("a", 10, [9, 8, 7, 6, 5, 4])  # 4 tokens left
    result = category_retention({"greedy": [stopped], "truncation": truncation(("c",))}, ANNOTATIONS)
    deepest = result.keeps[-1]
    assert result.keeps[:3] == [1.0, 0.95, 0.9] and 0.35 <= deepest <= 0.4
    assert stopped.reaches(deepest) and not stopped.reaches(round(deepest - 0.05, 10))
    assert result.methods["greedy"].curves["SymbMath"].retention[-1] == pytest.approx(0.8)  # position 4 is gone
    with pytest.raises(PrunelensError, match=r"^record 'a' \(greedy\): the ranking stops at keep 0.400, above 0.3$"):
        category_retention({"greedy": [stopped]}, ANNOTATIONS, keeps=[1.0, 0.3])


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(0)
    chains = [ranking(f"r{i}", 10, [int(p) for p in rng.permutation(10)]) for i in range(12)]
    labels = {r.id: annotation(r.id, 10, list(rng.choice(["SymbMath", "Grammar"], 10))) for r in chains}
    first, again, other = (category_retention({"m": chains}, labels, keeps=GRID, seed=s) for s in (3, 3, 4))
    grammar = [r.methods["m"].curves["Grammar"] for r in (first, again, other)]
    assert grammar[0] == grammar[1]
    assert grammar[0].retention == grammar[2].retention and grammar[0].area == grammar[2].area
    assert (grammar[0].low, grammar[0].area_low) != (grammar[2].low, grammar[2].area_low)
    assert grammar[0].area_low < grammar[0].area < grammar[0].area_high


def test_bad_labels_are_refused():
    rankings = {"truncation": truncation(("a",))}
    other_tokens = {"a": annotation("a", 9, LABELS["a"])}
    with pytest.raises(PrunelensError, match=r"^record 'a': its annotation was made for other tokens"):
        category_retention(rankings, other_tokens, keeps=GRID)
    with pytest.raises(PrunelensError, match=r"^record 'a' \(truncation\): 9 labels for 10 tokens$"):
        category_retention(rankings, {"a": annotation("a", 10, LABELS["a"][:9])}, keeps=GRID)
    with pytest.raises(PrunelensError, match=r"^record 'a' \(truncation\): unknown category label\(s\) Math$"):
        category_retention(rankings, {"a": annotation("a", 10, ["Math"] + LABELS["a"][1:])}, keeps=GRID)
    with pytest.raises(PrunelensError, match=r"^keep fractions must lie in \[0, 1\], got \[1.0, 1.5\]$"):
        category_retention(rankings, ANNOTATIONS, keeps=[1.0, 1.5])
    with pytest.raises(PrunelensError, match="no ranking has usable labels"):
        category_retention({"truncation": truncation(("d",))}, ANNOTATIONS)


def test_relative_area_measures_against_the_tokens_outside_the_biggest_category(tmp_path):
    # S S G E, greedy-like: G, then E, then the SymbMath tokens; SymbMath (2 of 4) is the biggest category
    labels = {"s": annotation("s", 4, ["SymbMath", "SymbMath", "Grammar", "EntName"])}
    counts = RetentionCounts.from_rankings({"m": [ranking("s", 4, [2, 3, 1, 0])]}, labels, keeps=[1.0, 0.5, 0.0])
    assert counts.dominant() == "SymbMath" and counts.tokens.tolist() == [[2, 0, 0, 1, 0, 1]]
    raw, relative = counts.chain_areas("raw")[0, 0], counts.chain_areas("relative")[0, 0]
    symb, entname, grammar = (CATEGORIES.index(c) for c in ("SymbMath", "EntName", "Grammar"))
    # raw: SymbMath [1, 1, 0] and Grammar [1, 0, 0] against uniform [1, 0.5, 0]
    assert raw[symb] == pytest.approx(0.25) and raw[grammar] == pytest.approx(-0.25) == raw[entname]
    # relative: Grammar against EntName (outside Grammar and SymbMath), both [1, 0, 0]; SymbMath against the rest
    assert relative[grammar] == pytest.approx(0.0) == relative[entname] and relative[symb] == pytest.approx(0.5)
    # a finer grid separates them: Grammar [1, 0, 0, 0] goes before EntName [1, 1, 0, 0]
    fine = RetentionCounts.from_rankings({"m": [ranking("s", 4, [2, 3, 1, 0])]}, labels, keeps=[1.0, 0.75, 0.5, 0.0])
    relative = fine.chain_areas("relative")[0, 0]
    assert relative[grammar] == pytest.approx(-0.25) and relative[entname] == pytest.approx(0.25)
    assert np.isnan(raw[CATEGORIES.index("CoRef")])
    loaded = RetentionCounts.load(counts.save(tmp_path / "counts.nc"))
    assert (loaded.ids, loaded.methods, loaded.keeps, loaded.skipped) == (["s"], ["m"], [1.0, 0.5, 0.0], {"m": 0})
    assert np.array_equal(loaded.kept, counts.kept, equal_nan=True) and np.array_equal(loaded.tokens, counts.tokens)
    with pytest.raises(PrunelensError, match="unknown retention measure 'odds'"):
        counts.chain_areas("odds")


def test_the_counterweight_of_a_kept_big_category_is_not_read_as_under_retention():
    # 40 chains: 10 SymbMath, 6 Grammar, 4 EntName shuffled; the method removes every non-SymbMath token first, in
    # an order blind to Grammar versus EntName, then SymbMath
    rng = np.random.default_rng(1)
    chains, labels = [], {}
    for i in range(40):
        tags = list(rng.permutation(["SymbMath"] * 10 + ["Grammar"] * 6 + ["EntName"] * 4))
        others = [p for p in rng.permutation(20) if tags[p] != "SymbMath"]
        chains.append(ranking(f"c{i}", 20, [int(p) for p in others] + [p for p in range(20) if tags[p] == "SymbMath"]))
        labels[f"c{i}"] = annotation(f"c{i}", 20, [str(t) for t in tags])
    counts = RetentionCounts.from_rankings({"m": chains}, labels, keeps=GRID)
    raw = {t.category: t for t in area_tests(counts, "raw", resamples=2000)}
    relative = {t.category: t for t in area_tests(counts, "relative", resamples=2000)}
    assert raw["Grammar"].verdict == "under-retained" and raw["EntName"].verdict == "under-retained"
    assert relative["Grammar"].verdict == "not distinguishable from its baseline"
    assert relative["Grammar"].low < 0 < relative["Grammar"].high
    assert relative["SymbMath"].verdict == "over-retained" and relative["SymbMath"].chains == 40
    assert {t.level for t in raw.values()} == {1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05}  # three categories, Holm
    table = area_table(list(raw.values()))
    assert table.splitlines()[2].startswith("| m | +") and "*" in table and "| – |" in table  # no CoRef


def test_holm_adjusts_step_down_and_gives_each_rank_its_level():
    adjusted, levels = holm([0.01, 0.04, 0.03])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06])  # 3 × 0.01; 2 × 0.03; max(0.06, 0.04)
    # 0.01 < 0.05 / 3 is rejected; 0.03 ≥ 0.05 / 2 stops the procedure: it and every later test keep level 0.975
    assert levels == pytest.approx([1 - 0.05 / 3, 0.975, 0.975])
    assert holm([0.001, 0.002])[1] == pytest.approx([1 - 0.05 / 2, 0.95])  # both rejected: the usual step levels
    assert holm([0.5, 0.9])[0] == pytest.approx([1.0, 1.0])


def test_experiment_script_creates_then_reuses_its_runs(tmp_path, tiny_model_dir, monkeypatch):
    module = load_experiment("category_retention", monkeypatch)
    argv = ["--model", str(tiny_model_dir), "--count", "2", "--runs-dir", str(tmp_path / "runs"),
            "--out-dir", str(tmp_path / "out"), "--quiet"]  # fmt: skip
    module.main(argv)
    report = (tmp_path / "out" / "category_retention.md").read_text()
    for row in ("| greedy (joint) |", "| greedy (answer) |", "| h2o |", "| surprisal |", "| uniform |",
                "| truncation |", "| SymbMath |", "greedy (answer), CoRef:", "Wall time"):  # fmt: skip
        assert row in report
    for figure in ("category_retention.png", "category_distribution.png"):
        assert (tmp_path / "out" / figure).read_bytes()[:4] == b"\x89PNG"
    labels = next((tmp_path / "runs").glob("cpu-n2-*")) / "greedy-joint" / "annotations-offline.jsonl"
    first = labels.read_text()
    assert len(first.splitlines()) == 2
    module.main(argv)  # a rerun reuses the runs and the labels
    assert labels.read_text() == first
    again = (tmp_path / "out" / "category_retention.md").read_text()
    assert again.split("Wall time")[0] == report.split("Wall time")[0]


def test_experiment_with_an_llm_reports_agreement_with_the_offline_rules(tmp_path, tiny_model_dir, monkeypatch):
    import json

    from openai_stub import ScriptedServer, isolate_from_openai, numbered_words, ok

    from prunelens.annotate.labels import load_annotations
    from prunelens.annotate.run import token_agreement

    isolate_from_openai(monkeypatch, tmp_path)
    module = load_experiment("category_retention", monkeypatch)

    def everything_is_grammar(body):
        words = numbered_words(body)
        return ok(json.dumps({"labels": [{"i": i, "word": w, "label": "Grammar"} for i, w in enumerate(words)]}))

    with ScriptedServer([everything_is_grammar] * 4) as server:
        module.main(["--model", str(tiny_model_dir), "--count", "2", "--runs-dir", str(tmp_path / "runs"),
                     "--out-dir", str(tmp_path / "out"), "--quiet", "--annotator", "llm", "--llm-model", "stub",
                     "--base-url", server.url])  # fmt: skip
    labelled = next((tmp_path / "runs").glob("cpu-n2-*")) / "greedy-joint"
    llm, offline = (load_annotations(labelled / f"annotations-{name}.jsonl") for name in ("llm", "offline"))
    expected = sum(token_agreement(llm[i].labels, offline[i].labels) for i in llm) / len(llm)
    assert 0 < expected < 1
    report = (tmp_path / "out" / "category_retention.md").read_text()
    assert f"agreement of the offline rules with these labels: {expected:.3f} over 2 chains" in report
