"""Issue 12: a tested matrix of model architectures.

For every family in ``conftest.FAMILIES`` (tiny random 2-layer configs): the fast scorer equals the naive
scorer (scores and greedy orders, both objectives), and each hook backend's received attention equals an
``output_attentions`` reference, or the component refuses the family with a one-line PrunelensError.
The ``check_*`` helpers are shared with ``experiments/support_table.py``, which writes the support table.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FAMILIES, load_experiment, markdown_tables, tiny_model

from prunelens.core.errors import PrunelensError
from prunelens.pruning.greedy import greedy_prune
from prunelens.pruning.prefix_scorer import PrefixCacheScorer, sliding_window
from prunelens.pruning.scorer import HFScorer

TOLERANCE = 1e-4
VOCAB = 96
BACKENDS = ("hf", "hf_blockwise", "transformer_lens", "nnsight")


def random_chain(seed: int = 12, lengths=(4, 8, 3)):
    """prompt, reasoning, answer ids."""
    rng = np.random.default_rng(seed)
    return tuple(rng.integers(3, VOCAB, k).tolist() for k in lengths)


def check_scorers(kind: str, objective: str, attention: str = "eager", **config) -> dict:
    """Greedy prune a short random chain with the naive and the fast scorer (a small budget: several
    packed batches) under ``attention`` (eager, or sdpa as ``load_model`` loads); returns both results'
    orders and the largest score difference."""
    model = tiny_model(kind, seed=11, **config)
    model.set_attn_implementation(attention)  # raises for sdpa on a model without it (Gemma 2)
    prompt, reasoning, answer = random_chain()
    naive = greedy_prune(HFScorer(model), prompt, reasoning, answer, objective, keep=0.0)
    fast = greedy_prune(PrefixCacheScorer(model, token_budget=12), prompt, reasoning, answer, objective, keep=0.0)
    differences = np.abs(np.nan_to_num(fast.candidate_scores - naive.candidate_scores))
    return {"naive_order": naive.deletion_order, "fast_order": fast.deletion_order,
            "max_difference": max(float(differences.max()), abs(fast.base_score - naive.base_score))}  # fmt: skip


def check_naive(kind: str, **config) -> float:
    """|naive joint score − Σ log-softmax of the model's own logits (soft-capping and all)|, both objectives."""
    model = tiny_model(kind, seed=11, **config)
    prompt, reasoning, answer = random_chain()
    ids = prompt + reasoning + answer
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    picked = logprobs[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    joint, answer_only = picked[len(prompt) - 1 :].sum().item(), picked[len(ids) - 1 - len(answer) :].sum().item()
    scorer = HFScorer(model)
    return max(abs(scorer.score(prompt, [reasoning], answer, "joint")[0] - joint),
               abs(scorer.score(prompt, [reasoning], answer, "answer")[0] - answer_only))  # fmt: skip


def reference_received(model, ids):
    """Naive: every layer's full pattern from output_attentions (eager), summed over rows below the diagonal."""
    model.set_attn_implementation("eager")
    with torch.no_grad():
        attentions = model(torch.tensor([ids]), output_attentions=True).attentions
    return np.stack([pattern[0].double().tril(-1).sum(dim=-2).numpy() for pattern in attentions])


def word_tokenizer(vocab: int = VOCAB):
    """A self-contained word-level tokenizer over ``vocab`` ids (the wrappers want one; no hub access)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {f"w{i}": i for i in range(vocab)}
    inner = Tokenizer(models.WordLevel(words, unk_token="w0"))
    inner.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=inner, name_or_path="tiny-words", add_bos_token=True, unk_token="w0", pad_token="w0", bos_token="w1", eos_token="w2")


def build_backend(name: str, model, tokenizer, kind: str):
    from prunelens.probes.backends import (
        HFBlockwiseBackend,
        HFEagerBackend,
        NNsightBackend,
        TransformerLensBackend,
    )

    if name == "hf":
        return HFEagerBackend(model)
    if name == "hf_blockwise":
        return HFBlockwiseBackend(model)
    if name == "transformer_lens":
        return TransformerLensBackend(model, tokenizer, f"tiny-{kind}")
    return NNsightBackend(model, tokenizer)


def check_backend(kind: str, backend: str, length: int = 24, **config) -> float:
    """The largest difference between ``backend``'s received attention and the reference (raises the
    backend's PrunelensError if it refuses the family)."""
    model = tiny_model(kind, seed=2, dtype="float32", **config)
    ids = random_chain(seed=3, lengths=(length,))[0]
    try:  # the reference first: a TransformerLens bridge rewires the model it wraps
        reference = reference_received(model, ids)
    except AttributeError:  # no attention outputs (a state-space model): the backend must refuse below
        reference = None
    received = build_backend(backend, model, word_tokenizer(), kind).received_attention(ids)
    assert reference is not None, f"{backend} accepted a model without attention outputs"
    assert received.shape == reference.shape == (2, 4, length)  # every query head (GQA included)
    return float(np.abs(received - reference).max())


# -- the fast scorer ---------------------------------------------------------------------------------
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("objective", ["joint", "answer"])
@pytest.mark.parametrize("kind", FAMILIES)
def test_fast_scorer_equals_naive(kind, objective, attention):
    if kind == "gemma2" and attention == "sdpa":
        pytest.skip("transformers has no SDPA path for Gemma 2 (soft-capped attention logits)")
    result = check_scorers(kind, objective, attention)
    assert result["fast_order"] == result["naive_order"]
    assert len(result["fast_order"]) == 8
    assert result["max_difference"] < TOLERANCE


@pytest.mark.parametrize("kind", FAMILIES)
def test_naive_scorer_equals_the_models_logits(kind):
    assert check_naive(kind) < TOLERANCE


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("kind", ["mistral", "gemma2", "gemma3"])
def test_fast_scorer_is_exact_with_a_window_shorter_than_the_sequence(kind, attention):
    """The packed rows' masks carry the window (the cache keeps every position), so a 5-token window over
    15-token sequences scores as the naive scorer does; and the window matters here: without it the
    naive scores move by far more than the tolerance."""
    if kind == "gemma2" and attention == "sdpa":
        pytest.skip("transformers has no SDPA path for Gemma 2 (soft-capped attention logits)")
    result = check_scorers(kind, "joint", attention, sliding_window=5)
    assert result["fast_order"] == result["naive_order"] and result["max_difference"] < TOLERANCE
    prompt, reasoning, answer = random_chain()
    windowed = HFScorer(tiny_model(kind, seed=11, sliding_window=5)).score(prompt, [reasoning], answer, "joint")
    full = HFScorer(tiny_model(kind, seed=11)).score(prompt, [reasoning], answer, "joint")
    assert abs(windowed[0] - full[0]) > 1e-2


def test_sliding_window_detection():
    assert sliding_window(tiny_model("mistral", sliding_window=7).config) == 7
    assert sliding_window(tiny_model("gemma3", sliding_window=7).config) == 7
    assert sliding_window(tiny_model("llama").config) is None
    assert sliding_window(tiny_model("qwen2", sliding_window=4, use_sliding_window=False).config) is None  # configured, off


def test_fast_scorer_refuses_a_model_without_attention_layers():
    model = tiny_model("mamba")
    prompt, reasoning, answer = random_chain()
    with pytest.raises(PrunelensError, match=r"'mamba': layers of type linear_attention.*--scorer naive"):
        PrefixCacheScorer(model).score(prompt, [reasoning], answer, "joint", trunk=reasoning)
    assert HFScorer(model).score(prompt, [reasoning], answer, "joint")[0] < 0  # the naive scorer handles it


# -- hook backends -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", FAMILIES)
def test_backend_equals_output_attentions(kind, backend):
    assert check_backend(kind, backend) < TOLERANCE


@pytest.mark.parametrize("backend", ["hf", "hf_blockwise"])
@pytest.mark.parametrize("kind", ["mistral", "gemma2"])
def test_backends_follow_a_short_sliding_window(kind, backend):
    """With a window shorter than the sequence the pattern is banded; the backends still match it."""
    assert check_backend(kind, backend, sliding_window=5) < TOLERANCE


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_refuse_a_model_without_attention(backend):
    with pytest.raises(PrunelensError, match="'mamba'.*(cannot find its attention modules|no attention pattern hook)") as error:
        build_backend(backend, tiny_model("mamba", dtype="float32"), word_tokenizer(), "mamba").received_attention([3, 4, 5])
    assert "\n" not in str(error.value)


def test_transformer_lens_refuses_an_architecture_without_an_adapter():
    """Persimmon has no TransformerBridge adapter in the installed TransformerLens; the other backends work."""
    with pytest.raises(PrunelensError, match="'persimmon' .PersimmonForCausalLM. is not supported by TransformerBridge"):
        check_backend("persimmon", "transformer_lens")
    assert check_backend("persimmon", "hf") < TOLERANCE


def test_support_table_is_generated_from_the_checks(monkeypatch):
    support = load_experiment("support_table", monkeypatch)
    text = support.table(rows=[("llama", "llama", {}), ("mamba (no attention)", "mamba", {})])
    (table,) = markdown_tables(text)
    rows = {row["family"]: row for row in table}
    assert list(rows) == ["llama", "mamba (no attention)"] and list(table[0])[1:] == list(support.COLUMNS)
    assert [rows["llama"][column] for column in support.COLUMNS] == ["exact"] * len(support.COLUMNS)
    mamba = rows["mamba (no attention)"]
    assert mamba["fast scorer"].startswith("refused: the fast scorer cannot be exact")
    assert mamba["naive scorer"] == "exact"
    assert all(mamba[column].startswith("refused:") for column in support.COLUMNS[2:]) and "transformer-lens" in text
    readme = f"intro\n{support.BEGIN}\n| stale |\n{support.END}\nrest\n"
    updated = support.with_table(readme, text)
    assert markdown_tables(updated) == [table]  # the stale table replaced by the generated one
    assert updated.startswith(f"intro\n{support.BEGIN}\n") and updated.endswith(f"{support.END}\nrest\n")
    assert support.with_table(updated, text) == updated
