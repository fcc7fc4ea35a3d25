"""Issue 13: the blockwise attention pass (memory bounded at any length) equals eager attention exactly."""

import re

import numpy as np
import pytest
import torch
from conftest import load_experiment, tiny_model
from test_architectures import TOLERANCE, check_backend

from prunelens.core.errors import PrunelensError
from prunelens.probes import blockwise
from prunelens.probes.backends import HFBlockwiseBackend
from prunelens.probes.blockwise import (
    SINK_ATTRIBUTE,
    blockwise_attention,
    blockwise_attention_pass,
)


def eager_reference(query, key, value, scaling, softcap=None, sliding_window=None):
    """Output (1, T, Hq, d) and received (Hq, T) from the full pattern, computed as eager attention does."""
    group = query.shape[1] // key.shape[1]
    keys, values = key.repeat_interleave(group, dim=1), value.repeat_interleave(group, dim=1)
    scores = (query @ keys.transpose(-1, -2)) * scaling
    if softcap:
        scores = torch.tanh(scores / softcap) * softcap
    rows, columns = torch.arange(query.shape[2])[:, None], torch.arange(query.shape[2])[None, :]
    allowed = columns <= rows
    if sliding_window:
        allowed &= columns > rows - sliding_window
    pattern = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1, dtype=torch.float32).to(query.dtype)
    return (pattern @ values).transpose(1, 2), pattern[0].double().tril(-1).sum(dim=-2)


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("options", [{}, {"sliding_window": 5}, {"softcap": 3.0}])
def test_blockwise_pass_equals_eager_attention(dtype, atol, options):
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(1, heads, 37, 8, generator=generator).to(dtype) for heads in (6, 2, 2))
    output, received = eager_reference(query, key, value, 0.5, **options)
    for block in (1, 5, 16, None):  # one row, uneven blocks, the whole sequence in one block
        got_output, got_received = blockwise_attention_pass(query, key, value, 0.5, block=block, **options)
        assert got_output.shape == (1, 37, 6, 8) and got_output.dtype == dtype
        np.testing.assert_allclose(got_output.double(), output.double(), atol=atol, err_msg=f"block {block}")
        np.testing.assert_allclose(got_received, received, atol=atol * 40, err_msg=f"block {block}")


@pytest.mark.parametrize("kind, config", [("llama", {}), ("gemma2", {}), ("mistral", {"sliding_window": 5})])
def test_backend_in_small_blocks_equals_output_attentions(monkeypatch, kind, config):
    """A block budget of a few rows: every layer runs in many blocks inside the model, outputs included."""
    monkeypatch.setattr(blockwise, "BLOCK_ELEMENTS", 4 * 24 * 3)  # 3 rows of 4 heads at 24 tokens
    calls = []
    original = blockwise.blockwise_attention_pass
    monkeypatch.setattr(blockwise, "blockwise_attention_pass", lambda *a, **k: calls.append(1) or original(*a, **k))
    assert check_backend(kind, "hf_blockwise", **config) < TOLERANCE
    assert len(calls) == 2  # both layers' attention went through the blockwise pass


def test_backend_keeps_no_kv_cache():
    """A cache would hold every layer's keys and values (2 × layers × kv heads × T × d): the pass asks for none."""
    model = tiny_model("llama", dtype="float32")
    seen = []

    def record(_module, _args, kwargs):
        seen.append(kwargs.get("use_cache"))

    model.base_model.register_forward_pre_hook(record, with_kwargs=True)
    HFBlockwiseBackend(model).received_attention([3, 4, 5, 6])
    assert seen == [False]


def test_attention_sinks_are_refused():
    module = torch.nn.Module()
    setattr(module, SINK_ATTRIBUTE, [])
    query = torch.randn(1, 2, 4, 8)
    with pytest.raises(PrunelensError, match="attention sinks"):
        blockwise_attention(module, query, query, query, None, s_aux=torch.zeros(2))


def test_probe_memory_table(tmp_path, smollm2_dir):
    """The experiment measures hf_blockwise in a fresh process and skips eager backends past the limit."""
    out = tmp_path / "probe_memory.md"
    load_experiment("probe_memory").main(["--tokens", "40", "--backends", "hf_blockwise", "hf", "--eager-max-tokens",
                                          "30", "--out", str(out)])  # fmt: skip
    lines = [line.strip("| ").split(" | ") for line in out.read_text().splitlines() if line.startswith("| hf")]
    rows = {cells[0]: cells[1:] for cells in lines}
    measured = r"\d+ MB / \d+ s \(\d+ s CPU\)"
    assert re.fullmatch(measured, rows["hf_blockwise"][0]) and rows["hf"][0].startswith("not run"), rows
