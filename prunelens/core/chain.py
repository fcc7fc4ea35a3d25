"""The chain every layer shares: a question → reasoning → answer example as the id segments pruning acts on.
``prunelens.datasets.tokenize`` builds it from an example and a tokenizer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenizedChain:
    """Token ids of prompt, reasoning and answer, tokenised separately so deletion touches reasoning only.

    ``offsets`` are the tokenizer's (start, end) character spans in ``reasoning``; ``pieces`` tile the
    reasoning text (piece i runs from the end of token i-1 to the end of token i, the last one to the end
    of the text), so joining any subset of pieces in order gives readable pruned text.
    """

    id: str
    prompt_ids: list[int]
    reasoning_ids: list[int]
    answer_ids: list[int]
    reasoning: str
    answer_text: str
    offsets: list[tuple[int, int]]
    pieces: list[str]

    @property
    def total_len(self) -> int:
        return len(self.prompt_ids) + len(self.reasoning_ids) + len(self.answer_ids)
