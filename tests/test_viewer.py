"""`prunelens view`: the page's data from rankings folders, its errors, `Ranking.show`, and the page itself
driven in Debian's chromium-headless-shell through Playwright (skipped where that browser is missing)."""

import html
import io
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_experiment, write_chains
from typer.testing import CliRunner

from prunelens.annotate.labels import (
    CATEGORIES,
    Annotation,
    annotations_path,
    tokens_digest,
)
from prunelens.core.errors import PrunelensError
from prunelens.core.keep import n_keep
from prunelens.pruning.store import open_scores
from prunelens.core.ranking import load_rankings
from prunelens.viewer.browser import CHROMIUM, headless_chromium
from prunelens.viewer.page import (
    Column,
    Labels,
    ViewConfig,
    folder_columns,
    page_data,
    render_page,
    view_folders,
)

CHAINS = [
    {"id": "c1", "question": "Tom has 3 apples and buys 2. How many?", "answer": "5",
     "reasoning": "Tom starts with 3 apples.\nHe buys 2 more, so 3 + 2 = 5 apples in total."},
    {"id": "c2", "question": "What is 4 times 6?", "answer": "24",
     "reasoning": "4 * 6 = 24, so the product of the two numbers is 24."},
    {"id": "c3", "question": "Half of 10? </script><b>not bold</b>", "answer": "5",
     "reasoning": "Half means dividing by 2.\n10 / 2 = 5"},
]  # fmt: skip
LABELLED = ("c1", "c2")  # c3's annotation failed


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    """Greedy (exact, to keep 0.5), truncation and uniform rankings of CHAINS on the tiny model, and a copy
    of the greedy folder with two hand-written annotations files ("second" labels c1 only)."""
    from prunelens.pruning.run import PruneConfig, run_pruning
    from prunelens.rankers.run import RankConfig, run_rank

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("viewer")
    common = dict(model=str(tiny_model_dir), chains=write_chains(root / "chains.jsonl", CHAINS), limit=None)
    run_pruning(PruneConfig(**common, keep=0.5, out=root / "greedy"), progress=False)
    for method in ("truncation", "uniform"):
        run_rank(RankConfig(**common, method=method, out=root / method), progress=False)
    shutil.copytree(root / "greedy", root / "labelled")
    records = []
    for ranking in load_rankings(root / "greedy"):
        common = dict(id=ranking.id, annotator="hand", model=ranking.model,
                      digest=tokens_digest(ranking.model, ranking.reasoning_ids))  # fmt: skip
        if ranking.id in LABELLED:
            records.append(Annotation(**common, labels=[CATEGORIES[(3 * p) % 6] for p in range(ranking.n)]))
        else:
            records.append(Annotation(**common, status="failed", reason="no reply"))
    annotations_path(root / "labelled", "hand").write_text("".join(json.dumps(a.to_dict()) + "\n" for a in records))
    second = Annotation(**{**records[0].to_dict(), "annotator": "second", "labels": [CATEGORIES[p % 6] for p in
                                                                                     range(len(records[0].labels))]})
    annotations_path(root / "labelled", "second").write_text(json.dumps(second.to_dict()) + "\n")
    return root


@pytest.fixture(scope="module")
def rankings(runs):
    return {method: {r.id: r for r in load_rankings(runs / method)} for method in ("greedy", "truncation", "uniform")}


@pytest.fixture(scope="module")
def plain_page(runs):
    folders = [runs / m for m in ("greedy", "truncation", "uniform")]
    return view_folders(ViewConfig(runs=folders, out=runs / "plain.html"))


@pytest.fixture(scope="module")
def labelled_page(runs):
    return view_folders(ViewConfig(runs=[runs / "labelled", runs / "uniform"], out=runs / "labelled.html"))


def test_page_data_holds_orders_curves_and_labels(runs, rankings):
    columns, labels = folder_columns([runs / "labelled", runs / "truncation", runs / "uniform"])
    data = page_data(columns, labels, "t")
    assert [m["label"] for m in data["methods"]] == ["greedy · joint", "truncation", "uniform"]
    assert data["annotators"] == ["hand", "second"] and data["categories"] == list(CATEGORIES)
    assert [e["id"] for e in data["examples"]] == ["c1", "c2", "c3"]
    with open_scores(runs / "greedy") as store:
        candidates = store["candidate_scores"]
        for example in data["examples"]:
            greedy, truncation, uniform = (rankings[m][example["id"]] for m in ("greedy", "truncation", "uniform"))
            assert example["pieces"] == greedy.reasoning_tokens and "".join(example["pieces"]) == greedy.reasoning
            assert example["orders"] == [greedy.deletion_order, truncation.deletion_order, uniform.deletion_order]
            curve = example["curves"][0]
            assert example["curves"][1:] == [None, None] and example["scores"] == [None, None, None]
            assert curve[0] == round(greedy.base_score, 3) and len(curve) == len(greedy.deletion_order) + 1
            table = candidates.sel(example=example["id"]).values
            for step, position in enumerate(greedy.deletion_order):  # a step's score is its token's candidate score
                assert curve[step + 1] == round(float(table[step, position]), 3)
            if example["id"] in LABELLED:
                assert [CATEGORIES[int(d)] for d in example["labels"]["hand"]] == [CATEGORIES[(3 * p) % 6]
                                                                                  for p in range(greedy.n)]  # fmt: skip
            else:
                assert example["labels"] == {}
            assert ("second" in example["labels"]) == (example["id"] == "c1")


def test_baseline_scores_and_repeated_methods_are_labelled(runs, tmp_path):
    shutil.copytree(runs / "uniform", tmp_path / "uniform-again")
    columns, _ = folder_columns([runs / "uniform", tmp_path / "uniform-again"])
    assert [c.label for c in columns] == ["uniform (uniform)", "uniform (uniform-again)"]
    surprisal = next(iter(columns[0].rankings.values()))
    surprisal.method, surprisal.scores, surprisal.score_meaning = "surprisal", [1 / 3] * surprisal.n, "nats"
    data = page_data([Column("surprisal", "x", {surprisal.id: surprisal})])
    assert data["examples"][0]["scores"] == [[0.3333] * surprisal.n] and data["methods"][0]["meaning"] == "nats"


def test_bad_folders_are_one_line_errors(runs, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrunelensError, match=r"empty: no rankings \(rankings.jsonl\) in this folder$"):
        folder_columns([runs / "greedy", tmp_path / "empty"])
    other = tmp_path / "other-tokens"
    other.mkdir()
    records = [json.loads(line) for line in (runs / "uniform" / "rankings.jsonl").read_text().splitlines()]
    records[1]["reasoning_ids"][0] += 1
    (other / "rankings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(PrunelensError, match=rf"^{other}: record 'c2' has other tokens than in {runs / 'greedy'} "):
        view_folders(ViewConfig(runs=[runs / "greedy", other], out=tmp_path / "x.html"))
    disjoint = tmp_path / "disjoint"
    disjoint.mkdir()
    (disjoint / "rankings.jsonl").write_text(json.dumps({**records[0], "id": "zz"}) + "\n")
    with pytest.raises(PrunelensError, match=rf"^{disjoint}: no chain in common with {runs / 'greedy'}; "):
        view_folders(ViewConfig(runs=[runs / "greedy", disjoint], out=tmp_path / "x.html"))
    stale = tmp_path / "stale"
    shutil.copytree(runs / "labelled", stale)
    labels = annotations_path(stale, "hand")
    records = [json.loads(line) for line in labels.read_text().splitlines()]
    records[0]["digest"] = "0" * 16
    labels.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(PrunelensError, match=rf"^{labels}: record 'c1': its annotation was made for other tokens"):
        view_folders(ViewConfig(runs=[stale], out=tmp_path / "x.html"))
    assert not (tmp_path / "x.html").exists()


def test_cli_writes_one_self_contained_page(runs, tmp_path):
    from prunelens.cli import app

    out = tmp_path / "sub" / "page.html"
    result = CliRunner().invoke(app, ["view", str(runs / "greedy"), str(runs / "uniform"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{out} (") and out.exists()
    page = out.read_text()
    assert "<title>greedy vs uniform</title>" in page and "src=" not in page and "http" not in page.lower()
    assert page.count("</script>") == 2  # the page's two; the data's "<" are escaped
    failed = CliRunner().invoke(app, ["view", str(runs / "greedy"), str(tmp_path / "nope")])
    assert failed.exit_code == 2 and failed.output.strip().splitlines() == [
        f"error: {tmp_path / 'nope'}: no such rankings folder or file"]  # fmt: skip


def test_show_writes_a_file_or_displays_in_a_kernel(rankings, tmp_path, monkeypatch, capsys):
    greedy, uniform = rankings["greedy"]["c2"], rankings["uniform"]["c2"]
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    path = greedy.show(uniform, out=tmp_path / "c2.html")
    assert path == tmp_path / "c2.html" and capsys.readouterr().out == f"{path}\n"
    assert '"label":"greedy · joint"' in path.read_text() and '"label":"uniform"' in path.read_text()
    temporary = greedy.show()
    assert temporary.name.startswith("prunelens-c2-") and temporary.suffix == ".html" and temporary.read_text()
    assert capsys.readouterr().out == f"{temporary}\n"
    temporary.unlink()
    shown = []
    display = types.ModuleType("IPython.display")
    display.HTML, display.display = (lambda text: ("HTML", text)), shown.append
    ipython = types.ModuleType("IPython")
    ipython.get_ipython, ipython.display = (lambda: types.SimpleNamespace(kernel=object())), display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    assert greedy.show() is None and capsys.readouterr().out == ""
    [(kind, text)] = shown
    assert kind == "HTML" and text.startswith('<iframe srcdoc="')
    assert html.unescape(text.split('"')[1]) == render_page(page_data([Column("greedy · joint", "in memory",
                                                                              {"c2": greedy})], title="c2"))  # fmt: skip
    with pytest.raises(PrunelensError, match="^show compares rankings of one chain; got c1, c2$"):
        greedy.show(rankings["uniform"]["c1"])


# The page in a browser.


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (`make browser` installs Debian's chromium-headless-shell)")
    with headless_chromium() as launched:
        yield launched


@pytest.fixture
def open_page(browser):
    """Open a page from disk; it records console messages, page errors and requests in ``page.seen``."""
    opened = []

    def open_(path: Path):
        page = browser.new_page(viewport={"width": 1300, "height": 800})
        page.seen = {"console": [], "errors": [], "requests": []}
        page.on("console", lambda message: page.seen["console"].append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: page.seen["errors"].append(str(error)))
        page.on("request", lambda request: page.seen["requests"].append(request.url))
        page.goto(path.resolve().as_uri())
        opened.append(page)
        return page

    yield open_
    for page in opened:
        page.close()


def unstruck(page, column: int) -> list[int]:
    return page.eval_on_selector_all(f'.col[data-m="{column}"] .chain span:not(.x)', "s => s.map(e => +e.dataset.p)")


def show(page, example_id: str):
    page.click(f"#list li:has-text('{example_id}')")
    assert page.text_content("#example-id") == example_id


@pytest.mark.slow
def test_page_opens_without_errors_or_requests(open_page, labelled_page):
    page = open_page(labelled_page)
    page.check("#categories")
    page.hover(".chain span")
    page.fill("#keep", "0.7")
    assert page.seen == {"console": [], "errors": [], "requests": [labelled_page.resolve().as_uri()]}


@pytest.mark.slow
def test_slider_at_half_keeps_round_half_up_tokens_per_method(open_page, plain_page, rankings):
    page = open_page(plain_page)
    for example_id in ("c1", "c2", "c3"):
        show(page, example_id)
        page.fill("#keep", "1")
        n = rankings["greedy"][example_id].n
        assert all(unstruck(page, m) == list(range(n)) for m in range(3))
        page.fill("#keep", "0.5")
        for m, method in enumerate(("greedy", "truncation", "uniform")):
            kept = rankings[method][example_id].kept_positions(0.5)
            assert unstruck(page, m) == kept and len(kept) == n_keep(n, 0.5)
            assert page.text_content(f'.col[data-m="{m}"] .kept') == f"{len(kept)} / {n} kept"
    assert any(r.n % 2 for r in rankings["greedy"].values())  # an odd length exercises the half-up rounding


@pytest.mark.slow
def test_switching_examples_and_search_update_the_text(open_page, plain_page, rankings):
    page = open_page(plain_page)
    for example_id in ("c2", "c1"):
        show(page, example_id)
        chains = page.eval_on_selector_all(".chain", "cs => cs.map(c => c.textContent)")
        assert chains == [rankings["greedy"][example_id].reasoning] * 3
    page.click("#next")
    assert page.text_content("#example-id") == "c2"
    page.fill("#search", "half of")
    assert page.eval_on_selector_all("#list li", "ls => ls.length") == 1
    page.press("#search", "Enter")
    assert page.text_content("#example-id") == "c3"
    assert page.text_content("#question") == CHAINS[2]["question"]  # shown as text, not markup
    assert page.text_content("#match-count") == "1 of 3 chains"


@pytest.mark.slow
def test_category_colours_only_where_annotations_exist(open_page, plain_page, labelled_page, rankings):
    backgrounds = "s => s.map(e => getComputedStyle(e).backgroundColor)"
    page = open_page(plain_page)
    assert page.is_hidden("#categories-toggle") and page.is_hidden("#legend")
    assert set(page.eval_on_selector_all(".chain span", backgrounds)) == {"rgba(0, 0, 0, 0)"}
    page = open_page(labelled_page)
    show(page, "c1")
    page.fill("#keep", "1")
    assert set(page.eval_on_selector_all(".chain span", backgrounds)) == {"rgba(0, 0, 0, 0)"}  # off until toggled
    page.check("#categories")
    legend = page.eval_on_selector_all("#legend span", backgrounds)
    assert page.eval_on_selector_all("#legend span", "s => s.map(e => e.textContent)") == list(CATEGORIES)
    assert len(set(legend)) == len(CATEGORIES)
    expected = [legend[(3 * p) % 6] for p in range(rankings["greedy"]["c1"].n)]
    assert page.eval_on_selector_all('.col[data-m="0"] .chain span', backgrounds) == expected
    assert page.eval_on_selector_all('.col[data-m="1"] .chain span', backgrounds) == expected  # labels join by tokens
    page.select_option("#annotator", "second")
    assert page.eval_on_selector_all('.col[data-m="0"] .chain span', backgrounds) == [
        legend[p % 6] for p in range(rankings["greedy"]["c1"].n)]  # fmt: skip
    show(page, "c2")  # not labelled by "second"
    assert page.is_disabled("#categories")
    page.select_option("#annotator", "hand")
    show(page, "c3")  # its annotation failed
    assert page.is_disabled("#categories")
    assert set(page.eval_on_selector_all(".chain span", backgrounds)) == {"rgba(0, 0, 0, 0)"}
    show(page, "c1")
    page.uncheck("#categories")
    assert set(page.eval_on_selector_all(".chain span", backgrounds)) == {"rgba(0, 0, 0, 0)"}


@pytest.mark.slow
def test_arrow_keys_move_the_slider_one_token(open_page, plain_page, rankings):
    page = open_page(plain_page)
    show(page, "c1")
    n = rankings["greedy"]["c1"].n
    deepest = n_keep(n, 0.5)  # greedy stopped at keep 0.5
    page.fill("#keep", "1")
    page.click("h2")
    page.keyboard.press("ArrowLeft")
    assert len(unstruck(page, 1)) == n  # already at 1.0
    page.keyboard.press("ArrowRight")
    assert len(unstruck(page, 1)) == n - 1 and float(page.input_value("#keep")) == pytest.approx((n - 1) / n)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowRight")
    assert len(unstruck(page, 1)) == n - 2
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    assert [len(unstruck(page, m)) for m in range(3)] == [deepest] * 3  # not past the deepest common keep
    page.focus("#keep")
    page.keyboard.press("ArrowLeft")
    assert len(unstruck(page, 1)) == deepest + 1


@pytest.mark.slow
def test_hover_shows_step_score_and_category(open_page, labelled_page, rankings):
    page = open_page(labelled_page)
    show(page, "c1")
    page.fill("#keep", "0.5")
    greedy = rankings["greedy"]["c1"]
    step = 2
    position = greedy.deletion_order[step]
    page.hover(f'.col[data-m="0"] .chain span[data-p="{position}"]')
    tip = page.text_content("#tip")
    score = greedy.step_scores[step]
    shown = f"{score:.1f}" if abs(score) >= 100 else f"{score:.4g}"
    assert f"position {position} · removed at {n_keep(greedy.n, 0.5)}/{greedy.n}" in tip
    assert f"removed at step {step + 1} (of {len(greedy.deletion_order)} recorded)" in tip
    assert f"candidate score at that step: {shown}" in tip and "objective (joint)" in tip
    assert f"category: {CATEGORIES[(3 * position) % 6]}" in tip
    kept = greedy.kept_positions(0.5)[0]
    page.hover(f'.col[data-m="0"] .chain span[data-p="{kept}"]')
    assert "not removed by this ranking's recorded steps" in page.text_content("#tip")


@pytest.mark.slow
def test_screenshot_is_not_blank(open_page, labelled_page, tmp_path):
    from PIL import Image

    page = open_page(labelled_page)
    page.fill("#keep", "0.5")
    page.check("#categories")
    path = tmp_path / "view.png"
    page.screenshot(path=path)
    pixels = np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB"), dtype=float)
    assert pixels.shape == (800, 1300, 3) and pixels.std() > 5  # a blank page: 0
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100  # text, colours and lines, not one flat fill


@pytest.mark.slow
def test_thousand_chains_of_300_tokens_stay_usable(open_page, tmp_path):
    scale = load_experiment("viewer_scale")
    found, annotations = scale.synthetic_rankings(1000, 300)
    columns = [Column(method, method, {r.id: r for r in records}) for method, records in found.items()]
    path = tmp_path / "large.html"
    path.write_text(render_page(page_data(columns, [Labels("synthetic", "x", {a.id: a for a in annotations})])))
    assert path.stat().st_size < 10e6
    page = open_page(path)
    assert page.text_content("#match-count") == "1000 of 1000 chains"
    page.fill("#keep", "0.5")
    assert [len(unstruck(page, m)) for m in range(3)] == [150] * 3
    page.fill("#search", "synthetic-999")
    page.press("#search", "Enter")
    assert page.text_content("#example-id") == "synthetic-999"
    assert unstruck(page, 2) == found["uniform"][999].kept_positions(0.5)
    page.check("#categories")
    assert page.seen["errors"] == [] and page.seen["console"] == []


@pytest.mark.slow
def test_scale_experiment_writes_its_table(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (`make browser` installs Debian's chromium-headless-shell)")
    script = Path(__file__).resolve().parents[1] / "experiments" / "viewer_scale.py"
    args = ["--chains", "3", "--tokens", "12", "--runs-dir", str(tmp_path / "runs"), "--out-dir", str(tmp_path)]
    result = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "viewer_scale.md").read_text()
    assert "| chains | tokens | page MB |" in report and "\n| 3 | 12 | " in report
    assert (tmp_path / "runs" / "c3-t12" / "greedy" / "annotations-synthetic.jsonl").exists()
