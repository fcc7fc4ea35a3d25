"""Scorer backends by name: what `--scorer` selects."""

from __future__ import annotations

from prunelens.errors import PrunelensError

SCORER_NAMES = ("fast", "naive", "vllm")


def make_scorer(name: str, model, token_budget: int):
    """``fast``: exact prefix-cache scorer; ``naive``: exact full forwards; ``vllm``: full forwards in vLLM."""
    if name == "fast":
        from prunelens.pruning.prefix_scorer import PrefixCacheScorer

        return PrefixCacheScorer(model, token_budget=token_budget)
    if name == "naive":
        from prunelens.pruning.scorer import HFScorer

        return HFScorer(model, token_budget=token_budget)
    if name == "vllm":
        from prunelens.pruning.vllm_scorer import VLLMScorer

        return VLLMScorer(model)
    raise PrunelensError(f"unknown scorer {name!r} (known: {', '.join(SCORER_NAMES)})")
