"""Bootstrap confidence intervals (scipy's percentile bootstrap, with the samples too small for it), bootstrap tests of
a zero mean, and Holm's correction for a family of them."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap

CONFIDENCE = 0.95
ALPHA = 0.05


def bootstrap_interval(samples: Sequence[np.ndarray], statistic: Callable, *, resamples: int, rng: np.random.Generator,
                       paired: bool = False) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The 95% percentile bootstrap interval (low, high) of ``statistic(*samples, axis=-1)``, the observations
    along each sample's first axis (``scipy.stats.bootstrap``: ``resamples`` resamples drawn from ``rng``;
    ``paired`` draws the same observations from every sample). With fewer than two observations, which scipy
    refuses, every resample is the data itself: the interval is the statistic's value (NaN for a mean of none)."""
    samples = [np.asarray(sample, dtype=np.float64) for sample in samples]
    if len(samples[0]) < 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the mean of no observations
            value = np.asarray(statistic(*(np.moveaxis(s, 0, -1) for s in samples), axis=-1))
        return value, value
    interval = bootstrap(samples, statistic, n_resamples=resamples, confidence_level=CONFIDENCE, method="percentile",
                         paired=paired, axis=0, rng=rng).confidence_interval  # fmt: skip
    return interval.low, interval.high


def bootstrap_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """The means of ``resamples`` resamples of ``values`` drawn with replacement: the bootstrap distribution
    a test reads its p-value and its intervals at any level from."""
    values = np.asarray(values, dtype=np.float64)
    return values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)


def bootstrap_p_value(draws: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a zero mean: twice the smaller share of resampled means on either side
    of 0 (at least one resample's worth, at most 1)."""
    below, above = np.mean(draws <= 0), np.mean(draws >= 0)
    return float(min(1.0, max(2 * min(below, above), 1 / len(draws))))


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> tuple[list[float], list[float]]:
    """Holm's step-down adjustment: adjusted p-values (monotone, at most 1) and the confidence level of each test's
    interval: 1 − alpha / (m − rank) (rank counted from 0 in ascending p) while the procedure rejects, then the
    level of the first step that does not reject for that test and every later one, so that an interval excludes 0
    only where Holm rejects."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted, levels = [0.0] * m, [0.0] * m
    running, stopped = 0.0, None
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        if stopped is None and p_values[index] >= alpha / (m - rank):
            stopped = 1 - alpha / (m - rank)
        adjusted[index], levels[index] = running, stopped if stopped is not None else 1 - alpha / (m - rank)
    return adjusted, levels


@dataclass
class HolmTest:
    """One test of a Holm family: the sample's mean, its two-sided bootstrap p-value, the Holm-adjusted one, and the
    percentile interval [low, high] at the test's Holm ``level``."""

    mean: float
    p: float
    p_holm: float
    level: float
    low: float
    high: float


def holm_bootstrap_tests(samples: Sequence[np.ndarray], rngs: Sequence[np.random.Generator], resamples: int,
                         alpha: float = ALPHA) -> list[HolmTest]:  # fmt: skip
    """Bootstrap tests of a zero mean for ``samples`` (each resampled ``resamples`` times from its own generator in
    ``rngs``), Holm-corrected as one family (``holm``), each with its interval at its Holm level."""
    draws = [bootstrap_means(sample, resamples, rng) for sample, rng in zip(samples, rngs)]
    p_values = [bootstrap_p_value(draw) for draw in draws]
    adjusted, levels = holm(p_values, alpha)
    tests = []
    for sample, draw, p, p_holm, level in zip(samples, draws, p_values, adjusted, levels):
        low, high = np.quantile(draw, [(1 - level) / 2, (1 + level) / 2])
        tests.append(HolmTest(float(np.mean(sample)), p, p_holm, level, float(low), float(high)))
    return tests
