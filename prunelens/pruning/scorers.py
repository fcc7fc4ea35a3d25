"""Scorer backends by name: what `--scorer` selects (entries of ``prunelens.core.registry.SCORERS``)."""

from __future__ import annotations

from prunelens.core.registry import SCORERS
from prunelens.models import rounded_copy


def make_scorer(name: str, model, token_budget: int):
    """The registered scorer ``name`` over ``model``, scoring at most ``token_budget`` tokens per forward."""
    return SCORERS.load(name)(model, token_budget=token_budget)


def make_screener(name: str, model, token_budget: int, approximation):
    """Rounded screening's screener: the scorer ``name`` over a copy of ``model`` in ``approximation.rounded``
    (see ``prunelens.pruning.greedy.Approximation``); None when the approximation does not screen that way."""
    if approximation.rounded is None:
        return None
    return make_scorer(name, rounded_copy(model, approximation.rounded), token_budget)
