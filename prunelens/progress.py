"""Progress over examples: a tqdm bar on a terminal, plain log lines otherwise (no escape codes in logs)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def log_line(line: str) -> None:
    """The default log: one line to stderr, so stdout stays for results."""
    print(line, file=sys.stderr, flush=True)


def interactive() -> bool:
    """Whether stderr is a terminal (progress bars) rather than a log file or pipe (plain lines)."""
    return sys.stderr.isatty()


def progress_bar(items: Iterable[T], total: int, desc: str, enabled: bool = True, log=log_line) -> Iterator[T]:
    """Yield ``items``; show a bar on a terminal, else one ``desc [k/total] (s)`` line per finished item."""
    if not enabled:
        yield from items
        return
    if interactive():
        from tqdm.auto import tqdm

        yield from tqdm(items, total=total, desc=desc)
        return
    started = time.perf_counter()
    for index, item in enumerate(items, start=1):
        yield item
        log(f"{desc} [{index}/{total}] {time.perf_counter() - started:.1f} s")
