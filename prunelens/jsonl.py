"""JSON Lines reading and crash-safe appending."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prunelens.errors import BadRecordError, PrunelensError


def iter_jsonl(path: Path, *, skip_bad: bool = False, on_skip=None) -> Iterator[dict[str, Any]]:
    """Yield the objects of a JSONL file; a malformed line raises BadRecordError naming file and line.

    With ``skip_bad`` the malformed line is passed to ``on_skip(error)`` and skipped instead.
    Blank lines are ignored.
    """
    if not Path(path).is_file():
        raise PrunelensError(f"{path}: no such file")
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
                if "\x00" in line:
                    raise ValueError("a NUL byte: binary data, not JSON Lines text")
            except ValueError as exc:  # UnicodeDecodeError is a ValueError
                raise BadRecordError(f"{Path(path).name}:{number}", f"not UTF-8 JSON Lines text ({exc})") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
            except ValueError as exc:
                error = BadRecordError(f"{path.name}:{number}", f"malformed JSON line ({exc})")
                if not skip_bad:
                    raise error from None
                if on_skip is not None:
                    on_skip(error)
                continue
            yield obj


def read_finished(path: Path) -> list[dict[str, Any]]:
    """Read an output JSONL that may end in a half-written line (after a kill); drop that line.

    The torn tail is cut off the file so later appends start on a clean line.
    """
    if not path.exists():
        return []
    records = []
    good_bytes = 0
    with open(path, "rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break
            try:
                records.append(json.loads(raw))
            except ValueError:
                break
            good_bytes += len(raw)
    if good_bytes != path.stat().st_size:
        with open(path, "r+b") as handle:
            handle.truncate(good_bytes)
    return records


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a single line and force it to disk."""
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
