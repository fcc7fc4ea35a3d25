"""vLLM backend for sampling chains (optional extra; written against vLLM's documented API, not run here).

The same interface as ``HFGenerator``: ``generate(bench, prompts, sampling)`` returns ``sampling.samples``
completions per prompt. Each prompt is one request, tokenized as the HF generator does, with
``SamplingParams(n=samples, temperature, top_p, max_tokens, seed, stop_token_ids=[eos])``; its seed comes from
``sampling.seed`` and the prompt, so a prompt's samples do not depend on how prompts are batched. vLLM takes
no stop predicate, so a completion runs to end-of-sequence or the token cap and is cut at its answer line
afterwards (``prunelens.distill.generate.cut_completion``): the same texts, at the cost of the tokens after it.
"""

from __future__ import annotations

from prunelens.datasets.base import Benchmark
from prunelens.distill.generate import Generation, Sampling, cut_completion, prompt_seed
from prunelens.core.errors import PrunelensError
from prunelens.models import resolve_directory


def _require_vllm():
    try:
        import vllm
    except ImportError:
        raise PrunelensError("generator 'vllm' needs vLLM: pip install 'prunelens[vllm]' (GPU machines)") from None
    return vllm


class VLLMGenerator:
    """Generation with ``vllm.LLM.generate``; ``llm`` is an existing ``vllm.LLM`` (or an object with its
    ``generate`` and ``get_tokenizer``), else one is built on ``model`` with ``llm_kwargs``."""

    def __init__(self, model: str, batch_size: int = 8, llm=None, **llm_kwargs):
        """``batch_size`` is kept for the common generator signature; vLLM schedules its own batches."""
        if llm is None:
            llm = _require_vllm().LLM(model=model, **llm_kwargs)
        self.llm, self.batch_size = llm, batch_size
        self.tokenizer = llm.get_tokenizer()

    @classmethod
    def load(cls, model: str, *, device: str = "cpu", dtype: str = "float32", batch_size: int = 8) -> VLLMGenerator:
        """A vLLM engine on ``model`` (alias, local dir, .gguf or hub id); vLLM places it on its own device."""
        _require_vllm()  # before converting an alias
        directory, _hub = resolve_directory(model)
        return cls(directory, batch_size, dtype=dtype)

    def sampling_params(self, sampling: Sampling, prompt: str):
        """The request's ``vllm.SamplingParams``."""
        from vllm import SamplingParams

        eos = self.tokenizer.eos_token_id
        return SamplingParams(n=sampling.samples, temperature=sampling.temperature, top_p=sampling.top_p,
                              max_tokens=sampling.max_new_tokens, seed=prompt_seed(sampling.seed, prompt),
                              stop_token_ids=[eos] if eos is not None else None)  # fmt: skip

    def token_prompt(self, prompt: str):
        """The request's ``vllm.inputs.TokensPrompt`` (special tokens added only without a chat template)."""
        from vllm.inputs import TokensPrompt

        ids = self.tokenizer(prompt, add_special_tokens=not self.tokenizer.chat_template)["input_ids"]
        return TokensPrompt(prompt_token_ids=ids)

    def generate(self, bench: Benchmark, prompts: list[str], sampling: Sampling) -> list[list[Generation]]:
        """``sampling.samples`` completions per prompt, in prompt order, each cut at its answer line."""
        outputs = self.llm.generate([self.token_prompt(p) for p in prompts],
                                    [self.sampling_params(sampling, p) for p in prompts], use_tqdm=False)  # fmt: skip
        return [[self._cut(bench, completion) for completion in output.outputs] for output in outputs]

    def _cut(self, bench: Benchmark, completion) -> Generation:
        """One ``vllm.CompletionOutput``: finish_reason "stop" without stop strings means end-of-sequence."""
        return cut_completion(self.tokenizer, bench, completion.text, len(completion.token_ids),
                              completion.finish_reason == "stop")  # fmt: skip
