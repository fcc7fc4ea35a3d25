"""Attention hook backends agree; features, stores, H2O and the surrogate behave as defined."""

import json

import numpy as np
import pytest
import torch
from conftest import tiny_model

from prunelens.core.errors import PrunelensError
from prunelens.probes.backends import (
    HFBlockwiseBackend,
    HFEagerBackend,
    NNsightBackend,
    TransformerLensBackend,
    make_backend,
)
from prunelens.probes.features import chain_features
from prunelens.core.chain import TokenizedChain
from prunelens.core.ranked import ascending_order


def reference_received(model, ids):
    """Naive: every layer's full pattern from output_attentions, summed over rows below the diagonal."""
    with torch.no_grad():
        attentions = model(torch.tensor([ids]), output_attentions=True).attentions
    out = np.zeros((len(attentions), attentions[0].shape[1], len(ids)))
    for layer, pattern in enumerate(attentions):
        for j in range(len(ids)):
            out[layer, :, j] = pattern[0, :, j + 1 :, j].double().sum(-1).numpy()
    return out


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gpt2"])
def test_backends_agree_with_reference(kind, tokenizer):
    ids = list(range(100, 130))
    model = tiny_model(kind, dtype="float32", vocab=len(tokenizer), seed=2)
    model.set_attn_implementation("eager")
    reference = reference_received(model, ids)
    assert reference.shape == (2, 4, 30)  # per query head: 4 query heads share 2 KV heads in llama/qwen2
    builders = [lambda: HFEagerBackend(model), lambda: NNsightBackend(model, tokenizer), lambda: HFBlockwiseBackend(model)]
    if kind != "gpt2":  # the TransformerLens bridge here is exercised on the Llama/Qwen2 shapes
        builders.append(lambda: TransformerLensBackend(model, tokenizer, f"tiny-{kind}"))
    for build in builders:  # each built just before use: nnsight must wrap the model after other hooks are gone
        backend = build()
        np.testing.assert_allclose(backend.received_attention(ids), reference, atol=1e-4, err_msg=backend.name)


def test_blockwise_rows_do_not_change_the_sums_or_the_output():
    from prunelens.probes.blockwise import blockwise_attention_pass

    query, key, value = (torch.randn(1, heads, 37, 8, dtype=torch.float64) for heads in (4, 2, 2))
    output, whole = blockwise_attention_pass(query, key, value, 8**-0.5, block=1000)
    blocked_output, blocked = blockwise_attention_pass(query, key, value, 8**-0.5, block=5)
    np.testing.assert_allclose(blocked, whole, atol=1e-12)
    np.testing.assert_allclose(blocked_output, output, atol=1e-6)  # weights are softmaxed in float32, as eager does
    assert torch.all(whole[:, -1] == 0)  # the last position has no later rows
    assert blockwise_attention_pass(query, key, None, 8**-0.5, block=5)[0] is None  # received sums only
    _, windowed = blockwise_attention_pass(query, key, value, 8**-0.5, sliding_window=3)
    assert not torch.allclose(windowed, whole)


def test_unknown_backend():
    with pytest.raises(PrunelensError, match="unknown hook backend 'captum' .known: hf, hf_blockwise, transformer_lens, nnsight"):
        make_backend("captum", None)


class FixedBackend:
    """Returns a known received-attention tensor, to test the feature arithmetic exactly."""

    name = "fixed"

    def __init__(self, received):
        self.received = received

    def received_attention(self, input_ids):
        assert self.received.shape[-1] == len(input_ids)
        return self.received


def test_features_are_means_over_later_positions_and_h2o_is_the_sum():
    chain = TokenizedChain("e", [1, 2], [3, 4, 5], [6], "a b c", "\n#### 1", [(0, 1), (1, 3), (3, 5)], ["a", " b", " c"])
    rng = np.random.default_rng(0)
    received = rng.random((2, 3, 6))  # layers × heads × T, T = 2 + 3 + 1
    out = chain_features(FixedBackend(received), chain)
    assert out.attention.shape == (3, 2, 3)
    for j, position in enumerate((2, 3, 4)):
        later = 6 - 1 - position
        np.testing.assert_allclose(out.attention[j], received[:, :, position] / later)
        assert out.h2o[j] == pytest.approx(received[:, :, position].sum())
    assert out.tokens == ["a", " b", " c"] and out.token_ids == [3, 4, 5]


def test_h2o_order_and_pruned_chain():
    from prunelens.core.ranked import make_ranking, ranked_by
    from prunelens.datasets.base import Example

    assert ascending_order([0.5, 0.1, 0.5, 0.0]) == [3, 1, 0, 2]
    chain = TokenizedChain("e", [1], [5, 6, 7, 8], [9], "x y z w", "", [(0, 1), (1, 3), (3, 5), (5, 7)], ["x", " y", " z", " w"])
    ranking = make_ranking(Example("e", "q", "1"), chain, method="h2o", model="m",
                           ranked=ranked_by(np.array([0.5, 0.1, 0.5, 0.0])))  # fmt: skip
    assert ranking.deletion_order == [3, 1, 0, 2] and ranking.text(0.5) == "x z" and ranking.method == "h2o"


def test_features_run_store_and_resume(tmp_path, tiny_model_dir):
    from prunelens.probes.run import FeaturesConfig, run_features
    from prunelens.probes.store import open_features

    chains = tmp_path / "chains.jsonl"
    # ids of growing length: a store once cut later ids to the first one's width ("c10" -> "c1")
    rows = [{"id": f"c{10 ** i}", "question": "What is 2 + 2?", "reasoning": "2 + 2 = 4" + " so" * i, "answer": "4"}
            for i in range(3)]  # fmt: skip
    chains.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    config = FeaturesConfig(model=str(tiny_model_dir), chains=chains, out=tmp_path / "f", limit=None, float16=True)
    run_features(config, progress=False)
    chains.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = run_features(config, progress=False).rankings
    assert [r.id for r in records] == ["c1", "c10", "c100"]
    with open_features(tmp_path / "f") as data:
        assert data["attention"].dims == ("token", "layer", "head") and data["attention"].dtype == np.float16
        assert data.sizes["layer"] == 2 and data.sizes["head"] == 4
        assert list(dict.fromkeys(data["example_id"].values)) == ["c1", "c10", "c100"]
        assert set(data["example_index"].values) == {0, 1, 2}
        assert data.attrs["model"] == str(tiny_model_dir) and "mean over later positions" in data.attrs["feature_definition"]
        assert "torch==" in data.attrs["versions"]
        first = data.where(data["example_id"] == "c1", drop=True)
        assert "".join(first["token_text"].values) == rows[0]["reasoning"]
        assert list(first["position"].values) == list(range(first.sizes["token"]))
        np.testing.assert_allclose(first["h2o"].values, records[0].scores)
    assert records[0].deletion_order == ascending_order(records[0].scores)
