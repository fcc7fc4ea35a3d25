"""Markdown tables for results files: every table in the project comes from ``markdown_table``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prunelens.core.jsonl import write_atomic


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; cells are written with ``str`` (format numbers before), a ``|`` inside a
    cell escaped so that it cannot split the cell."""
    lines = ["| " + " | ".join(_cell(name) for name in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|")


def write_report(path, text: str) -> None:
    """Write a Markdown results file atomically (creating its folder) and print it."""
    write_atomic(Path(path), text)
    print(text)
