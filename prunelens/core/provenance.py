"""What a result was computed from, by content: digests of each example and of each input a job reads.

A run's output records carry ``sources``: ``{"example": digest of the question, reasoning, answer and options,
<input setting>: digest of what that input holds for the example}``. A rerun compares them with the inputs as
they are now, so an edited chains file, features folder, surrogate or rankings folder is never served from an
old line, and the same content reached by another path resumes. Input settings are declared once, with
``setting(..., input=True)``; a folder input is a run folder whose records are keyed by example id, a file input
counts as a whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prunelens.core.errors import PrunelensError
from prunelens.core.jsonl import read_finished
from prunelens.core.ranking import rankings_file
from prunelens.core.settings import result_fields

DIGEST_CHARS = 16  # hex characters kept of a sha256
VOLATILE = ("seconds", "sources")  # record fields that do not describe content (timings, provenance)


def digest(value: Any) -> str:
    """A short sha256 of a JSON-able value (dict keys sorted) or of bytes."""
    data = value if isinstance(value, bytes) else json.dumps(value, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]


def record_digest(record: dict[str, Any]) -> str:
    """The digest of one output record's content (its timing and provenance left out)."""
    return digest({k: v for k, v in record.items() if k not in VOLATILE})


def input_settings(config) -> list[tuple[str, Path, bool | str]]:
    """(name, path, kind) of each input setting of ``config`` that is set, its variant's options included: the
    files and folders the run reads (kind ``"examples"`` for a chains file)."""
    return [(f.name, Path(getattr(holder, f.name)), f.metadata["input"]) for holder, f in result_fields(config)
            if f.metadata.get("input") and getattr(holder, f.name) is not None]  # fmt: skip


class InputDigests:
    """The digests of a config's inputs as they are now: per example id for folders, whole for files."""

    def __init__(self, config):
        self.whole: dict[str, str] = {}
        self.by_id: dict[str, dict[str, str]] = {}
        for name, path, kind in input_settings(config):
            if kind == "examples":  # the examples themselves: each example's own digest covers it
                continue
            if path.is_dir():
                self.by_id[name] = {r["id"]: record_digest(r) for r in read_finished(rankings_file(path)) if "id" in r}
            elif path.is_file():
                self.whole[name] = digest(path.read_bytes())
            else:
                raise PrunelensError(f"{path}: no such file or folder")

    def sources(self, example_id: str, example_digest: str | None = None) -> dict[str, str | None]:
        """The ``sources`` a record computed now for ``example_id`` carries (``example_digest``: the example's own
        content, where the run reads examples)."""
        per_id = {name: records.get(example_id) for name, records in self.by_id.items()}
        return {**({"example": example_digest} if example_digest else {}), **per_id, **self.whole}


def changed_sources(saved: dict[str, Any] | None, now: dict[str, Any]) -> list[str]:
    """The names whose digest differs between a record's saved ``sources`` and ``now`` (none for a record
    written before sources were kept: it cannot be checked)."""
    if not saved:
        return []
    return sorted(name for name in {*saved, *now} if saved.get(name) != now.get(name))


def changed_records(records: Iterable[dict[str, Any]], sources: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """{id: the source names that changed} for each finished record whose id is in ``sources`` (the sources its
    example has now) and whose saved ``sources`` differ."""
    return {r["id"]: names for r in records
            if r.get("id") in sources and (names := changed_sources(r.get("sources"), sources[r["id"]]))}  # fmt: skip


def refuse_changes(where: Path, changed: dict[str, list[str]], what: str, redo: str | None = None) -> None:
    """The one-line refusal of a rerun whose inputs changed: '<where>: N <what> (<changes>)', then how to redo them
    (``redo``, the --redo-changed action) or that another --out is needed; nothing when ``changed`` is empty."""
    if changed:
        fix = f"rerun with --redo-changed to {redo}, or choose another --out" if redo else "choose another --out"
        raise PrunelensError(f"{where}: {len(changed)} {what} ({describe_changes(changed)}); {fix}")


def refuse_changed_examples(records: list[dict[str, Any]], examples, where: Path) -> None:
    """A one-line error when a finished record's example (``sources["example"]``) differs from the example now
    selected under its id: for outputs that are not redone in place (distillation's teacher chains and
    evaluations)."""
    now = {e.id: {"example": e.digest()} for e in examples}
    refuse_changes(where, changed_records(records, now), "finished question(s) have changed since")


def describe_changes(changed: dict[str, list[str]], limit: int = 3) -> str:
    """'example: a, b; features: c (+2 more)' from {example id: [changed source names]}."""
    by_source: dict[str, list[str]] = {}
    for example_id, names in changed.items():
        for name in names:
            by_source.setdefault(name, []).append(example_id)
    parts = []
    for name, ids in sorted(by_source.items()):
        shown = ", ".join(ids[:limit]) + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")
        parts.append(f"{name}: {shown}")
    return "; ".join(parts)
