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

Everything is computed from ``RetentionCounts``, the per-example data (tokens of each category per chain, and
how many of them each method keeps at each keep), which saves to and loads from a small netCDF file.

Conservation: token-weighted, each chain's deviations from uniform deletion sum to zero at every keep (the
kept tokens are round(ρ·n) whatever the method), so one over-retained category that holds many tokens forces
the others below the diagonal. ``area_tests`` therefore reports, beside the raw area, a **relative area**:
category c against the retention of its chain's other tokens outside the most frequent category (for that
category itself: against all its chain's other tokens), i.e. c against the rest with the big category's over- or
under-retention taken out. Both come with Holm-corrected bootstrap tests across categories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prunelens.annotate.labels import CATEGORIES, Annotation, labels_for
from prunelens.core.bootstrap import ALPHA, bootstrap_interval, holm_bootstrap_tests
from prunelens.core.errors import PrunelensError
from prunelens.core.keep import n_keep
from prunelens.core.ranking import Ranking, keep_grid
from prunelens.report import markdown_table
from prunelens.plots import Curve, bars_figure, curves_figure
from prunelens.stores import read_netcdf, write_netcdf

GRID_STEP = 0.05
MEASURES = {
    "raw": "area of (retention of c - uniform deletion's round(rho*n)/n)",
    "relative": "area of (retention of c - retention of the chain's tokens outside c and outside the most frequent "
                "category)",
}  # fmt: skip
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
        rows = []
        for result in self.methods.values():
            cells = [_area_cell(result.curves.get(c)) for c in CATEGORIES]
            rows.append([result.method, *cells, result.chains, result.skipped])
        return markdown_table(["method", *CATEGORIES, "chains", "skipped (no labels)"], rows)

    def distribution_table(self) -> str:
        """Each category's share of the unpruned chains' tokens."""
        shares = self.distribution
        rows = [[c, round(shares[c] * self.tokens), f"{100 * shares[c]:.1f}%", self.having[c]] for c in CATEGORIES]
        return markdown_table(["category", "tokens", "share", "chains with it"], rows)

    def figure(self, path: Path, title: str = "Category retention under pruning") -> Path:
        """One panel per method, one curve per category (95% bands), the uniform-deletion diagonal."""
        panels = {name: [Curve(c.category, c.keeps, c.retention, c.low, c.high) for c in result.curves.values()]
                  for name, result in self.methods.items()}  # fmt: skip
        return curves_figure(panels, path, title=title, xlabel="keep fraction ρ", ylabel="share of category kept",
                             diagonal=True, invert_x=True, ylim=(0.0, 1.02), columns=3)  # fmt: skip

    def distribution_figure(self, path: Path, label: str, title: str = "Categories of unpruned chains") -> Path:
        """A bar per category: its share of the unpruned chains' tokens (``label`` names the chains)."""
        return bars_figure({label: self.distribution}, path, title=title, xlabel="category", ylabel="share of tokens")


def _area_cell(curve: CategoryCurve | None) -> str:
    if curve is None:
        return "–"
    return f"{curve.area:+.3f} [{curve.area_low:+.3f}, {curve.area_high:+.3f}]"


@dataclass
class RetentionCounts:
    """The per-example data of a retention analysis: ``tokens`` of each category per chain (example ×
    category), ``kept`` tokens of each category at each keep per method (method × example × category × keep;
    NaN where the method has no labelled ranking of that chain), and how many rankings each method had
    without usable labels (``skipped``). Categories are ``CATEGORIES``, keeps descending."""

    ids: list[str]
    methods: list[str]
    keeps: list[float]
    tokens: np.ndarray
    kept: np.ndarray
    skipped: dict[str, int]
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_rankings(cls, rankings: Mapping[str, Sequence[Ranking]], annotations: Mapping[str, Annotation],
                      keeps: Sequence[float] | None = None, meta: dict | None = None) -> RetentionCounts:  # fmt: skip
        """Count ``rankings`` ({method: rankings}) against the labels in ``annotations`` (by example id) on
        ``keeps`` (default: 1.0, 0.95, … down to the deepest keep every labelled ranking reaches). Labels for
        other tokens, of another length or with an unknown category, and a ranking that stops above a
        requested keep, raise a one-line PrunelensError."""
        if keeps is not None and not all(0.0 <= k <= 1.0 for k in keeps):
            raise PrunelensError(f"keep fractions must lie in [0, 1], got {list(keeps)}")
        labelled = {method: _labelled(method, group, annotations) for method, group in rankings.items()}
        every = [ranking for pairs, _ in labelled.values() for ranking, _ in pairs]
        if not every:
            raise PrunelensError("no ranking has usable labels: annotate the chains of these rankings first")
        keeps = list(keep_grid(every, GRID_STEP) if keeps is None else sorted(keeps, reverse=True))
        ids = list(dict.fromkeys(ranking.id for ranking in every))
        row = {example: index for index, example in enumerate(ids)}
        tokens = np.zeros((len(ids), len(CATEGORIES)), dtype=np.int64)
        kept = np.full((len(rankings), len(ids), len(CATEGORIES), len(keeps)), np.nan)
        for m, (method, (pairs, _)) in enumerate(labelled.items()):
            for ranking, labels in pairs:
                shallow = next((k for k in keeps if not ranking.reaches(k)), None)
                if shallow is not None:
                    raise PrunelensError(f"record {ranking.id!r} ({method}): the ranking stops at keep "
                                         f"{ranking.deepest_keep:.3f}, above {shallow:g}")  # fmt: skip
                category_of = np.array([CATEGORIES.index(label) for label in labels])
                tokens[row[ranking.id]] = np.bincount(category_of, minlength=len(CATEGORIES))
                for k, keep in enumerate(keeps):
                    still = category_of[sorted(ranking.kept_positions(keep))]
                    kept[m, row[ranking.id], :, k] = np.bincount(still, minlength=len(CATEGORIES))
        skipped = {method: skipped for method, (_, skipped) in labelled.items()}
        return cls(ids, list(rankings), keeps, tokens, kept, skipped, dict(meta or {}))

    @property
    def sizes(self) -> np.ndarray:
        """Tokens per chain."""
        return self.tokens.sum(axis=1)

    def retention(self) -> np.ndarray:
        """Share of each category kept (method × example × category × keep); NaN where the chain lacks the
        category or the method has no ranking of it."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.tokens[None, :, :, None] > 0, self.kept / self.tokens[None, :, :, None], np.nan)

    def uniform(self) -> np.ndarray:
        """Uniform deletion's expected share kept, round(ρ·n)/n (example × keep)."""
        return np.array([[n_keep(int(n), keep) / n for keep in self.keeps] for n in self.sizes])

    def dominant(self) -> str:
        """The category with the most tokens over all chains."""
        return CATEGORIES[int(np.argmax(self.tokens.sum(axis=0)))]

    def relative_baseline(self) -> np.ndarray:
        """Per method, chain, category c and keep: the retention of the chain's tokens outside c and outside the
        dominant category (for the dominant category: outside itself). NaN where no such token exists."""
        dominant = CATEGORIES.index(self.dominant())
        kept_total, tokens_total = self.kept.sum(axis=2), self.tokens.sum(axis=1)
        baseline = np.full(self.kept.shape, np.nan)
        for c in range(len(CATEGORIES)):
            outside = sorted({c, dominant})
            tokens_out = tokens_total - self.tokens[:, outside].sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                share = (kept_total - self.kept[:, :, outside].sum(axis=2)) / tokens_out[None, :, None]
            baseline[:, :, c] = np.where(tokens_out[None, :, None] > 0, share, np.nan)
        return baseline

    def chain_areas(self, measure: str = "raw") -> np.ndarray:
        """The signed area of each chain (method × example × category) under ``measure`` (``MEASURES``);
        NaN where the chain lacks the category or the baseline has no token."""
        if measure not in MEASURES:
            raise PrunelensError(f"unknown retention measure {measure!r}; choose from {', '.join(MEASURES)}")
        baseline = self.uniform()[None, :, None, :] if measure == "raw" else self.relative_baseline()
        return _area(self.retention() - baseline, self.keeps)

    def save(self, path: Path) -> Path:
        """Write a netCDF file (dims method, example, category, keep)."""
        import json

        import xarray as xr

        data = xr.Dataset(
            {"tokens": (("example", "category"), self.tokens),
             "kept": (("method", "example", "category", "keep"), self.kept),
             "skipped": (("method",), [self.skipped[m] for m in self.methods])},
            coords={"method": self.methods, "example": self.ids, "category": list(CATEGORIES), "keep": self.keeps},
            attrs={"meta": json.dumps(self.meta), "definition": DEFINITION},
        )  # fmt: skip
        write_netcdf(Path(path), data)
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> RetentionCounts:
        """Read a file ``save`` wrote."""
        import json

        data = read_netcdf(path, "retention-counts")
        methods = [str(m) for m in data["method"].values]
        return cls([str(v) for v in data["example"].values], methods, [float(k) for k in data["keep"].values],
                   data["tokens"].values, data["kept"].values,
                   dict(zip(methods, (int(v) for v in data["skipped"].values))),
                   json.loads(data.attrs["meta"]))  # fmt: skip


def category_retention(rankings: Mapping[str, Sequence[Ranking]], annotations: Mapping[str, Annotation],
                       keeps: Sequence[float] | None = None, n_boot: int = 1000,
                       seed: int = 0) -> Retention:  # fmt: skip
    """Retention curves and areas of every method in ``rankings`` ({method: rankings}) from the labels in
    ``annotations`` (by example id): ``curves`` of ``RetentionCounts.from_rankings``."""
    if n_boot < 1:
        raise PrunelensError(f"n_boot must be at least 1, got {n_boot}")
    return curves(RetentionCounts.from_rankings(rankings, annotations, keeps), n_boot, seed)


def curves(counts: RetentionCounts, n_boot: int = 1000, seed: int = 0) -> Retention:
    """Every method's retention curves (bootstrap 95% bands over chains, seeded per category) and the
    category distribution of the chains, from per-example counts."""
    retention, uniform = counts.retention(), counts.uniform()
    methods = {}
    for m, method in enumerate(counts.methods):
        ranked = np.isfinite(counts.kept[m, :, 0, 0])
        found = {}
        for c, category in enumerate(CATEGORIES):
            chains = ranked & (counts.tokens[:, c] > 0)
            if chains.any():
                found[category] = _curve(category, retention[m, chains, c], uniform[chains], counts.keeps, n_boot, seed)
        methods[method] = MethodRetention(method, found, int(ranked.sum()), counts.skipped[method])
    total = int(counts.tokens.sum())
    distribution = {c: counts.tokens[:, i].sum() / total if total else 0.0 for i, c in enumerate(CATEGORIES)}
    having = {c: int((counts.tokens[:, i] > 0).sum()) for i, c in enumerate(CATEGORIES)}
    return Retention(counts.keeps, methods, distribution, having, total, len(counts.ids))


@dataclass
class AreaTest:
    """One method's area for one category under one measure: mean over the ``chains`` chains that have it,
    the bootstrap p-value of area = 0 (two-sided), its Holm adjustment across the method's categories, and the
    percentile interval at the Holm level of its rank (``level``). The verdict follows the adjusted p-value."""

    method: str
    category: str
    measure: str
    chains: int
    area: float
    low: float
    high: float
    p: float
    p_holm: float
    level: float

    @property
    def verdict(self) -> str:
        if self.p_holm >= ALPHA:
            return "not distinguishable from its baseline"
        return "over-retained" if self.area > 0 else "under-retained"


def area_tests(counts: RetentionCounts, measure: str = "raw", min_chains: int = 5, resamples: int = 4000,
               seed: int = 0) -> list[AreaTest]:  # fmt: skip
    """For every method, the categories that at least ``min_chains`` chains have: mean area under ``measure``,
    bootstrap p-values (chains resampled, seeded) Holm-corrected across those categories, and intervals at
    each test's Holm level."""
    areas = counts.chain_areas(measure)
    tests = []
    for m, method in enumerate(counts.methods):
        found = {c: areas[m, :, c][np.isfinite(areas[m, :, c])] for c in range(len(CATEGORIES))}
        found = {c: values for c, values in found.items() if len(values) >= min_chains}
        rngs = [np.random.default_rng([seed, m, c]) for c in found]
        for (c, values), test in zip(found.items(), holm_bootstrap_tests(list(found.values()), rngs, resamples)):
            tests.append(AreaTest(method, CATEGORIES[c], measure, len(values), test.mean, test.low, test.high, test.p,
                                  test.p_holm, test.level))  # fmt: skip
    return tests


def area_table(tests: Sequence[AreaTest]) -> str:
    """Methods (rows) by categories (columns): area [Holm-level interval], * where the Holm test rejects 0."""
    cells: dict[str, dict[str, str]] = {}
    for test in tests:
        mark = "*" if test.p_holm < ALPHA else ""
        cells.setdefault(test.method, {})[test.category] = f"{test.area:+.3f}{mark} [{test.low:+.3f}, {test.high:+.3f}]"
    rows = [[method, *(row.get(c, "–") for c in CATEGORIES)] for method, row in cells.items()]
    return markdown_table(["method", *CATEGORIES], rows)


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


def _curve(category: str, kept: np.ndarray, uniform: np.ndarray, keeps: list[float], n_boot: int,
           seed: int) -> CategoryCurve:  # fmt: skip
    """Mean retention of one category over its chains (rows of ``kept``, with their ``uniform`` expectation),
    the bootstrap interval of the curve and of its area."""

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
                         area, float(area_low), float(area_high), len(kept))  # fmt: skip


def _area(difference: np.ndarray, keeps: list[float]) -> np.ndarray:
    """Trapezoid integral over the keep grid (last axis, keeps descending), taken with keep increasing."""
    rising = difference[..., ::-1]
    return ((rising[..., 1:] + rising[..., :-1]) / 2 * np.diff(keeps[::-1])).sum(axis=-1)
