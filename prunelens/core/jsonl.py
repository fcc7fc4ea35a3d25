"""JSON Lines reading and crash-safe appending, and the atomic replacement every writer of whole files uses."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prunelens.core.errors import BadRecordError, PrunelensError


def iter_jsonl(path: Path, *, skip_bad: bool = False, on_skip=None) -> Iterator[dict[str, Any]]:
    """Yield the objects of a JSONL file; a malformed line raises BadRecordError naming file and line.

    With ``skip_bad`` the malformed line is passed to ``on_skip(error)`` and skipped instead.
    Blank lines are ignored.
    """
    if Path(path).is_dir():
        raise PrunelensError(f"{path}: is a folder; a JSON Lines file is expected here")
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
    """The complete records of an output JSONL, in order; reading never changes the file.

    A last line cut off by a kill (not valid JSON) is ignored, and so is everything after a torn line;
    a valid last line without its newline counts. ``append_jsonl`` repairs the tail before writing.
    """
    if not path.exists():
        return []
    records = []
    with open(path, "rb") as handle:
        for raw in handle:
            try:
                records.append(json.loads(raw))
            except ValueError:
                break
    return records


def _repair_tail(path: Path) -> None:
    """Make the file end on a complete line: finish a valid last line with its newline, cut a torn one."""
    with open(path, "r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        start = size
        while start > 0:  # back to the byte after the last newline
            step = min(4096, start)
            handle.seek(start - step)
            chunk = handle.read(step)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                start = start - step + cut + 1
                break
            start -= step
        handle.seek(start)
        try:
            json.loads(handle.read())
        except ValueError:
            handle.truncate(start)
        else:
            handle.write(b"\n")


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a single line (after repairing a torn tail) and force it to disk."""
    line = json.dumps(record, ensure_ascii=False) + "\n"
    if Path(path).exists():
        _repair_tail(Path(path))
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def replace_atomically(path: Path, write: Callable[[Path], None], *, keep_existing: bool = False) -> None:
    """Make ``path`` what ``write(staging)`` writes (a file, or a folder) at a staging path beside it: its files
    forced to disk, then moved into place, so a kill leaves the old content or the new one, never half.

    A file replaces a file atomically. A folder replaces a folder after the old one is removed (a kill in between
    leaves neither: readers treat the folder as missing and it is made again), or with
    ``keep_existing`` a folder that is there and not empty (another process finished first) is kept and the
    staged one discarded. The staging path is unique to this process and thread; no failure leaves it behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f"{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    try:
        write(staging)
        _force_to_disk(staging)
        if staging.is_dir() and path.is_dir() and not path.is_symlink() and not keep_existing:
            shutil.rmtree(path)
        try:
            os.replace(staging, path)  # onto a folder that is not empty it fails
        except OSError:
            if not (keep_existing and path.is_dir()):
                raise
    finally:
        _remove(staging)  # nothing there after the move


def _force_to_disk(path: Path) -> None:
    """fsync a file, or every file below a folder."""
    files = [path] if path.is_file() else [Path(root) / name for root, _, names in os.walk(path) for name in names]
    for file in files:
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())


def _remove(path: Path) -> None:
    """Remove a file or folder if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_atomic(path: Path, content: str | bytes) -> None:
    """Replace a file's whole content (text is written as UTF-8) atomically and durably: a kill leaves the old
    file or the new one, never half."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    replace_atomically(path, lambda staging: staging.write_bytes(data))


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Write records as a whole JSONL file, atomically."""
    write_atomic(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
