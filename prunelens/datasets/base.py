"""Typed examples and the interface every benchmark implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunelens.core.errors import BadRecordError
from prunelens.core.provenance import digest
from prunelens.datasets.sources import read_rows


@dataclass(frozen=True)
class Example:
    """One benchmark problem. ``reasoning`` is the gold chain where the set has one."""

    id: str
    question: str
    answer: str
    reasoning: str | None = None
    options: tuple[str, ...] | None = None
    dataset: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def digest(self) -> str:
        """A digest of the content a result depends on: question, reasoning, answer and options."""
        return digest([self.question, self.reasoning, self.answer, list(self.options or [])])


@dataclass(frozen=True)
class SplitRule:
    """A user-facing split: rows of raw file ``raw`` falling in partition ``part``.

    ``part`` None means the whole raw file; otherwise it names one of ``Benchmark.partitions[raw]``.
    """

    raw: str
    part: str | None = None


class Benchmark:
    """A benchmark: where its rows live, how a row becomes an Example, prompts and grading."""

    name: str = ""
    title: str = ""  # how reports name it (empty: by ``name``)
    raw_files: dict[str, str] = {}  # raw split -> path relative to the data dir
    hub_repo: str = ""
    hub_config: str | None = None
    hub_splits: dict[str, str] = {}  # raw split -> split name on the hub
    splits: dict[str, SplitRule] = {}
    partitions: dict[str, dict[str, int | None]] = {}  # raw split -> ordered {part: size, None = rest}
    seed: int = 0
    multiple_choice: bool = False  # examples carry options that the prompt lists
    answer_marker: str = ""  # the phrase that starts the answer line (answer_text begins with a newline and it)

    def rows(self, raw_split: str, data_dir: Path | None = None) -> list[dict[str, Any]]:
        """All raw rows of one raw split; by default read from files or the hub (``sources.read_rows``)."""
        return read_rows(self, raw_split, data_dir)

    def parse(self, row: dict[str, Any], raw_split: str, index: int) -> Example:
        """Turn one raw row into an Example; raise BadRecordError on a missing field."""
        raise NotImplementedError

    def user_message(self, example: Example) -> str:
        """The instruction shown to the model for this example."""
        raise NotImplementedError

    def answer_text(self, answer: str) -> str:
        """The answer segment appended after the reasoning when scoring."""
        raise NotImplementedError

    def answer_line_end(self, completion: str) -> int | None:
        """Where the answer line of a generated completion ends (the index of the newline after the marker and a
        non-blank answer), or None while the line is not complete. Generation stops there."""
        start = completion.find(self.answer_marker)
        if not self.answer_marker or start < 0:
            return None
        end = completion.find("\n", start)
        if end < 0 or not completion[start + len(self.answer_marker) : end].strip():
            return None
        return end

    def reasoning_of(self, completion: str) -> str | None:
        """The reasoning of a completion: its text before the first answer marker, stripped; None without one."""
        start = completion.find(self.answer_marker) if self.answer_marker else -1
        return completion[:start].strip() if start >= 0 else None

    def extract(self, completion: str) -> str | None:
        """The final answer a completion states, or None."""
        raise NotImplementedError

    def is_correct(self, completion: str, gold: str) -> bool:
        """Whether the completion's final answer matches the gold answer."""
        raise NotImplementedError


def require(row: dict[str, Any], key: str, record_id: str) -> Any:
    """row[key], or a BadRecordError naming the record when it is missing or empty."""
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadRecordError(record_id, f"missing {key!r}")
    return value
