"""Testing a paper's quantitative claims against per-example values, with one stated verdict rule.

A claim is tested on one value per example (a chain): the mean over examples is the estimate, its
bootstrap distribution (examples resampled, seeded) gives a two-sided p-value of a zero mean, and the
p-values of one family (for example all claims on one model) are Holm-corrected together
(``prunelens.core.bootstrap.holm``). Each interval is the percentile interval at its test's Holm level.

Verdict rule (``ClaimTest.verdict``), with α = 0.05 after Holm correction: a claim (the paper says the value is
above 0, or below) **holds** when the corrected test rejects 0 and the estimate has the paper's sign;
**contradicts** when it rejects 0 with the other sign; **inconclusive** otherwise. Each interval is at its test's
Holm level (``prunelens.core.bootstrap.holm``), so it excludes 0 exactly where the verdict is not inconclusive.

A claim tested on fewer than ``MIN_EXAMPLES`` examples gets no verdict and stays out of the Holm family (a
bootstrap over a handful of chains says little); a verdict over fewer examples than the run's target is marked
provisional.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from prunelens.core.bootstrap import ALPHA, holm_bootstrap_tests
from prunelens.report import markdown_table

ABOVE, BELOW = 1, -1
MIN_EXAMPLES = 10
RULE = (f"α = {ALPHA} after Holm correction across all claims of one model. Each claim is a signed per-chain value "
        "that the paper says is above 0 (or below). It **holds** when the corrected two-sided bootstrap test rejects 0 "
        "and the mean has the paper's sign, **contradicts** when it rejects 0 with the other sign, and is "
        "**inconclusive** otherwise. Intervals are at each test's Holm level, so an interval excludes 0 exactly where "
        f"the verdict is not inconclusive. A claim with fewer than {MIN_EXAMPLES} chains gets no verdict and stays out "
        "of the correction; verdicts over fewer chains than the run's target are marked *provisional*.")  # fmt: skip


@dataclass
class ClaimTest:
    """One claim on one model: the paper's statement and figure, the measure tested, its per-example mean over
    ``n`` examples, the Holm-level interval [low, high], raw and Holm-adjusted p-values, and the direction the
    paper states (``ABOVE`` or ``BELOW``)."""

    section: str
    claim: str
    paper: str
    model: str
    measure: str
    direction: int
    n: int
    target: int
    estimate: float
    low: float = float("nan")
    high: float = float("nan")
    p: float = float("nan")
    p_holm: float = float("nan")
    level: float = float("nan")

    @property
    def verdict(self) -> str:
        if self.n < MIN_EXAMPLES:
            return f"no verdict (fewer than {MIN_EXAMPLES} chains)"
        if self.p_holm >= ALPHA:
            found = "inconclusive"
        else:
            found = "holds" if np.sign(self.estimate) == self.direction else "contradicts"
        return found + (" (provisional)" if self.n < self.target else "")


def evaluate_claims(claims: Sequence[tuple[ClaimTest, np.ndarray]], resamples: int = 10000,
                    seed: int = 0) -> list[ClaimTest]:  # fmt: skip
    """Fill in each claim's estimate, p-values and Holm-level interval from its per-example values (NaNs
    dropped); the claims passed together form one Holm family."""
    tested, samples, rngs = [], [], []
    for index, (claim, values) in enumerate(claims):
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        claim.n, claim.estimate = len(values), float(values.mean()) if len(values) else float("nan")
        if len(values) >= MIN_EXAMPLES:
            tested.append(claim)
            samples.append(values)
            rngs.append(np.random.default_rng([seed, index]))
    for claim, test in zip(tested, holm_bootstrap_tests(samples, rngs, resamples)):
        claim.p, claim.p_holm, claim.level, claim.low, claim.high = test.p, test.p_holm, test.level, test.low, test.high
    return [claim for claim, _ in claims]


def claims_table(claims: Sequence[ClaimTest]) -> str:
    """One row per claim: section, claim, the paper's figure, model, measure, N, estimate [interval], Holm p,
    verdict."""
    rows = [[c.section, c.claim, c.paper, c.model, c.measure, c.n,
             f"{c.estimate:+.3f} [{c.low:+.3f}, {c.high:+.3f}]" if np.isfinite(c.low) else f"{c.estimate:+.3f}",
             f"{c.p_holm:.3g}" if np.isfinite(c.p_holm) else "–", c.verdict] for c in claims]  # fmt: skip
    return markdown_table(["§", "claim", "paper", "model", "measure (per chain)", "N", "estimate [Holm-level CI]",
                           "p (Holm)", "verdict"], rows)  # fmt: skip
