"""Batched sampling or greedy decoding of chains with Hugging Face ``generate``, stopped after the answer line.

Without a stop rule a small model runs to the token cap repeating its answer line, so every row stops as soon
as its text holds a complete answer line (``Benchmark.answer_line_end``) and is cut there. Prompts are the
benchmark's user message in the model's chat template (``prunelens.datasets.prompts.build_prompt``), the same
prompt pruning and fine-tuning use.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from transformers import StoppingCriteria

from prunelens.datasets.base import Benchmark, Example
from prunelens.datasets.prompts import build_prompt
from prunelens.models import load_model


@dataclass(frozen=True)
class Generation:
    """One completion: ``text`` cut just before the newline that ends the answer line (or where generation
    stopped), ``new_tokens`` the generated tokens in ``text``, ``finished`` whether an answer line was completed
    (False: the token cap or end-of-sequence came first)."""

    text: str
    new_tokens: int
    finished: bool


@dataclass(frozen=True)
class Sampling:
    """How completions are drawn: ``samples`` per prompt; ``temperature`` 0 is greedy decoding (decoded once, its
    completion repeated ``samples`` times)."""

    samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0


def prompt_texts(tokenizer, bench: Benchmark, examples: list[Example]) -> list[str]:
    """The generation prompt of each example."""
    return [build_prompt(tokenizer, bench.user_message(example)) for example in examples]


def prompt_seed(seed: int, prompt: str) -> int:
    """The sampling seed of a request (HF: of a generate call, from its first prompt), from ``seed`` and the prompt."""
    return zlib.crc32(f"{seed}:{prompt}".encode())


def prompts_per_call(batch_size: int, samples: int) -> int:
    """How many prompts one generate call takes: ``batch_size // samples`` sequences' worth, at least one
    (a prompt's samples are never split across calls)."""
    return max(1, batch_size // samples)


def cut_completion(tokenizer, bench: Benchmark, text: str, generated: int, ended: bool) -> Generation:
    """A decoded completion of ``generated`` tokens cut just before the newline that ends its answer line;
    ``ended``: generation stopped at end-of-sequence, which also closes an answer line."""
    end = bench.answer_line_end(text + "\n" if ended else text)
    if end is None:
        return Generation(text, generated, False)
    kept = len(tokenizer(text[:end], add_special_tokens=False)["input_ids"])
    return Generation(text[:end], min(kept, generated), True)


class HFGenerator:
    """Generation with ``model.generate`` on a loaded model (``prunelens.models.LoadedModel``), ``batch_size``
    sequences (prompts x samples) per call."""

    def __init__(self, loaded, batch_size: int = 8):
        self.model, self.tokenizer, self.batch_size = loaded.model, loaded.tokenizer, batch_size
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @classmethod
    def load(cls, model: str, *, device: str = "cpu", dtype: str = "float32", batch_size: int = 8) -> HFGenerator:
        """A generator on ``model`` (alias, local dir, .gguf or hub id) loaded with ``prunelens.models.load_model``."""
        return cls(load_model(model, device=device, dtype=dtype), batch_size)

    def generate(self, bench: Benchmark, prompts: list[str], sampling: Sampling) -> list[list[Generation]]:
        """``sampling.samples`` completions per prompt, in prompt order. Each batch is seeded from
        ``sampling.seed`` and its first prompt, so a resumed run redraws the same samples for a batch."""
        per_call = prompts_per_call(self.batch_size, sampling.samples)
        results: list[list[Generation]] = []
        for start in range(0, len(prompts), per_call):
            results += self._batch(bench, prompts[start : start + per_call], sampling)
        return results

    def _batch(self, bench: Benchmark, prompts: list[str], sampling: Sampling) -> list[list[Generation]]:
        import torch

        tokenizer = self.tokenizer
        side, tokenizer.padding_side = tokenizer.padding_side, "left"
        try:
            encoded = tokenizer(prompts, return_tensors="pt", padding=True,
                                add_special_tokens=not tokenizer.chat_template).to(self.model.device)  # fmt: skip
        finally:
            tokenizer.padding_side = side  # the tokenizer may be a trainer's too
        prompt_len = encoded["input_ids"].shape[1]
        sample = sampling.temperature > 0
        options = dict(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p) if sample else dict(
            do_sample=False, temperature=None, top_p=None, top_k=None)  # fmt: skip
        devices = [self.model.device] if self.model.device.type == "cuda" else []
        with torch.inference_mode(), torch.random.fork_rng(devices=devices, enabled=sample):  # the caller's RNG stays
            if sample:
                torch.manual_seed(prompt_seed(sampling.seed, prompts[0]))
            output = self.model.generate(
                **encoded,
                max_new_tokens=sampling.max_new_tokens,
                num_return_sequences=sampling.samples if sample else 1,
                stopping_criteria=[_AnswerLineStop(tokenizer, bench, prompt_len)],
                pad_token_id=tokenizer.pad_token_id,
                **options,
            )
        rows = [self._cut(bench, ids[prompt_len:]) for ids in output]
        if not sample:  # greedy decoding draws one completion; every sample of a prompt is that one
            return [[row] * sampling.samples for row in rows]
        return [rows[i : i + sampling.samples] for i in range(0, len(rows), sampling.samples)]

    def _cut(self, bench: Benchmark, new_ids) -> Generation:
        """The completion of one row, cut at its answer line, with the count of generated tokens kept."""
        ids = [int(t) for t in new_ids]
        ended = self.tokenizer.eos_token_id in ids  # end-of-sequence also closes an answer line
        ids = [t for t in ids if t not in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id)]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return cut_completion(self.tokenizer, bench, text, len(ids), ended)


class _AnswerLineStop(StoppingCriteria):
    """A stopping criterion: a row is done once its generated text holds a complete answer line."""

    def __init__(self, tokenizer, bench: Benchmark, prompt_len: int):
        self.tokenizer, self.bench, self.prompt_len = tokenizer, bench, prompt_len

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        return torch.tensor([self.bench.answer_line_end(text) is not None for text in texts], device=input_ids.device)
