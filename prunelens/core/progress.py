"""Progress over examples: a tqdm bar on a terminal, plain log lines otherwise (no escape codes in logs)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def log_line(line: str) -> None:
    """The default log: one line to stderr, so stdout stays for results."""
    print(line, file=sys.stderr, flush=True)


def interactive() -> bool:
    """Whether stderr is a terminal (progress bars) rather than a log file or pipe (plain lines)."""
    return sys.stderr.isatty()


def progress_bar(items: Iterable[T], total: int, desc: str, enabled: bool = True, log=log_line,
                 tokens: Callable[[T], int] | None = None) -> Iterator[T]:  # fmt: skip
    """Yield ``items``; show a bar on a terminal, else one ``desc [k/total] (s)`` line per finished item.
    With ``tokens`` (an item's token count) the bar and lines add the tokens per second so far."""
    if not enabled:
        yield from items
        return
    started, done = time.perf_counter(), 0

    def rate(item) -> str:
        nonlocal done
        done += tokens(item)
        return f"{done / max(time.perf_counter() - started, 1e-9):.0f} tok/s"

    if interactive():
        from tqdm.auto import tqdm

        with tqdm(items, total=total, desc=desc) as bar:
            for item in bar:
                yield item
                if tokens is not None:
                    bar.set_postfix_str(rate(item))
        return
    for index, item in enumerate(items, start=1):
        yield item
        extra = f", {rate(item)}" if tokens is not None else ""
        log(f"{desc} [{index}/{total}] {time.perf_counter() - started:.1f} s{extra}")
