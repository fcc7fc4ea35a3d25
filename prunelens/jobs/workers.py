"""What each worker of a job does before its first example, here or on a Ray actor: torch threads, then the model."""

from __future__ import annotations

import os

from prunelens.models import load_model, load_tokenizer


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when it is a positive number, else all cores."""
    from_env = os.environ.get("OMP_NUM_THREADS", "")
    return int(from_env) if from_env.isdigit() and int(from_env) > 0 else os.cpu_count() or 1


def set_threads(threads: int | None) -> None:
    """Give torch ``threads`` CPU threads (None: ``default_threads()``)."""
    import torch

    torch.set_num_threads(threads or default_threads())


def load_for(job):
    """The model (or only its tokenizer, for jobs that need no weights) named by the job's config."""
    config = job.config
    if not job.needs_weights:
        return load_tokenizer(config.model)
    return load_model(config.model, device=config.device, dtype=config.dtype, attn_implementation=job.attn_implementation)
