"""TokenSkip baseline: LLMLingua-2 keep probabilities for the tokens of a reasoning text.

LLMLingua-2 (e.g. ``microsoft/llmlingua-2-xlm-roberta-large-meetingbank``) is a 2-label token
classifier, label 1 = "keep". It judges whitespace-separated words; this module scores those words and
maps the scores onto the tokens of another ("pruner") tokenizer through character offsets, so tokens
can be removed least-likely-to-keep first.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from prunelens.core.errors import PrunelensError, reason
from prunelens.core.ranked import ranked_by
from prunelens.core.settings import setting
from prunelens.models import resolve_device
from prunelens.rankers.base import Ranker

DEFAULT_CLASSIFIER = "microsoft/llmlingua-2-xlm-roberta-large-meetingbank"
KEEP_LABEL = 1
_WORD = re.compile(r"\S+")


def split_on_whitespace(text: str) -> list[tuple[str, int, int]]:
    """The maximal runs of non-whitespace characters of ``text``, each with its (start, end) span: the words
    LLMLingua-2 judges (punctuation stays attached, unlike annotation's ``split_words_and_symbols``)."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def load_classifier(name: str, device: str = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) of a token classifier in eval mode on ``device``.

    PrunelensError with a one-line message when either cannot be loaded (missing path, no network...).
    """
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForTokenClassification.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise PrunelensError(f"TokenSkip classifier {name!r}: could not load: {reason(exc)}") from None
    return model.to(resolve_device(device)).eval(), tokenizer


def _chunks(counts: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Consecutive [start, stop) word ranges whose token counts sum to at most ``budget``.

    A word longer than the budget on its own gets a chunk of its own (the caller truncates it).
    """
    chunks, start, used = [], 0, 0
    for index, count in enumerate(counts):
        if index > start and used + count > budget:
            chunks.append((start, index))
            start, used = index, 0
        used += count
    if start < len(counts):
        chunks.append((start, len(counts)))
    return chunks


def word_chunks(tokenizer, words: list[str], max_tokens: int = 512) -> list[tuple[int, int]]:
    """How ``words`` are split for the classifier: [start, stop) ranges that fit ``max_tokens``.

    ``max_tokens`` counts the special tokens too; a single word longer than the window is its own chunk.
    """
    budget = max_tokens - tokenizer.num_special_tokens_to_add(pair=False)
    if budget < 1:
        raise ValueError(f"max_tokens={max_tokens} leaves no room beside the special tokens")
    if not words:
        return []
    word_ids = tokenizer(words, is_split_into_words=True, add_special_tokens=False, verbose=False).word_ids()
    counts = np.bincount([w for w in word_ids if w is not None], minlength=len(words))
    return _chunks(counts.tolist(), budget)


def word_keep_probabilities(model, tokenizer, words: list[str], max_tokens: int = 512) -> np.ndarray:
    """P(keep) per word: softmax over the 2 labels, label 1, mean over the word's sub-word tokens.

    Needs a fast tokenizer (``word_ids()``). Word lists longer than ``max_tokens`` tokens (special
    tokens included) are scored in consecutive chunks that each fit, one forward pass per chunk; a
    word longer than the window is truncated. A word the tokenizer maps to no token at all gets 1.0.
    Returns float64 of ``len(words)``.
    """
    import torch

    probs = np.ones(len(words), dtype=np.float64)
    device = next(model.parameters()).device
    for start, stop in word_chunks(tokenizer, words, max_tokens):
        encoded = tokenizer(words[start:stop], is_split_into_words=True, truncation=True,
                            max_length=max_tokens, return_tensors="pt")  # fmt: skip
        word_ids = np.array([-1 if w is None else w for w in encoded.word_ids()])
        with torch.inference_mode():
            logits = model(**{k: v.to(device) for k, v in encoded.items()}).logits[0]
        keep = torch.softmax(logits.double(), dim=-1)[:, KEEP_LABEL].cpu().numpy()
        mask = word_ids >= 0
        sums = np.bincount(word_ids[mask], weights=keep[mask], minlength=stop - start)
        counts = np.bincount(word_ids[mask], minlength=stop - start)
        seen = counts > 0
        probs[start:stop][seen] = sums[seen] / counts[seen]
    return probs


def token_keep_probabilities(
    text: str,
    offsets: Sequence[tuple[int, int]],
    words: Sequence[tuple[str, int, int]],
    word_probs: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Map per-word probabilities onto pruner tokens through their (start, end) character spans.

    - A token takes the probability of the word its span overlaps most (in characters); ties go to the
      earlier word. So a token spanning several words takes its most-overlapping word, and a word split
      over several tokens gives its probability to each of them.
    - A token overlapping no word (pure whitespace or newline, or an empty span) takes the probability
      of the first word that ends after the token's start (the next word, or the word an empty span
      sits inside), or of the last word when no word follows.
    - With no words at all, every token gets 1.0.

    ``words`` must be in text order, as ``split_on_whitespace`` returns them. Returns float64 of ``len(offsets)``.
    """
    if len(word_probs) != len(words):
        raise ValueError(f"{len(word_probs)} word probabilities for {len(words)} words")
    if not words:
        return np.ones(len(offsets), dtype=np.float64)
    probs = np.asarray(word_probs, dtype=np.float64)
    starts = [start for _, start, _ in words]
    ends = [end for _, _, end in words]
    out = np.empty(len(offsets), dtype=np.float64)
    for index, (start, end) in enumerate(offsets):
        if not 0 <= start <= end <= len(text):
            raise ValueError(f"token {index} span ({start}, {end}) is not inside the text of {len(text)} chars")
        first = bisect_right(ends, start)  # first word ending after the token's start
        best, best_overlap = min(first, len(words) - 1), 0
        word = first
        while word < len(words) and starts[word] < end:
            overlap = min(end, ends[word]) - max(start, starts[word])
            if overlap > best_overlap:
                best, best_overlap = word, overlap
            word += 1
        out[index] = probs[best]
    return out


def tokenskip_keep_probabilities(
    model, tokenizer, text: str, offsets: Sequence[tuple[int, int]], max_tokens: int = 512
) -> np.ndarray:
    """P(keep) per pruner token of ``text`` (spans ``offsets``): split_on_whitespace → word → token probabilities.

    A text without any word (empty or all whitespace) gives every token 1.0: nothing to rank.
    """
    words = split_on_whitespace(text)
    word_probs = word_keep_probabilities(model, tokenizer, [w for w, _, _ in words], max_tokens)
    return token_keep_probabilities(text, offsets, words, word_probs)


@dataclass
class TokenSkipOptions:
    """TokenSkip's own setting: which LLMLingua-2 classifier scores the words."""

    classifier: str = setting(DEFAULT_CLASSIFIER, "the LLMLingua-2 token classifier (HF id or local dir)", result=True)


class TokenSkipRanker(Ranker):
    """TokenSkip's compressor: LLMLingua-2 keep probabilities on the pruner's tokens, least likely kept first."""

    score_meaning = "LLMLingua-2 keep probability (word mean, mapped to pruner tokens); lowest removed first"

    def start(self, loaded):
        self.model, self.tokenizer = load_classifier(self.options.classifier, self.config.device)

    def settings(self):
        return {"classifier": self.options.classifier}

    def rank(self, example, chain):
        probabilities = tokenskip_keep_probabilities(self.model, self.tokenizer, chain.reasoning, chain.offsets)
        return ranked_by(probabilities)

