"""Bootstrap confidence intervals: scipy's percentile bootstrap, with the samples too small for it."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import bootstrap

CONFIDENCE = 0.95


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
