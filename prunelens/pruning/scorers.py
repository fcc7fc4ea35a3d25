"""Scorer backends by name: what `--scorer` selects (entries of ``prunelens.core.registry.SCORERS``)."""

from __future__ import annotations

from prunelens.core.registry import SCORERS
from prunelens.models import rounded_copy


def make_scorer(name: str, model, token_budget: int, options=None, tokenizer=None):
    """The registered scorer ``name`` over ``model``, scoring at most ``token_budget`` tokens per forward; a scorer
    registered with options (the ``server`` scorer) also gets ``options`` and the model's ``tokenizer``."""
    if SCORERS.options_type(name) is None:
        return SCORERS.load(name)(model, token_budget=token_budget)
    return SCORERS.load(name)(model, token_budget=token_budget, options=options, tokenizer=tokenizer)


def scorer_needs_weights(name: str) -> bool:
    """False for scorers that load no model here (the ``server`` scorer asks a server)."""
    return getattr(SCORERS.load(name), "needs_weights", True)


def make_screener(name: str, model, token_budget: int, approximation):
    """Rounded screening's screener: the scorer ``name`` over a copy of ``model`` in ``approximation.rounded``
    (see ``prunelens.pruning.greedy.Approximation``); None when the approximation does not screen that way."""
    if approximation.rounded is None:
        return None
    return make_scorer(name, rounded_copy(model, approximation.rounded), token_budget)
