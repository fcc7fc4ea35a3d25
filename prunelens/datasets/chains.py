"""User-supplied chains: JSONL records {id, question, reasoning, answer}."""

from __future__ import annotations

from pathlib import Path

from prunelens.datasets.base import Example, require
from prunelens.core.errors import BadRecordError, PrunelensError
from prunelens.core.jsonl import iter_jsonl


def load_chains(path: Path, *, dataset: str = "", skip_bad: bool = False, on_skip=None) -> list[Example]:
    """Read a chains file; each bad line or record raises BadRecordError unless ``skip_bad``."""
    examples: list[Example] = []
    seen: set[str] = set()
    for number, row in enumerate(iter_jsonl(Path(path), skip_bad=skip_bad, on_skip=on_skip), start=1):
        try:
            record_id = str(row.get("id") if row.get("id") is not None else f"{Path(path).name}:{number}")
            if record_id in seen:
                raise BadRecordError(record_id, "duplicate id")
            seen.add(record_id)
            examples.append(
                Example(
                    record_id,
                    str(require(row, "question", record_id)),
                    str(require(row, "answer", record_id)),
                    row.get("reasoning"),
                    options=tuple(row["options"]) if row.get("options") else None,
                    dataset=dataset,
                )
            )
        except BadRecordError as error:
            if not skip_bad:
                raise
            if on_skip is not None:
                on_skip(error)
    if not examples and not seen:
        raise PrunelensError(f"chains file {path} holds no records")
    return examples
