"""Memory-bounded received attention: each layer's attention computed in row blocks, never as a T × T pattern.

While the backend records, a registered attention function computes every layer's attention itself from
its post-RoPE queries, keys and values, a block of query rows at a time (as AT2 does): per block the
weights (as eager attention computes them: softmax in float32, then the query dtype) give that block's
attention output and the attention each key receives from later rows. Only the columns a block can see
are computed (causal, and the sliding window where there is one). Peak extra memory is one block of
heads × rows × T weights (``BLOCK_ELEMENTS`` by default) instead of heads × T × T, whatever T is.
"""

from __future__ import annotations

from prunelens.core.errors import PrunelensError

IMPLEMENTATION = "prunelens_blockwise"
EAGER_IMPLEMENTATION = "prunelens_blockwise_eager"  # attention-logit soft-capping (Gemma 2): SDPA cannot
SINK_ATTRIBUTE = "_prunelens_received"
BLOCK_ELEMENTS = 2**22  # weights per block (16 MB in float32, ~29 rows of 9 heads at 16K tokens): fastest here


def blockwise_attention_pass(query, key, value, scaling, attention_mask=None, block=None, softcap=None,
                             sliding_window=None):  # fmt: skip
    """(1, Hq, T, d) queries, (1, Hkv, T, d) keys and values → (attention output (1, T, Hq, d) as HF
    attention functions return it, or None without ``value``; received (Hq, T) float64, entry [h, j] =
    Σ_{i>j} A[h, i, j]). ``block`` query rows at a time (default: as many as fit ``BLOCK_ELEMENTS``)."""
    import torch

    _, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads  # GQA: query head h reads key head h // group, as repeat_kv lays them out
    rows_per_block = block or max(1, BLOCK_ELEMENTS // (heads * length))
    grouped = query[0].reshape(kv_heads, group, length, dim)
    keys_t = key[0].transpose(-1, -2)
    buffer = torch.empty(heads * min(rows_per_block, length) * length, dtype=query.dtype, device=query.device)
    received = torch.zeros(heads, length, dtype=torch.float64, device=query.device)
    output = None if value is None else value.new_empty(heads, length, value.shape[-1])
    for start in range(0, length, rows_per_block):
        end = min(start + rows_per_block, length)
        first = max(0, start - sliding_window + 1) if sliding_window else 0  # no row of the block sees before
        rows, columns = end - start, end - first
        scores = buffer[: heads * rows * columns].view(kv_heads, group * rows, columns)
        torch.matmul(grouped[:, :, start:end].reshape(kv_heads, group * rows, dim), keys_t[:, :, first:end], out=scores)
        scores = scores.view(heads, rows, columns).mul_(scaling)
        if softcap:
            scores.div_(softcap).tanh_().mul_(softcap)
        row_index = torch.arange(start, end, device=query.device)[:, None]
        column_index = torch.arange(first, end, device=query.device)[None, :]
        allowed = column_index <= row_index
        if sliding_window:
            allowed &= column_index > row_index - sliding_window
        if attention_mask is not None:
            extra = attention_mask[0, 0, start:end, first:end]
            allowed &= extra if extra.dtype == torch.bool else extra > torch.finfo(extra.dtype).min / 2
        weights = scores.masked_fill_(~allowed, float("-inf")).float()  # in place for float32 queries
        weights.sub_(weights.amax(dim=-1, keepdim=True)).exp_()
        weights = weights.div_(weights.sum(dim=-1, keepdim=True)).to(query.dtype)
        if output is not None:
            flat = weights.view(kv_heads, group * rows, columns)
            output[:, start:end] = (flat @ value[0, :, first:end]).view(heads, rows, -1)
        weights.diagonal(offset=start - first, dim1=1, dim2=2).zero_()  # a row's own position is not "later"
        received[:, first:end] += weights.sum(dim=1).double()
    return (None if output is None else output.transpose(0, 1).unsqueeze(0).contiguous()), received


def blockwise_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """While recording (a list on ``module``): the layer's attention computed blockwise, its received sums
    appended to the list. Otherwise SDPA, or for a soft-capped model its own eager function (SDPA has no
    soft-capping)."""
    import importlib

    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    sink = getattr(module, SINK_ATTRIBUTE, None)
    if sink is not None:
        if kwargs.get("s_aux") is not None:
            raise PrunelensError(f"hf_blockwise backend: {type(module).__name__} uses attention sinks, "
                                 "which the blockwise attention does not model")  # fmt: skip
        if dropout and module.training:
            raise PrunelensError("hf_blockwise backend: attention dropout is on (call model.eval() first)")
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        mask = attention_mask if attention_mask is not None and attention_mask.dim() == 4 else None
        output, received = blockwise_attention_pass(query, key, value, scale, mask, softcap=kwargs.get("softcap"),
                                                    sliding_window=kwargs.get("sliding_window"))  # fmt: skip
        sink.append(received.cpu())
        return output, None
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
