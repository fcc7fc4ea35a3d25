"""The nnsight trace, kept in its own file: nnsight reads the source of the code inside a trace."""

from __future__ import annotations


def trace_received_attention(lm, input_ids, path, n_layers):
    """Per layer, Σ over later query rows of the attention each position receives (heads × T).
    ``path`` = (base attribute, layer-list attribute, attention attribute) of the wrapped model."""
    import torch

    base_name, layers_name, attention_name = path
    layers = getattr(getattr(lm, base_name), layers_name)
    saved = []
    with lm.trace(torch.tensor([input_ids])):
        for layer in range(n_layers):
            weights = getattr(layers[layer], attention_name).output[1]
            saved.append(weights[0].tril(-1).sum(dim=-2).save())
    return [s.value if hasattr(s, "value") else s for s in saved]
