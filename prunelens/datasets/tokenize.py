"""Tokenising an example into the three id segments that pruning acts on (``prunelens.core.chain``)."""

from __future__ import annotations

from prunelens.core.chain import TokenizedChain
from prunelens.core.errors import BadRecordError
from prunelens.datasets.base import Benchmark, Example
from prunelens.datasets.prompts import build_prompt


def tokenize_chain(tokenizer, bench: Benchmark, example: Example, max_positions: int | None) -> TokenizedChain:
    """Tokenise an example for pruning; BadRecordError for empty reasoning or a too-long sequence."""
    if not example.reasoning or not example.reasoning.strip():
        raise BadRecordError(example.id, "empty reasoning (nothing to prune)")
    if not str(example.answer).strip():
        raise BadRecordError(example.id, "missing answer")
    prompt_ids, answer_ids = prompt_and_answer_ids(tokenizer, bench, example)
    reasoning_ids, offsets = _ids_and_offsets(tokenizer, example.reasoning)
    if not reasoning_ids:
        raise BadRecordError(example.id, "empty reasoning (no tokens)")
    chain = TokenizedChain(
        example.id,
        prompt_ids,
        reasoning_ids,
        answer_ids,
        example.reasoning,
        bench.answer_text(str(example.answer)),
        offsets,
        _tile(example.reasoning, offsets),
    )
    if max_positions is not None and chain.total_len > max_positions:
        raise BadRecordError(
            example.id, f"sequence of {chain.total_len} tokens exceeds the model's context of {max_positions}"
        )
    return chain


def prompt_and_answer_ids(tokenizer, bench: Benchmark, example: Example) -> tuple[list[int], list[int]]:
    """The ids around the reasoning, as pruning scores them: the prompt (with the tokenizer's special tokens only
    when there is no chat template, which writes its own) and the answer segment (none)."""
    prompt = build_prompt(tokenizer, bench.user_message(example))
    prompt_ids = tokenizer(prompt, add_special_tokens=not tokenizer.chat_template)["input_ids"]
    answer_ids = tokenizer(bench.answer_text(str(example.answer)), add_special_tokens=False)["input_ids"]
    return list(prompt_ids), list(answer_ids)


def _ids_and_offsets(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(encoded["input_ids"]), [tuple(span) for span in encoded["offset_mapping"]]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    offsets, previous = [], 0  # slow tokenizers: offsets from the growth of the decoded prefix
    for count in range(1, len(ids) + 1):
        end = min(len(tokenizer.decode(ids[:count])), len(text))
        offsets.append((previous, end))
        previous = end
    return list(ids), offsets


def _tile(text: str, offsets: list[tuple[int, int]]) -> list[str]:
    pieces, start = [], 0
    for index, (_, end) in enumerate(offsets):
        stop = len(text) if index == len(offsets) - 1 else max(end, start)
        pieces.append(text[start:stop])
        start = stop
    return pieces
