"""Sampling teacher chains from a running OpenAI-compatible server (`prunelens distill teach --generator server`).

The same interface as ``HFGenerator``. Each sample is one completions request on the prompt's text (the chat
template applied here, with the teacher's tokenizer: ``--model`` names the model the server serves), with
``temperature``, ``top_p``, ``max_tokens`` and a seed from ``sampling.seed``, the prompt and the sample's index,
so a prompt's samples do not depend on batching and servers that ignore ``n`` (llama.cpp's) draw them alike.
Requests run ``concurrency`` at a time through ``prunelens.core.openai_http.CompletionsClient`` (retries with
backoff). Like the vLLM generator, a completion runs to its end or the token cap and is cut at its answer line
afterwards (``cut_completion``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from prunelens.core.errors import PrunelensError
from prunelens.core.openai_http import CompletionsClient, ServerConnection
from prunelens.datasets.base import Benchmark
from prunelens.distill.generate import Generation, Sampling, cut_completion, prompt_seed
from prunelens.models import load_tokenizer


class ServerGenerator:
    """Completions from ``client`` (a ``CompletionsClient``); ``tokenizer`` is the served model's."""

    def __init__(self, client: CompletionsClient, tokenizer):
        self.client, self.tokenizer = client, tokenizer

    @classmethod
    def load(cls, model: str, *, device: str = "cpu", dtype: str = "float32", batch_size: int = 8,
             options: ServerConnection | None = None) -> ServerGenerator:  # fmt: skip
        """A generator on the server of ``options``; only ``model``'s tokenizer is loaded here (``device``, ``dtype``
        and ``batch_size``, the common generator signature, do not apply: the server batches)."""
        return cls(CompletionsClient(options or ServerConnection()), load_tokenizer(model).tokenizer)

    def generate(self, bench: Benchmark, prompts: list[str], sampling: Sampling) -> list[list[Generation]]:
        """``sampling.samples`` completions per prompt, in prompt order, each cut at its answer line."""
        drawn = sampling.samples if sampling.temperature > 0 else 1  # greedy: decoded once, repeated
        jobs = [(prompt, index) for prompt in prompts for index in range(drawn)]
        with ThreadPoolExecutor(max_workers=self.client.connection.concurrency) as pool:
            done = list(pool.map(lambda job: self._sample(bench, sampling, *job), jobs))
        return [(done[k * drawn : (k + 1) * drawn] * sampling.samples)[: sampling.samples] for k in range(len(prompts))]

    def _sample(self, bench: Benchmark, sampling: Sampling, prompt: str, index: int) -> Generation:
        response = self.client.complete(prompt=prompt, max_tokens=sampling.max_new_tokens,
                                        temperature=sampling.temperature, top_p=sampling.top_p,
                                        seed=prompt_seed(sampling.seed, f"{index}:{prompt}") % 2**31)  # fmt: skip
        if not response.choices:
            raise PrunelensError(f"the server at {self.client.url} replied without choices")
        choice = response.choices[0]
        generated = len(self.tokenizer(choice.text, add_special_tokens=False)["input_ids"])
        return cut_completion(self.tokenizer, bench, choice.text, generated, choice.finish_reason == "stop")
