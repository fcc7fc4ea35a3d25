"""Memory-bounded received attention: recomputed from each layer's queries and keys in row blocks.

The model runs with SDPA (no T × T pattern is ever materialised by the model); a registered
attention function also receives every layer's post-RoPE queries and keys and sums the attention
each key gets from later rows, ``block`` query rows at a time (as AT2 does). Peak extra memory is
heads × block × T per layer, instead of heads × T × T.
"""

from __future__ import annotations

IMPLEMENTATION = "prunelens_blockwise"
EAGER_IMPLEMENTATION = "prunelens_blockwise_eager"  # attention-logit soft-capping (Gemma 2): SDPA cannot
SINK_ATTRIBUTE = "_prunelens_received"


def received_from_queries_keys(query, key, scaling, attention_mask=None, block=256, softcap=None, sliding_window=None):
    """(1, Hq, T, d) queries and (1, Hkv, T, d) keys → (Hq, T): Σ_{i>j} softmax(q_i·k / √d)[j], computed
    as eager attention computes it (softmax in float32, then the query dtype)."""
    import torch

    heads, length = query.shape[1], query.shape[2]
    keys = key[0].repeat_interleave(heads // key.shape[1], dim=0)  # GQA: one copy per query head
    columns = torch.arange(length, device=query.device)
    received = torch.zeros(heads, length, dtype=torch.float64, device=query.device)
    for start in range(0, length, block):
        rows = torch.arange(start, min(start + block, length), device=query.device)
        scores = (query[0, :, rows] @ keys.transpose(-1, -2)) * scaling  # heads × b × T
        if softcap:
            scores = torch.tanh(scores / softcap) * softcap
        allowed = columns[None, :] <= rows[:, None]
        if sliding_window:
            allowed &= columns[None, :] > rows[:, None] - sliding_window
        if attention_mask is not None:
            extra = attention_mask[0, 0, rows][..., :length]
            allowed &= extra if extra.dtype == torch.bool else extra > torch.finfo(extra.dtype).min / 2
        scores = scores.masked_fill(~allowed, float("-inf"))
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
        below = columns[None, :] < rows[:, None]  # only later rows count
        received += (weights * below).sum(dim=1).double()
    return received


def blockwise_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """SDPA attention that also records the received-attention sums on ``module`` when asked to. A
    soft-capped model's attention runs through its own eager function instead (SDPA has no soft-capping),
    so its forward materialises each layer's pattern as ``hf`` does."""
    import importlib

    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    sink = getattr(module, SINK_ATTRIBUTE, None)
    if sink is not None:
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        mask = attention_mask if attention_mask is not None and attention_mask.dim() == 4 else None
        sink.append(received_from_queries_keys(query, key, scale, mask, softcap=kwargs.get("softcap"),
                                               sliding_window=kwargs.get("sliding_window")).cpu())  # fmt: skip
    if kwargs.get("softcap") is not None:
        eager = importlib.import_module(type(module).__module__).eager_attention_forward
        output, _ = eager(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
        return output, None
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)


def register(eager: bool = False) -> str:
    """Make the implementations known to transformers (idempotent) and return the name of the SDPA one,
    or with ``eager`` (soft-capped models) the one whose masks are eager's additive masks."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

    AttentionInterface.register(IMPLEMENTATION, blockwise_attention)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)
    AttentionInterface.register(EAGER_IMPLEMENTATION, blockwise_attention)
    AttentionMaskInterface.register(EAGER_IMPLEMENTATION, eager_mask)
    return EAGER_IMPLEMENTATION if eager else IMPLEMENTATION
