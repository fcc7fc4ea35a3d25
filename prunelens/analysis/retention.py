"""Retention of functional categories under pruning (paper §5.1, Figures 3 and 8).

For rankings of some chains (one list per method) and category labels of the same chains (any annotator's
``annotations-*.jsonl``, joined through ``labels.labels_for``):

- retention of category c at keep fraction ρ, for one chain that has c: the share of its c tokens still
  kept at ρ (``Ranking.kept_positions``); a method's curve averages it over the chains that have c, with a
  bootstrap 95% interval over those chains (seeded);
- uniform deletion keeps every token with probability |S|/n = round(ρ·n)/n: the diagonal, up to the
  rounding of |S|. ``uniform`` is that expectation averaged over the same chains, and the **area** of a
  category is the trapezoid integral over the keep grid of (retention − uniform): positive when the method
  keeps the category longer than uniform deletion would (over-retained), negative when it removes it early;
- the category distribution of the unpruned chains: each category's share of all their tokens (Figure 8).

Rankings without usable labels (not annotated, or annotation failed) are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prunelens.annotate.labels import CATEGORIES, Annotation, labels_for
from prunelens.core.bootstrap import bootstrap_interval
from prunelens.core.errors import PrunelensError
from prunelens.core.keep import n_keep
from prunelens.core.ranking import Ranking, keep_grid

GRID_STEP = 0.05
DEFINITION = ("retention of a category at keep fraction rho = the share of its tokens still kept at rho, "
              "averaged over the chains that have it; area = integral over the keep grid of (retention - uniform "
              "deletion's round(rho*n)/n), positive = over-retained")  # fmt: skip


@dataclass
class CategoryCurve:
    """One method's retention of one category on the keep grid: mean over ``chains`` chains that have the
    category, its bootstrap 95% interval [low, high], uniform deletion's expectation, and the signed area."""

    category: str
    keeps: list[float]
    retention: list[float]
    low: list[float]
    high: list[float]
    uniform: list[float]
    area: float
    area_low: float
    area_high: float
    chains: int


@dataclass
class MethodRetention:
    """One method's curves (categories present in its labelled chains, in priority order), how many
    chains had labels, and how many were skipped for lack of them."""

    method: str
    curves: dict[str, CategoryCurve]
    chains: int
    skipped: int


@dataclass
class Retention:
    """Retention curves per method on one keep grid, the token share of each category in the unpruned
    chains (``tokens`` tokens of ``chains`` distinct chains) and how many of those chains have it."""

    keeps: list[float]
    methods: dict[str, MethodRetention]
    distribution: dict[str, float]
    having: dict[str, int]
    tokens: int
    chains: int

    def table(self) -> str:
        """Areas per method (rows) and category (columns), with bootstrap 95% intervals."""
        from prunelens.report import markdown_table

        rows = []
        for result in self.methods.values():
            cells = [_area_cell(result.curves.get(c)) for c in CATEGORIES]
            rows.append([result.method, *cells, result.chains, result.skipped])
        return markdown_table(["method", *CATEGORIES, "chains", "skipped (no labels)"], rows)

    def distribution_table(self) -> str:
        """Each category's share of the unpruned chains' tokens."""
        from prunelens.report import markdown_table

        shares = self.distribution
        rows = [[c, round(shares[c] * self.tokens), f"{100 * shares[c]:.1f}%", self.having[c]] for c in CATEGORIES]
        return markdown_table(["category", "tokens", "share", "chains with it"], rows)

    def figure(self, path: Path, title: str = "Category retention under pruning") -> Path:
        """One panel per method, one curve per category (95% bands), the uniform-deletion diagonal."""
        from prunelens.plots import Curve, curves_figure

        panels = {name: [Curve(c.category, c.keeps, c.retention, c.low, c.high) for c in result.curves.values()]
                  for name, result in self.methods.items()}  # fmt: skip
        return curves_figure(panels, path, title=title, xlabel="keep fraction ρ", ylabel="share of category kept",
                             diagonal=True, invert_x=True, ylim=(0.0, 1.02), columns=3)  # fmt: skip

    def distribution_figure(self, path: Path, label: str, title: str = "Categories of unpruned chains") -> Path:
        """A bar per category: its share of the unpruned chains' tokens (``label`` names the chains)."""
        from prunelens.plots import bars_figure

        return bars_figure({label: self.distribution}, path, title=title, xlabel="category", ylabel="share of tokens")


def _area_cell(curve: CategoryCurve | None) -> str:
    if curve is None:
        return "–"
    return f"{curve.area:+.3f} [{curve.area_low:+.3f}, {curve.area_high:+.3f}]"


def category_retention(rankings: Mapping[str, Sequence[Ranking]], annotations: Mapping[str, Annotation],
                       keeps: Sequence[float] | None = None, n_boot: int = 1000,
                       seed: int = 0) -> Retention:  # fmt: skip
    """Retention curves and areas of every method in ``rankings`` ({method: rankings}) from the labels in
    ``annotations`` (by example id), on ``keeps`` (default: 1.0, 0.95, … down to the deepest keep every
    labelled ranking reaches). A label list for other tokens, of another length or with an unknown
    category raises a one-line PrunelensError, as does a ranking that stops above a requested keep."""
    if keeps is not None and not all(0.0 <= k <= 1.0 for k in keeps):
        raise PrunelensError(f"keep fractions must lie in [0, 1], got {list(keeps)}")
    if n_boot < 1:
        raise PrunelensError(f"n_boot must be at least 1, got {n_boot}")
    labelled = {method: _labelled(method, group, annotations) for method, group in rankings.items()}
    every = [ranking for pairs, _ in labelled.values() for ranking, _ in pairs]
    if not every:
        raise PrunelensError("no ranking has usable labels: annotate the chains of these rankings first")
    keeps = list(keep_grid(every, GRID_STEP) if keeps is None else sorted(keeps, reverse=True))
    methods = {}
    for method, (pairs, skipped) in labelled.items():
        for ranking, _ in pairs:
            shallow = next((k for k in keeps if not ranking.reaches(k)), None)
            if shallow is not None:
                raise PrunelensError(f"record {ranking.id!r} ({method}): the ranking stops at keep "
                                     f"{ranking.deepest_keep:.3f}, above {shallow:g}")  # fmt: skip
        curves = {}
        for category in CATEGORIES:
            chains = [(r, labels) for r, labels in pairs if category in labels]
            if chains:
                curves[category] = _curve(category, chains, keeps, n_boot, seed)
        methods[method] = MethodRetention(method, curves, len(pairs), skipped)
    distinct = {ranking.id: labels for pairs, _ in labelled.values() for ranking, labels in pairs}
    counts = {c: sum(labels.count(c) for labels in distinct.values()) for c in CATEGORIES}
    total = sum(counts.values())
    distribution = {c: counts[c] / total if total else 0.0 for c in CATEGORIES}
    having = {c: sum(c in labels for labels in distinct.values()) for c in CATEGORIES}
    return Retention(keeps, methods, distribution, having, total, len(distinct))


def _labelled(method: str, rankings: Sequence[Ranking], annotations: Mapping[str, Annotation]):
    """(ranking, labels) for the rankings with usable labels, and how many had none."""
    pairs, skipped = [], 0
    for ranking in rankings:
        labels = labels_for(ranking, annotations)
        if labels is None:
            skipped += 1
            continue
        if len(labels) != ranking.n:
            raise PrunelensError(f"record {ranking.id!r} ({method}): {len(labels)} labels for {ranking.n} tokens")
        unknown = sorted(set(labels) - set(CATEGORIES))
        if unknown:
            raise PrunelensError(f"record {ranking.id!r} ({method}): unknown category label(s) {', '.join(unknown)}")
        pairs.append((ranking, labels))
    return pairs, skipped


def _curve(category: str, chains, keeps: list[float], n_boot: int, seed: int) -> CategoryCurve:
    """Per-chain retention and uniform expectation of one category, their means, bootstrap interval and area."""
    kept = np.zeros((len(chains), len(keeps)))
    uniform = np.zeros_like(kept)
    for row, (ranking, labels) in enumerate(chains):
        members = {p for p, label in enumerate(labels) if label == category}
        for column, keep in enumerate(keeps):
            kept[row, column] = len(members.intersection(ranking.kept_positions(keep))) / len(members)
            uniform[row, column] = n_keep(ranking.n, keep) / ranking.n

    def retention_and_area(chains_kept, chains_uniform, axis):  # one row per keep, then the area
        retention = chains_kept.mean(axis=axis)
        area = _area(np.moveaxis(retention - chains_uniform.mean(axis=axis), 0, -1), keeps)
        return np.concatenate([retention, area[np.newaxis]])

    rng = np.random.default_rng([seed, CATEGORIES.index(category)])
    lows, highs = bootstrap_interval((kept, uniform), retention_and_area, resamples=n_boot, rng=rng,
                                     paired=True)  # a resample draws chains, each with its uniform expectation
    (low, area_low), (high, area_high) = (lows[:-1], lows[-1]), (highs[:-1], highs[-1])
    mean_kept, mean_uniform = kept.mean(axis=0), uniform.mean(axis=0)
    area = float(_area(mean_kept - mean_uniform, keeps))
    return CategoryCurve(category, list(keeps), mean_kept.tolist(), low.tolist(), high.tolist(), mean_uniform.tolist(),
                         area, float(area_low), float(area_high), len(chains))  # fmt: skip


def _area(difference: np.ndarray, keeps: list[float]) -> np.ndarray:
    """Trapezoid integral over the keep grid (last axis, keeps descending), taken with keep increasing."""
    rising = difference[..., ::-1]
    return ((rising[..., 1:] + rising[..., :-1]) / 2 * np.diff(keeps[::-1])).sum(axis=-1)
