"""The six functional categories, word segmentation, and per-token labels stored beside rankings.

Categories (paper §5.1, App. D), in the priority order that resolves ties: a token or word that fits
several takes the earliest. Annotators label *words*; every pruner token takes the label of the words it
overlaps (all pieces of one word share its label; a token spanning words of different labels takes the
highest-priority one); tokens that overlap no word (whitespace, newlines) are Grammar.

Labels are stored per ranking folder in ``annotations-<annotator>.jsonl``, one ``Annotation`` per chain,
keyed by example id and checked against the ranking's tokens (model and a digest of the token ids), so any
ranking of the same chain with the same tokenizer joins with them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prunelens.core.errors import PrunelensError
from prunelens.core.jsonl import read_finished

CATEGORIES = ("SymbMath", "MetaDisc", "CoRef", "EntName", "VerbalMath", "Grammar")  # priority order
WHITESPACE_LABEL = "Grammar"
_WORD = re.compile(r"\d+(?:[.,]\d+)*|\w+(?:['’]\w+)*|[^\w\s]")


def resolve(labels) -> str:
    """The highest-priority label among ``labels`` (Grammar when there are none)."""
    found = [label for label in labels if label is not None]
    return min(found, key=CATEGORIES.index) if found else WHITESPACE_LABEL


def split_words_and_symbols(text: str) -> list[tuple[str, int, int]]:
    """Words as annotators see them, with character spans: numbers (with decimal or thousands separators),
    runs of letters/digits (with apostrophes), and single punctuation or symbol characters: "3." is two words
    here (TokenSkip's classifier judges whitespace-separated words: ``rankers.tokenskip.split_on_whitespace``)."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def token_word_indices(offsets, words: list[tuple[str, int, int]]) -> list[list[int]]:
    """For each token span (start, end), the indices of the words it overlaps (possibly none)."""
    found, first = [], 0
    for start, end in offsets:
        while first < len(words) and words[first][2] <= start:
            first += 1
        hits, index = [], first
        while index < len(words) and words[index][1] < end:
            if words[index][2] > start:
                hits.append(index)
            index += 1
        found.append(hits)
    return found


def token_labels(offsets, words: list[tuple[str, int, int]], word_labels: list[str]) -> list[str]:
    """Per-token labels from per-word labels (priority order across the words a token spans)."""
    return [resolve(word_labels[i] for i in hits) for hits in token_word_indices(offsets, words)]


def tokens_digest(model: str, reasoning_ids: list[int]) -> str:
    """What a label list is keyed by besides the id: the tokenizer's model and the exact token ids."""
    return hashlib.sha1(f"{model}|{','.join(map(str, reasoning_ids))}".encode()).hexdigest()[:16]


@dataclass(kw_only=True)
class Annotation:
    """One chain's labels from one annotator: ``labels`` per reasoning token (``word_labels`` per word of
    ``split_words_and_symbols``), or ``status="failed"`` with a ``reason`` (then ``labels`` is empty)."""

    id: str
    annotator: str
    model: str
    digest: str
    labels: list[str] = field(default_factory=list)
    word_labels: list[str] = field(default_factory=list)
    status: str = "ok"
    reason: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(record: dict[str, Any]) -> Annotation:
        return Annotation(**record)


def annotations_path(rankings_dir: Path, annotator: str) -> Path:
    """Where an annotator's labels for the chains of a rankings folder live."""
    return Path(rankings_dir) / f"annotations-{annotator}.jsonl"


def load_annotations(path: Path) -> dict[str, Annotation]:
    """Finished annotations by example id (failed ones included, with their reason)."""
    if not Path(path).exists():
        raise PrunelensError(f"{path}: no annotations (run `prunelens annotate` first)")
    return {record["id"]: Annotation.from_dict(record) for record in read_finished(Path(path))}


def labels_for(ranking, annotations: dict[str, Annotation]) -> list[str] | None:
    """The per-token labels of ``ranking``'s chain, None where it was not annotated or annotation failed;
    a one-line error when the labels belong to other tokens (another tokenizer or another text)."""
    annotation = annotations.get(ranking.id)
    if annotation is None or annotation.status != "ok":
        return None
    if annotation.digest != tokens_digest(ranking.model, ranking.reasoning_ids):
        raise PrunelensError(f"record {ranking.id!r}: its annotation was made for other tokens "
                             f"(model {annotation.model!r}); annotate this ranking's chains")  # fmt: skip
    return annotation.labels


class AnnotationFailed(Exception):
    """An annotator could not label a chain; the message is the reason recorded with it."""


class Annotator:
    """Base of the registered annotators: built once from the annotate config (cheap); ``label_words``
    gives one category per word of ``split_words_and_symbols(reasoning)`` or raises AnnotationFailed."""

    def __init__(self, config):
        self.config = config  # the annotate run's settings (rankings, concurrency, …)
        self.options = getattr(config, "options", None)  # its own settings: its registered options dataclass, or None

    def settings(self) -> dict:
        """What is recorded with each annotation (model names, prompt version…)."""
        return {}

    def label_words(self, words: list[str], reasoning: str) -> list[str]:
        raise NotImplementedError
