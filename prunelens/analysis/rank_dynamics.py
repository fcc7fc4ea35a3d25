"""Rank dynamics of greedy pruning (paper §5.2): does the ranking greedy computes at one keep fraction
predict its next deletions better than the ranking it computed on the full chain?

For a finished exact pruning run (its rankings and candidate-score store) and a grid of keep fractions
1.0 > ρ₁ > …, each transition ρ → ρ′ has S = the tokens greedy removed in it (``removed_between``).
Hit@|S| of a ranking = the share of S among the |S| tokens the ranking puts first among those still
present at ρ (``compare.hit_at_s``, which does that restriction). The rankings compared:

- ``local``: the candidate scores of the step that starts the transition, step n − n_keep(n, ρ)
  (a higher post-deletion score is removed first; ties to the lower position, as greedy breaks them);
- ``frozen (ρ=1.0)``: the step-0 candidate scores, the same way;
- ``random (expected)``: |S| / n_keep(n, ρ), a random ranking's expected Hit@|S|;
- ``random (one draw)``: one random permutation per example, drawn from ``seed``;
- any other ranking of the same chains (a rankings folder: h2o, surprisal, uniform, truncation, …).

At ρ = 1.0 local and frozen are the same ranking. Transitions that remove no token of a chain (S empty)
leave a NaN for that chain and are left out of its means.

Control: the local ranking's first choice *is* greedy's first deletion of the transition, so local scores at
least 1/|S| by construction. Every Hit@|S| is therefore also computed with that first deletion left out of S
and of every ranking (``hits_without_first``; random expected (|S| − 1) / (present − 1)); a transition that
removes one token then has nothing left to hit (NaN).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

from prunelens.core.bootstrap import bootstrap_interval
from prunelens.core.errors import PrunelensError
from prunelens.pruning.compare import hit_at_s, removed_between
from prunelens.core.keep import n_keep
from prunelens.core.ranked import ascending_order
from prunelens.core.ranking import GreedyRanking, Ranking, keep_grid, load_rankings
from prunelens.pruning.store import open_scores
from prunelens.report import markdown_table
from prunelens.plots import Curve, curves_figure
from prunelens.stores import read_netcdf, write_netcdf

LOCAL = "local"
FROZEN = "frozen (ρ=1.0)"
RANDOM_EXPECTED = "random (expected)"
RANDOM_DRAW = "random (one draw)"
BUILT_IN = (LOCAL, FROZEN, RANDOM_EXPECTED, RANDOM_DRAW)
DEFINITION = ("Hit@|S| per transition rho -> rho': S = tokens greedy pruning removed in it; the share of S among "
              "the |S| tokens a ranking puts first among those present at rho")  # fmt: skip


def score_order(scores: Sequence[float]) -> list[int]:
    """Positions that have a score, highest first (removed first), ties to the lower position."""
    scores = np.asarray(scores, dtype=np.float64)
    return [p for p in ascending_order(-scores) if np.isfinite(scores[p])]


def chain_hits(greedy: GreedyRanking, candidate_scores: np.ndarray, others: Sequence[Ranking], keeps: Sequence[float],
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """One chain's Hit@|S| per transition of ``keeps`` (rows) and ranking (``BUILT_IN``, then ``others``), the
    same with each transition's first deletion left out, |S| and the tokens present at each transition's
    start. ``candidate_scores`` is the run's (step, position) table for this chain; ``rng`` draws the random
    permutation."""
    n, order = greedy.n, greedy.deletion_order
    draw = [int(p) for p in rng.permutation(n)]
    frozen = _scores_at(greedy, candidate_scores, 1.0)
    hits = np.full((2, len(keeps) - 1, len(BUILT_IN) + len(others)), np.nan)
    removed = np.zeros(len(keeps) - 1, dtype=np.int64)
    present = np.zeros(len(keeps) - 1, dtype=np.int64)
    for index, (high, low) in enumerate(pairwise(keeps)):
        removed[index] = len(removed_between(order, n, high, low))
        present[index] = n_keep(n, high)
        if not removed[index]:
            continue
        local = _scores_at(greedy, candidate_scores, high)
        orders = [local, frozen, None, draw, *(other.deletion_order for other in others)]
        for variant, without_first in enumerate((False, True)):
            left_out = int(without_first)
            left = removed[index] - left_out
            expected = left / (present[index] - left_out) if left > 0 else np.nan
            hits[variant, index] = [expected if ranking is None else
                                    hit_at_s(order, ranking, n, high, low, without_first=without_first)
                                    for ranking in orders]  # fmt: skip
    return hits[0], hits[1], removed, present


def _scores_at(greedy: GreedyRanking, candidate_scores: np.ndarray, keep: float) -> list[int]:
    """The score order of the step that starts at ``keep``; every token present there must have a score."""
    step = greedy.n - n_keep(greedy.n, keep)
    kept = greedy.kept_positions(keep)
    row = candidate_scores[step, : greedy.n] if step < len(candidate_scores) else np.full(greedy.n, np.nan)
    if not np.isfinite(row[kept]).all():
        raise PrunelensError(f"record {greedy.id!r}: candidate scores missing at step {step} (keep {keep:g}); "
                             "rank dynamics needs an exact run's full score table")  # fmt: skip
    return score_order(row)


@dataclass
class RankDynamics:
    """Hit@|S| per example × transition × ranking (NaN where S is empty), the same with each transition's first
    deletion left out (``hits_without_first``), |S| and the tokens present at each transition's start (example ×
    transition). Transitions are consecutive pairs of ``keeps``."""

    ids: list[str]
    keeps: list[float]
    rankings: list[str]
    hits: np.ndarray
    hits_without_first: np.ndarray
    removed: np.ndarray
    present: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def transitions(self) -> list[tuple[float, float]]:
        return list(pairwise(self.keeps))

    def values(self, without_first: bool = False) -> np.ndarray:
        """Hit@|S| as defined, or with each transition's first deletion left out."""
        return self.hits_without_first if without_first else self.hits

    def summary(self, seed: int = 0, resamples: int = 2000, without_first: bool = False):
        """Mean Hit@|S| over examples and its 95% percentile bootstrap interval (``bootstrap_interval``: a cell's
        examples resampled with replacement, from ``seed``): three (transition, ranking) arrays. Examples whose S
        is empty are left out of a cell; NaN where no example removed a token."""
        hits = self.values(without_first)
        rng = np.random.default_rng(seed)
        mean, low, high = (np.full(hits.shape[1:], np.nan) for _ in range(3))
        for cell in np.ndindex(*hits.shape[1:]):
            values = hits[(slice(None), *cell)]
            values = values[np.isfinite(values)]
            if len(values):
                mean[cell] = values.mean()
                low[cell], high[cell] = bootstrap_interval((values,), np.mean, resamples=resamples, rng=rng)
        return mean, low, high

    def paired_difference(self, first: str, second: str, seed: int = 0, resamples: int = 2000,
                          without_first: bool = False) -> tuple[np.ndarray, ...]:
        """Mean over examples of Hit@|S|(``first``) − Hit@|S|(``second``) per transition, its 95% paired bootstrap
        interval (the per-example differences resampled) and the number of examples with both values: four
        per-transition arrays (NaN mean where no example has both)."""
        hits = self.values(without_first)
        differences = hits[:, :, self.rankings.index(first)] - hits[:, :, self.rankings.index(second)]
        rng = np.random.default_rng(seed)
        mean, low, high = (np.full(differences.shape[1], np.nan) for _ in range(3))
        counts = np.isfinite(differences).sum(axis=0)
        for index in range(differences.shape[1]):
            values = differences[np.isfinite(differences[:, index]), index]
            if len(values):
                mean[index] = values.mean()
                low[index], high[index] = bootstrap_interval((values,), np.mean, resamples=resamples, rng=rng)
        return mean, low, high, counts

    def table(self, seed: int = 0, without_first: bool = False) -> str:
        """A Markdown table: one row per transition, mean Hit@|S| (95% CI) per ranking."""
        mean, low, high = self.summary(seed, without_first=without_first)
        hits = self.values(without_first)
        rows = []
        for index, (start, end) in enumerate(self.transitions):
            counted = np.isfinite(hits[:, index, 0])
            size = f"{self.removed[counted, index].mean() - without_first:.1f}" if counted.any() else "–"
            cells = [f"{m:.2f} ({lo:.2f}–{hi:.2f})" if np.isfinite(m) else "–"
                     for m, lo, hi in zip(mean[index], low[index], high[index])]  # fmt: skip
            rows.append([f"{start:g} → {end:g}", int(counted.sum()), size, *cells])
        return markdown_table(["ρ → ρ′", "examples", "mean |S|", *self.rankings], rows)

    def figure(self, path: Path, title: str | None = None, seed: int = 0) -> Path:
        """Hit@|S| against the keep fraction where each transition starts, one line per ranking, in two panels:
        as defined, and with each transition's first deletion left out. Local, frozen and the random expectation
        (dashed) with 95% CI bands, the random draw dotted. Saves a PNG."""
        x = [start for start, _ in self.transitions]
        styles = {RANDOM_EXPECTED: "--", RANDOM_DRAW: ":"}
        banded = (LOCAL, FROZEN, RANDOM_EXPECTED)  # more bands would hide each other
        setup = f"{self.meta.get('model', '')}, objective {self.meta.get('objective', '')}, {len(self.ids)} chains"
        panels = {}
        for without_first, variant in ((False, "as defined"), (True, "first deletion left out")):
            mean, low, high = self.summary(seed, without_first=without_first)
            panels[f"Hit@|S| {variant}"] = [
                Curve(name, x, mean[:, j], *((low[:, j], high[:, j]) if name in banded else (None, None)),
                      styles.get(name, "-")) for j, name in enumerate(self.rankings)]  # fmt: skip
        return curves_figure(panels, path, title=f"{title or 'Rank dynamics of greedy pruning'} ({setup}; 95% CI)",
                             xlabel="keep fraction ρ where the transition ρ → ρ′ starts",
                             ylabel="Hit@|S| for greedy's deletions in ρ → ρ′", invert_x=True,
                             ylim=(0.0, 1.05))  # fmt: skip

    def save(self, path: Path) -> Path:
        """Write a netCDF file (dims example, transition, ranking)."""
        import xarray as xr

        starts, ends = zip(*self.transitions)
        data = xr.Dataset(
            {"hit": (("example", "transition", "ranking"), self.hits),
             "hit_without_first": (("example", "transition", "ranking"), self.hits_without_first),
             "removed": (("example", "transition"), self.removed),
             "present": (("example", "transition"), self.present)},
            coords={"example": list(self.ids), "ranking": list(self.rankings), "transition": np.arange(len(starts)),
                    "keep_start": ("transition", list(starts)), "keep_end": ("transition", list(ends))},
            attrs={"meta": json.dumps(self.meta), "definition": DEFINITION},
        )  # fmt: skip
        write_netcdf(Path(path), data)
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> RankDynamics:
        """Read a file ``save`` wrote."""
        data = read_netcdf(path, "rank-dynamics")
        keeps = [*(float(v) for v in data["keep_start"].values), float(data["keep_end"].values[-1])]
        return cls(ids=[str(v) for v in data["example"].values], keeps=keeps,
                   rankings=[str(v) for v in data["ranking"].values], hits=data["hit"].values,
                   hits_without_first=data["hit_without_first"].values, removed=data["removed"].values,
                   present=data["present"].values, meta=json.loads(data.attrs["meta"]))  # fmt: skip


def rank_dynamics(pruning: Path, others: Mapping[str, Path] | None = None, keeps: Sequence[float] | None = None,
                  seed: int = 0, ids: Sequence[str] | None = None) -> RankDynamics:  # fmt: skip
    """Hit@|S| of the local, frozen and random rankings, and of ``others`` ({label: rankings folder}, each
    ranking every chain of the run over the same tokens), for each transition of ``keeps`` (default:
    ``keep_grid`` of the run) of an exact `prunelens prune` run: all its finished chains, or those of ``ids``
    (a run still going is read as far as it got)."""
    greedy = load_rankings(pruning)
    if ids is not None:
        missing = sorted(set(ids) - {r.id for r in greedy})
        if missing:
            raise PrunelensError(f"record {missing[0]!r}: no finished ranking in {pruning}")
        greedy = [r for r in greedy if r.id in set(ids)]
    if not greedy:
        raise PrunelensError(f"{pruning}: no finished rankings")
    for ranking in greedy:
        if not isinstance(ranking, GreedyRanking):
            raise PrunelensError(f"record {ranking.id!r}: a {ranking.method} ranking; rank dynamics reads a "
                                 "`prunelens prune` folder")  # fmt: skip
        if not ranking.exact:
            raise PrunelensError(f"record {ranking.id!r}: approximate pruning ({ranking.approximation}); rank "
                                 "dynamics needs exact pruning's score of every candidate at every step")  # fmt: skip
    keeps = _checked_keeps(greedy, keeps)
    others = dict(others or {})
    clash = [label for label in others if label in BUILT_IN]
    if clash:
        raise PrunelensError(f"ranking label {clash[0]!r} is taken by a built-in ranking; choose another")
    other_rankings = {label: {r.id: r for r in load_rankings(folder)} for label, folder in others.items()}
    rng = np.random.default_rng(seed)
    hits, hits_without_first, removed, present = [], [], [], []
    with open_scores(pruning) as store:
        row_of = {str(example): index for index, example in enumerate(store["example"].values)}
        for ranking in greedy:
            if ranking.id not in row_of:
                raise PrunelensError(f"record {ranking.id!r}: no candidate scores in {pruning}")
            table = store["candidate_scores"][row_of[ranking.id]].values
            chain = chain_hits(ranking, table, [_same_chain(ranking, label, by_id, others[label])
                                                for label, by_id in other_rankings.items()], keeps, rng)  # fmt: skip
            for values, out in zip(chain, (hits, hits_without_first, removed, present)):
                out.append(values)
    first = greedy[0]
    meta = {"pruning": str(pruning), "model": first.model, "objective": first.objective, "seed": seed,
            "others": {label: str(folder) for label, folder in others.items()}}  # fmt: skip
    return RankDynamics([r.id for r in greedy], keeps, [*BUILT_IN, *others], np.stack(hits),
                        np.stack(hits_without_first), np.stack(removed), np.stack(present), meta)  # fmt: skip


def _checked_keeps(greedy: Sequence[GreedyRanking], keeps: Sequence[float] | None) -> list[float]:
    if keeps is None:
        return keep_grid(greedy)
    keeps = [float(k) for k in keeps]
    if len(keeps) < 2 or any(not 0.0 <= k <= 1.0 for k in keeps) or any(a <= b for a, b in pairwise(keeps)):
        raise PrunelensError(f"keep fractions must be at least two, falling, within [0, 1]; got {keeps}")
    for ranking in greedy:
        if not ranking.reaches(keeps[-1]):
            raise PrunelensError(f"record {ranking.id!r}: pruning stopped at keep {ranking.deepest_keep:.3f}, "
                                 f"before {keeps[-1]:g}")  # fmt: skip
    return keeps


def _same_chain(greedy: GreedyRanking, label: str, by_id: dict[str, Ranking], folder: Path) -> Ranking:
    other = by_id.get(greedy.id)
    if other is None:
        raise PrunelensError(f"record {greedy.id!r}: not among the {label} rankings in {folder}")
    if other.reasoning_ids != greedy.reasoning_ids:
        raise PrunelensError(f"record {greedy.id!r}: the {label} ranking is over other tokens than the pruning run "
                             "(reasoning_ids differ)")  # fmt: skip
    return other
