"""Shared fixtures: tiny random-config models (fast) and the real smollm2-135m (integration)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from prunelens.datasets.sources import PACKAGED_DATA_DIR as DATA_DIR  # noqa: F401  (the packaged benchmark files)


def write_chains(path: Path, rows: list[dict]) -> Path:
    """A chains JSONL file of ``rows``."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def comparable(rankings) -> list[dict]:
    """Rankings (or their records) without timings and provenance (``sources`` names the run's own inputs)."""
    return [{k: v for k, v in (r if isinstance(r, dict) else r.to_dict()).items() if k not in ("seconds", "sources")}
            for r in rankings]  # fmt: skip


def interrupt_on_call(monkeypatch, owner, name: str, call: int = 2) -> None:
    """Make ``owner.name`` raise KeyboardInterrupt on its ``call``-th call (a kill in the middle of a run)."""
    real, calls = getattr(owner, name), []

    def interrupting(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, interrupting)


def load_experiment(name: str, monkeypatch=None):
    """The module of ``experiments/<name>.py`` (its folder on sys.path while ``monkeypatch`` lasts, for the
    helper modules experiments import)."""
    import importlib.util

    folder = Path(__file__).resolve().parents[1] / "experiments"
    if monkeypatch is not None:
        monkeypatch.syspath_prepend(str(folder))
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def markdown_tables(text: str) -> list[list[dict[str, str]]]:
    """The Markdown tables of ``text`` in order, each a list of rows {column header: cell text}, so that tests
    check a report's values, not how its rows are spelled."""
    tables, header = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            header = None
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line[1:-1])]
        if header is None:
            header = cells
            tables.append([])
        elif not all(cell and set(cell) <= set("-: ") for cell in cells):  # not the |---| line
            tables[-1].append(dict(zip(header, cells, strict=True)))
    return tables


def numbers(cell: str) -> list[float]:
    """The numbers a table cell shows, whatever surrounds them ("4.2×", "85%", "0.599–0.632", "+0.1 [-0.2, +0.3]")."""
    return [float(n) for n in re.findall(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", cell.replace(",", ""))]


FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "olmo2", "gpt2", "gpt_neox")


def tiny_config(kind: str, vocab: int = 96, max_positions: int = 512, **overrides):
    """A 2-layer config of the given architecture (one of ``FAMILIES``); GQA (4 query heads, 2 KV heads)
    where the family has it. Gemma 2 keeps its logit soft-capping; sliding windows default to longer
    than any test sequence (``sliding_window=`` in ``overrides`` shortens them)."""
    import transformers

    common = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                  initializer_range=0.4, tie_word_embeddings=False)  # fmt: skip
    window = {"sliding_window": max_positions}
    families = {
        "llama": ("LlamaConfig", {}),
        "mistral": ("MistralConfig", window),
        "qwen2": ("Qwen2Config", {}),
        "qwen3": ("Qwen3Config", {"head_dim": 8}),
        "gemma2": ("Gemma2Config", dict(head_dim=8, query_pre_attn_scalar=8, attn_logit_softcapping=50.0,
                                        final_logit_softcapping=30.0, **window)),
        "gemma3": ("Gemma3TextConfig", dict(head_dim=8, query_pre_attn_scalar=8, **window)),
        "phi3": ("Phi3Config", {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}),
        "olmo2": ("Olmo2Config", {"pad_token_id": 0, "eos_token_id": 2}),
        "gpt_neox": ("GPTNeoXConfig", {"rotary_pct": 0.5, "use_parallel_residual": True}),
        # outside FAMILIES: for refusals (no TransformerBridge adapter; no attention at all)
        "persimmon": ("PersimmonConfig", {"partial_rotary_factor": 0.5}),
        "mamba": ("MambaConfig", {"state_size": 4}),
    }
    if kind == "gpt2":
        return transformers.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=max_positions,
                                       initializer_range=0.4, **overrides)  # fmt: skip
    if kind not in families:
        raise ValueError(kind)
    name, extra = families[kind]
    if kind in ("gpt_neox", "persimmon"):  # no GQA
        common = {k: v for k, v in common.items() if k != "num_key_value_heads"}
    if kind == "mamba":
        common = {"vocab_size": vocab, "hidden_size": 32, "num_hidden_layers": 2, "initializer_range": 0.4,
                  "tie_word_embeddings": False}  # fmt: skip
    return getattr(transformers, name)(**{**common, **extra, **overrides})


def tiny_model(kind: str = "llama", seed: int = 0, dtype: str = "float64", **config_kwargs):
    """A randomly initialised tiny causal LM in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(kind, **config_kwargs), attn_implementation="eager")
    return model.to(getattr(torch, dtype)).eval()


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The smollm2-135m alias converted to a safetensors dir (converted once, then cached)."""
    from prunelens.models import resolve_directory

    return Path(resolve_directory("smollm2-135m")[0])


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm2_dir) -> Path:
    """A saved tiny random Llama that uses smollm2's real tokenizer (and chat template)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = tiny_model("llama", dtype="float32", vocab=len(tokenizer), max_positions=400)
    target = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


@pytest.fixture(scope="session")
def smollm2():
    """The real smollm2-135m model, float32 on CPU."""
    from prunelens.models import load_model

    return load_model("smollm2-135m")
