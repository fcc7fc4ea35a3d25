"""Scorer backends by name: what `--scorer` selects (entries of ``prunelens.registry.SCORERS``)."""

from __future__ import annotations

from prunelens.registry import SCORERS


def make_scorer(name: str, model, token_budget: int):
    """The registered scorer ``name`` over ``model``, scoring at most ``token_budget`` tokens per forward."""
    return SCORERS.load(name)(model, token_budget=token_budget)
