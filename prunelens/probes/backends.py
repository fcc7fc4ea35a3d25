"""Hook backends: each returns, for one token sequence, the attention every position *receives*.

The one interface: ``received_attention(input_ids) -> ndarray (layers, heads, T)`` whose entry
[l, h, j] is Σ_{i > j} A[l, h, i, j], the attention position j gets from all later positions, per
query head (GQA models report every query head). Each backend reduces a layer's T × T pattern to
this T-vector inside its hook, so no more than one layer's pattern is alive at a time.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from prunelens.core.errors import PrunelensError
from prunelens.core.registry import BACKENDS
from prunelens.probes.blockwise import SINK_ATTRIBUTE, register
from prunelens.probes.nnsight_trace import trace_received_attention


class AttentionBackend(Protocol):
    name: str

    @classmethod
    def from_loaded(cls, loaded) -> "AttentionBackend": ...

    def received_attention(self, input_ids: list[int]) -> np.ndarray: ...


def column_sums_below_diagonal(pattern):
    """(..., T, T) attention pattern → (..., T): for each key j, the sum over query rows i > j."""
    return pattern.tril(-1).sum(dim=-2)


def attention_path(model) -> tuple[str, str, str]:
    """(base model attribute, layer-list attribute, attention attribute), by the HF layout conventions:
    model.layers[i].self_attn (Llama, Qwen2, Mistral, …), transformer.h[i].attn (GPT-2) or
    gpt_neox.layers[i].attention (GPT-NeoX)."""
    base = model.base_model
    for layers_name in ("layers", "h"):
        layers = getattr(base, layers_name, None)
        if layers is None:
            continue
        for attention_name in ("self_attn", "attn", "attention"):
            if all(hasattr(layer, attention_name) for layer in layers):
                return model.base_model_prefix, layers_name, attention_name
    raise PrunelensError(f"model type {model.config.model_type!r}: cannot find its attention modules")


def attention_modules(model) -> list:
    """The attention module of every decoder layer."""
    _, layers_name, attention_name = attention_path(model)
    return [getattr(layer, attention_name) for layer in getattr(model.base_model, layers_name)]


class HFEagerBackend:
    """Plain HF reference: eager attention; a forward hook on each attention module reduces its
    weights at once and drops them from the module's output."""

    name = "hf"

    def __init__(self, model):
        self.model = model
        model.set_attn_implementation("eager")

    @classmethod
    def from_loaded(cls, loaded):
        return cls(loaded.model)

    def received_attention(self, input_ids):
        import torch

        sums = []

        def reduce_and_drop(_module, _args, output):
            weights = output[1]
            sums.append(column_sums_below_diagonal(weights[0].double()).cpu())
            return (output[0], None) + tuple(output[2:])

        handles = [m.register_forward_hook(reduce_and_drop) for m in attention_modules(self.model)]
        try:
            with torch.inference_mode():
                self.model.base_model(input_ids=torch.tensor([input_ids], device=self.model.device), use_cache=False)
        finally:
            for handle in handles:
                handle.remove()
        return torch.stack(sums).numpy()


class HFBlockwiseBackend:
    """Plain HF, memory-bounded: each layer's attention computed in row blocks that also give the
    received sums (see prunelens.probes.blockwise); no KV cache is kept, so extra memory stays about one
    layer's activations plus one block of weights at any length."""

    name = "hf_blockwise"

    def __init__(self, model):
        self.model = model
        model.set_attn_implementation(register(eager=bool(getattr(model.config, "attn_logit_softcapping", None))))

    @classmethod
    def from_loaded(cls, loaded):
        return cls(loaded.model)

    def received_attention(self, input_ids):
        import torch

        sums: list = []
        modules = attention_modules(self.model)
        for module in modules:
            setattr(module, SINK_ATTRIBUTE, sums)
        try:
            with torch.inference_mode():
                ids = torch.tensor([input_ids], device=self.model.device)
                self.model.base_model(input_ids=ids, use_cache=False)
        finally:
            for module in modules:
                delattr(module, SINK_ATTRIBUTE)
        return torch.stack(sums).numpy()


class TransformerLensBackend:
    """TransformerLens TransformerBridge over the preloaded HF model; a hook on
    ``blocks.{l}.attn.hook_pattern`` reduces each pattern as it passes."""

    name = "transformer_lens"

    def __init__(self, model, tokenizer, name: str):
        from transformer_lens.model_bridge import TransformerBridge

        if not getattr(model.config, "architectures", None):  # a model built from a config, not loaded
            model.config.architectures = [type(model).__name__]
        try:
            self.bridge = TransformerBridge.boot_transformers(name, hf_model=model, tokenizer=tokenizer)
        except ValueError as error:
            raise PrunelensError(f"transformer_lens backend: model type {model.config.model_type!r} "
                                 f"({type(model).__name__}) is not supported by TransformerBridge") from error  # fmt: skip
        self.layers = model.config.num_hidden_layers
        if "blocks.0.attn.hook_pattern" not in self.bridge.hook_dict:  # e.g. a state-space model
            raise PrunelensError(f"transformer_lens backend: model type {model.config.model_type!r} "
                                 "has no attention pattern hook (blocks.0.attn.hook_pattern)")  # fmt: skip

    @classmethod
    def from_loaded(cls, loaded):
        return cls(loaded.model, loaded.tokenizer, loaded.name)

    def received_attention(self, input_ids):
        import torch

        sums = [None] * self.layers

        def hook_for(layer):
            def reduce(pattern, hook):
                sums[layer] = column_sums_below_diagonal(pattern[0].double()).cpu()
                return pattern

            return reduce

        hooks = [(f"blocks.{layer}.attn.hook_pattern", hook_for(layer)) for layer in range(self.layers)]
        with torch.inference_mode():
            self.bridge.run_with_hooks(torch.tensor([input_ids]), fwd_hooks=hooks, return_type=None)
        return torch.stack(sums).numpy()


class NNsightBackend:
    """nnsight LanguageModel over the same HF model (eager attention); the trace reduces each
    layer's attention weights (``self_attn.output[1]``) inside the graph and saves only the sums."""

    name = "nnsight"

    def __init__(self, model, tokenizer):
        from nnsight import LanguageModel

        model.set_attn_implementation("eager")
        self.lm = LanguageModel(model, tokenizer=tokenizer)
        self.path = attention_path(model)
        self.layers = len(attention_modules(model))

    @classmethod
    def from_loaded(cls, loaded):
        return cls(loaded.model, loaded.tokenizer)

    def received_attention(self, input_ids):
        import torch

        with torch.inference_mode():
            sums = trace_received_attention(self.lm, input_ids, self.path, self.layers)
        return torch.stack([s.double().cpu() for s in sums]).numpy()


def make_backend(name: str, loaded) -> AttentionBackend:
    """The registered backend ``name`` (``prunelens.core.registry.BACKENDS``) over a LoadedModel."""
    return BACKENDS.load(name).from_loaded(loaded)
