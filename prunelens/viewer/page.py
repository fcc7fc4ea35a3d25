"""The viewer page: rankings folders of the same chains → one self-contained HTML file.

The data goes into the page once, as compact JSON: per chain its text pieces, question and answer; per
method its deletion order (positions, first removed first) and its per-token scores where it has them;
for greedy rankings the base score and the objective after each step, ``[base, step 1, …]`` (a greedy
step's score is also the candidate score, at that step, of the token it removed: the value ``scores.nc``
holds at ``candidate_scores[step, position]``); per annotator one category index per token, as a string
of digits. The page (``template.html``: inline CSS and JS, no requests) renders only the chain shown.
"""

from __future__ import annotations

import html
import json
import math
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from prunelens.annotate.labels import CATEGORIES, Annotation, labels_for, load_annotations
from prunelens.core.errors import PrunelensError
from prunelens.core.jsonl import write_atomic
from prunelens.core.ranking import GreedyRanking, Ranking, load_rankings
from prunelens.core.settings import setting

DATA_MARK = "__PRUNELENS_DATA__"
TITLE_MARK = "__PRUNELENS_TITLE__"


@dataclass
class ViewConfig:
    """`prunelens view`: which rankings folders to compare, and where the page goes."""

    runs: list[Path] = setting(help="rankings folders of the same chains (greedy and any baseline)", argument=True)
    out: Path = setting(Path("view.html"), "the HTML file to write")
    title: str | None = setting(None, "page title (default: the folders' names)")


@dataclass
class Column:
    """One method's rankings by example id, and where they came from (named in errors)."""

    label: str
    source: str
    rankings: dict[str, Ranking]


@dataclass
class Labels:
    """One annotator's annotations by example id, and the file they came from (named in errors)."""

    annotator: str
    source: str
    annotations: dict[str, Annotation]


def column_label(ranking: Ranking) -> str:
    """How a method is named above its chains: greedy with its objective (and approx), else the method."""
    if isinstance(ranking, GreedyRanking):
        return f"greedy · {ranking.objective}" + ("" if ranking.exact else " · approx")
    return ranking.method


def folder_columns(folders: list[Path]) -> tuple[list[Column], list[Labels]]:
    """One column per rankings folder, and the annotations files found beside them."""
    columns, labels = [], []
    for folder in map(Path, folders):
        rankings = load_rankings(folder)
        if not rankings:
            raise PrunelensError(f"{folder}: no finished rankings")
        columns.append(Column(column_label(rankings[0]), str(folder), {r.id: r for r in rankings}))
        for path in sorted(folder.glob("annotations-*.jsonl")) if folder.is_dir() else []:
            labels.append(Labels(path.stem.removeprefix("annotations-"), str(path), load_annotations(path)))
    names = [c.label for c in columns]
    for column in columns:
        if names.count(column.label) > 1:
            column.label = f"{column.label} ({Path(column.source).name})"
    return columns, labels


def _rounded(values, digits: int | None = None, significant: int | None = None) -> list[float | None]:
    """Values for the page: non-finite ones as null, rounded to ``digits`` decimals or ``significant`` digits."""
    out = []
    for value in values:
        if value is None or not math.isfinite(value):
            out.append(None)
        else:
            out.append(round(value, digits) if digits is not None else float(f"{value:.{significant}g}"))
    return out


def _curve(ranking: GreedyRanking) -> list[float | None]:
    """[base score, objective after step 1, …]: step t's score is also the candidate score, at step t, of
    the token it removed (``candidate_scores[t, deletion_order[t]]`` of an exact run's scores.nc)."""
    return _rounded([ranking.base_score, *ranking.step_scores], digits=3)


def _category_digits(ranking: Ranking, labels: Labels) -> str | None:
    """One digit per token (an index into CATEGORIES), None where the chain has no labels."""
    try:
        found = labels_for(ranking, labels.annotations)
    except PrunelensError as error:
        raise PrunelensError(f"{labels.source}: {error}") from None
    if found is None:
        return None
    if len(found) != ranking.n or not set(found) <= set(CATEGORIES):
        raise PrunelensError(f"{labels.source}: record {ranking.id!r}: labels do not match its {ranking.n} tokens "
                             f"and the categories {', '.join(CATEGORIES)}")  # fmt: skip
    return "".join(str(CATEGORIES.index(label)) for label in found)


def _example(example_id: str, columns: list[Column], labels: list[Labels]) -> dict[str, Any]:
    """One chain's entry: pieces once, then each column's order, scores and curve (null where absent)."""
    present = [(c, c.rankings[example_id]) for c in columns if example_id in c.rankings]
    first_column, reference = present[0]
    for column, ranking in present[1:]:
        if ranking.reasoning_ids != reference.reasoning_ids:
            raise PrunelensError(f"{column.source}: record {example_id!r} has other tokens than in "
                                 f"{first_column.source} (models {ranking.model!r} and {reference.model!r}); "
                                 "view rankings of the same chains and tokenizer")  # fmt: skip
    rankings = [c.rankings.get(example_id) for c in columns]
    digits = {}
    for source in labels:  # where several files hold one annotator's labels of a chain, the first counts
        if source.annotator not in digits and example_id in source.annotations:
            found = _category_digits(reference, source)
            if found is not None:
                digits[source.annotator] = found
    return {
        "id": example_id,
        "question": reference.question,
        "answer": reference.answer,
        "pieces": reference.reasoning_tokens,
        "orders": [r.deletion_order if r else None for r in rankings],
        "scores": [_rounded(r.scores, significant=4) if r and r.scores is not None else None for r in rankings],
        "curves": [_curve(r) if isinstance(r, GreedyRanking) else None for r in rankings],
        "labels": digits,
    }


def page_data(columns: list[Column], labels: Sequence[Labels] = (), title: str = "") -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data; a one-line error for columns of other chains."""
    first_ids = set(columns[0].rankings)
    for column in columns[1:]:
        if first_ids.isdisjoint(column.rankings):
            raise PrunelensError(f"{column.source}: no chain in common with {columns[0].source}; "
                                 "view rankings of the same chains")  # fmt: skip
    ids = list(dict.fromkeys(i for column in columns for i in column.rankings))
    methods = []
    for column in columns:
        sample = next(iter(column.rankings.values()))
        meaning = (f"objective ({sample.objective}) after the token's deletion, at its step"
                   if isinstance(sample, GreedyRanking) else sample.score_meaning)  # fmt: skip
        methods.append({"label": column.label, "source": column.source, "meaning": meaning or ""})
    examples = [_example(i, columns, labels) for i in ids]
    used = sorted({name for example in examples for name in example["labels"]})
    return {"title": title, "methods": methods, "categories": list(CATEGORIES), "annotators": used,
            "examples": examples}  # fmt: skip


def render_page(data: dict[str, Any]) -> str:
    """The HTML page for ``page_data``'s data (``<`` escaped so the JSON cannot end its script element)."""
    template = resources.files("prunelens.viewer").joinpath("template.html").read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    return template.replace(TITLE_MARK, html.escape(data["title"] or "prunelens viewer")).replace(DATA_MARK, payload)


def view_folders(config: ViewConfig) -> Path:
    """Write the page comparing ``config.runs`` to ``config.out``; its path."""
    if not config.runs:
        raise PrunelensError("name at least one rankings folder")
    columns, labels = folder_columns(config.runs)
    title = config.title or " vs ".join(Path(c.source).name for c in columns)
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, render_page(page_data(columns, labels, title)))
    return out


def show_rankings(rankings: list[Ranking], out: Path | None = None) -> Path | None:
    """The view of one chain's rankings: displayed in a running IPython kernel (in an iframe, so its
    script and styles stay apart), else written to ``out`` (default: a temporary file) whose path is printed
    and returned."""
    if len({r.id for r in rankings}) != 1:
        raise PrunelensError(f"show compares rankings of one chain; got {', '.join(sorted({r.id for r in rankings}))}")
    columns = [Column(column_label(r), "in memory", {r.id: r}) for r in rankings]
    labels = [c.label for c in columns]
    for index, column in enumerate(columns):
        column.label += f" ({index + 1})" if labels.count(column.label) > 1 else ""
    page = render_page(page_data(columns, title=rankings[0].id))
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if out is None and getattr(shell, "kernel", None) is not None:
        from IPython.display import HTML, display

        display(HTML(f'<iframe srcdoc="{html.escape(page)}" style="width:100%;height:640px;border:0"></iframe>'))
        return None
    if out is None:
        prefix = "prunelens-" + re.sub(r"[^\w.-]+", "_", rankings[0].id) + "-"
        with tempfile.NamedTemporaryFile("w", prefix=prefix, suffix=".html", delete=False) as file:
            out = file.name
    out = Path(out)
    write_atomic(out, page)
    print(out)
    return out
