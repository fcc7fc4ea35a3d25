"""Prune a ranked chain to a keep fraction counted in a *student* tokenizer's tokens.

A ranking of one chain is ``pieces`` (pruner-tokenizer pieces that tile the reasoning text:
``''.join(pieces) == reasoning``) and ``deletion_order`` (positions into ``pieces``, first removed
first; a full permutation, or a prefix of one when a run stopped early). For distillation, chains
are compared at matched length in the student's tokens: at keep fraction ρ the kept text must
re-tokenize to ``target = floor(ρ·n + 0.5)`` student tokens, ``n`` being the student-token count of
the full reasoning (``add_special_tokens=False``). The tokenizers differ, so the mapping goes
through characters:

1. Character rank: each character gets the deletion rank of the pruner piece that holds it; pieces
   the ranking never deletes rank ``len(deletion_order)`` (last) and can never be removed.
2. Student tiling: the student tokenizes the full reasoning with offsets; token i spans from the end
   of token i-1 to its own end (the last token also to the end of the text), so the spans tile the
   text and spaces and newlines survive. A token whose span is empty (offsets that repeat or go
   back, e.g. the bytes of one multi-byte character) joins the unit of the token before it (the
   first unit if there is none): a *unit* is one non-empty span plus such tokens, removed together.
3. Unit rank, ``rule="majority"`` (default): a unit is removed once strictly more than half of its
   content characters are (the ``m//2``-th smallest of its ``m`` character ranks). Content
   characters are the non-whitespace ones; a whitespace-only unit uses all of its characters. At
   every prefix of the pruner's ordering this is the per-token majority vote, so it minimises the
   characters on which the kept text disagrees with the pruner's own chain; leading spaces carried
   by a word token do not vote. ``rule="max"`` (removed only once all its content characters are)
   and ``rule="min"`` (as soon as any is) are available. When the student is finer than the pruner
   (its tokens sit inside pieces) all three agree.
4. Units that can be removed (rank < ``len(deletion_order)``) are ordered by (rank, position). The
   first units in that order are removed until ``n - removed tokens`` is closest to the target
   (fewer removals on a tie). The kept text is the kept units' spans in order, so it is a
   subsequence of the reasoning's characters.
5. Re-tokenizing the kept text can merge or split tokens across the gaps. While the count differs
   from the target, one more unit is removed (count too high) or the last removed one restored (too
   low), staying a prefix of the order. If the prefixes cross the target between k and k+1 units
   without hitting it, near-prefix sets are tried: the first k units plus one of the next
   ``window`` units after order[k], then the first k+1 units less one of the ``window`` before
   order[k]. At most ``max_tries`` re-tokenizations; the closest count found wins (on a tie the
   earliest tried, so the plain prefix first) and ``MatchedChain.student_tokens`` records it.

With the same tokenizer as pruner and student and a full ordering, step 4 yields exactly the
pruner's chain at that fraction, which step 5 keeps whenever that chain re-tokenizes to the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from prunelens.core.errors import BadRecordError, PrunelensError, reason
from prunelens.core.jsonl import append_jsonl, read_finished, write_jsonl
from prunelens.core.progress import log_line
from prunelens.core.provenance import InputDigests, changed_sources, describe_changes, refuse_changes
from prunelens.core.ranking import load_rankings
from prunelens.core.settings import folder_name, setting
from prunelens.jobs.run_folder import check_settings, check_writable, record_settings
from prunelens.models import resolve_directory
from prunelens.selection import skip_recorder

Rule = Literal["majority", "max", "min"]


def load_student_tokenizer(name_or_path: str) -> Any:
    """A fast (offset-capable) tokenizer from a model alias, local dir or HF id; any failure is a
    one-line PrunelensError."""
    try:
        directory, _hub = resolve_directory(name_or_path)
    except PrunelensError as error:
        raise PrunelensError(f"student tokenizer {name_or_path!r}: {str(error).partition(': ')[2]}") from None
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(directory)
    except Exception as exc:  # noqa: BLE001 - every failure becomes the one line the user sees
        raise PrunelensError(f"student tokenizer {name_or_path!r}: could not load: {reason(exc)}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise PrunelensError(
            f"student tokenizer {name_or_path!r}: not a fast tokenizer (character offsets are needed)"
        )
    return tokenizer


@dataclass
class MatchedChain:
    """A chain pruned to a keep fraction measured in student tokens.

    ``text``: the kept reasoning (a subsequence of the original characters). ``keep``: ρ.
    ``student_tokens``: the student-token count of ``text`` re-tokenized (equals ``target`` unless no
    candidate within the adjustment budget hit it). ``target``: floor(ρ·n_student + 0.5).
    ``n_student``: student tokens of the full reasoning. ``pruner_kept``: pruner pieces with at least
    one character in ``text``, an empty piece counting as the non-empty piece before it (after it at
    the start), so ρ = 1 gives len(pieces); ``pruner_partial``: non-empty pieces partly in ``text``.
    """

    text: str
    keep: float
    student_tokens: int
    target: int
    n_student: int
    pruner_kept: int
    pruner_partial: int


def matched_chain(
    pieces: Sequence[str],
    deletion_order: Sequence[int],
    tokenizer: Any,
    keep: float,
    *,
    rule: Rule = "majority",
    window: int = 8,
    max_tries: int = 48,
) -> MatchedChain:
    """The reasoning pruned by ``deletion_order`` to ``floor(keep·n + 0.5)`` student tokens.

    ``tokenizer`` is a fast (offset-capable) student tokenizer, e.g. from load_student_tokenizer.
    Raises ValueError when ``keep`` is outside (0, 1], the order is not a prefix of a permutation of
    the piece positions, ``rule`` is unknown, or an early-stopped ranking cannot reach ``keep``.
    """
    if not 0 < float(keep) <= 1:
        raise ValueError(f"keep fraction must be in (0, 1], got {keep!r}")
    if max_tries < 1 or window < 0:
        raise ValueError(f"max_tries must be >= 1 and window >= 0, got {max_tries} and {window}")
    if rule not in ("majority", "max", "min"):
        raise ValueError(f"rule must be majority, max or min, got {rule!r}")
    text = "".join(pieces)
    char_rank, char_piece = _char_ranks(pieces, deletion_order)
    never = len(deletion_order)

    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    n = len(encoding["input_ids"])
    target = math.floor(keep * n + 0.5)
    spans, weights = _units([int(end) for _, end in encoding["offset_mapping"]], len(text))
    ranks = np.array([_unit_rank(text, char_rank, s, e, rule) for s, e in spans], dtype=np.int64)
    removable = np.flatnonzero(ranks < never)
    order = removable[np.lexsort((removable, ranks[removable]))]
    removed_tokens = np.concatenate([[0], np.cumsum(np.asarray(weights, dtype=np.int64)[order])])
    floor_count = n - int(removed_tokens[-1])
    if target < floor_count:
        raise ValueError(
            f"keep fraction {keep:g} not reached: the ranking stops at {floor_count / n:.4g} "
            f"({floor_count} of {n} student tokens)"
        )

    def kept_text(removed: set[int]) -> str:
        return "".join(text[s:e] for u, (s, e) in enumerate(spans) if u not in removed)

    counts: dict[tuple[int, int], int] = {}

    def removed_units(m: int, flip: int) -> set[int]:
        """order[:m], with order[flip] added (flip >= m) or restored (flip < m); flip -1: none."""
        return set(order[:m].tolist()) ^ ({int(order[flip])} if flip >= 0 else set())

    def count(m: int, flip: int = -1) -> int:
        """Student tokens of the kept text when ``removed_units(m, flip)`` are removed."""
        if (m, flip) not in counts:
            text_kept = kept_text(removed_units(m, flip))
            counts[m, flip] = len(tokenizer(text_kept, add_special_tokens=False)["input_ids"])
        return counts[m, flip]

    remaining = n - removed_tokens
    m = int(np.argmin(np.abs(remaining - target)))  # first minimum: the fewest removals
    best = (m, -1)
    while len(counts) < max_tries:
        c = count(m)
        if abs(c - target) < abs(counts[best] - target):
            best = (m, -1)
        if c == target:
            break
        step = 1 if c > target else -1
        if not 0 <= m + step <= len(order) or (m + step, -1) in counts:
            break
        m += step
    above = [k for (k, f), c in counts.items() if f < 0 and c > target and k < len(order)]
    if counts[best] != target and above:
        # The prefixes cross the target between k and k + 1: from k remove one later unit instead of
        # order[k], or from k + 1 restore one earlier unit instead of order[k].
        k = max(above)
        flips = [(k, j) for j in range(k + 1, min(len(order), k + 1 + window))]
        flips += [(k + 1, j) for j in range(k - 1, max(-1, k - 1 - window), -1)]
        for candidate in flips:
            if len(counts) >= max_tries:
                break
            if abs(count(*candidate) - target) < abs(counts[best] - target):
                best = candidate
            if counts[best] == target:
                break

    removed = removed_units(*best)
    kept = kept_text(removed)
    mask = np.ones(len(text), dtype=bool)
    for u in removed:
        mask[spans[u][0] : spans[u][1]] = False
    sizes = np.array([len(p) for p in pieces], dtype=np.int64)
    per_piece = np.bincount(char_piece, weights=mask, minlength=len(pieces))
    if len(text):  # an empty piece (e.g. a later byte of a character) goes with the piece before it
        holder = np.maximum.accumulate(np.where(sizes > 0, np.arange(len(pieces)), -1))
        holder[holder < 0] = int(np.flatnonzero(sizes)[0])
        kept_piece = per_piece[holder] > 0
    else:
        kept_piece = np.zeros(len(pieces), dtype=bool)
    return MatchedChain(
        text=kept,
        keep=float(keep),
        student_tokens=counts[best],
        target=target,
        n_student=n,
        pruner_kept=int(np.count_nonzero(kept_piece)),
        pruner_partial=int(np.count_nonzero((per_piece > 0) & (per_piece < sizes))),
    )


def _char_ranks(pieces: Sequence[str], deletion_order: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per character: the deletion rank of its piece (``len(deletion_order)`` if never), its piece."""
    count = len(pieces)
    order = [int(p) for p in deletion_order]
    if any(not 0 <= p < count for p in order) or len(set(order)) != len(order):
        raise ValueError(f"deletion order must be distinct positions in 0..{count - 1}")
    piece_rank = np.full(count, len(order), dtype=np.int64)
    piece_rank[order] = np.arange(len(order))
    sizes = np.array([len(p) for p in pieces], dtype=np.int64)
    return np.repeat(piece_rank, sizes), np.repeat(np.arange(count), sizes)


def _units(ends: list[int], length: int) -> tuple[list[tuple[int, int]], list[int]]:
    """Student tokens tiled by their ends and grouped into units: (char spans, tokens per unit)."""
    spans: list[tuple[int, int]] = []
    weights: list[int] = []
    pending = 0  # empty-span tokens before the first unit
    previous = 0
    for i, end in enumerate(ends):
        stop = length if i == len(ends) - 1 else min(max(previous, end), length)
        if stop > previous:
            spans.append((previous, stop))
            weights.append(1 + pending)
            pending = 0
            previous = stop
        elif weights:
            weights[-1] += 1
        else:
            pending += 1
    if not spans and length:  # no token covers a character: one unit holds the whole text
        spans, weights = [(0, length)], [pending]
    return spans, weights


def _unit_rank(text: str, char_rank: np.ndarray, start: int, stop: int, rule: Rule) -> int:
    """A unit's deletion rank from its content characters' ranks (see the module docstring)."""
    content = [i for i in range(start, stop) if not text[i].isspace()] or list(range(start, stop))
    ranks = np.sort(char_rank[content])
    if rule == "min":
        return int(ranks[0])
    if rule == "max":
        return int(ranks[-1])
    return int(ranks[len(ranks) // 2])


def parse_keeps(text: str | Sequence[float]) -> list[float]:
    """'0.5,0.7,0.9' → [0.5, 0.7, 0.9]; a one-line PrunelensError for values outside (0, 1]."""
    try:
        keeps = [float(v) for v in text.split(",") if v.strip()] if isinstance(text, str) else [float(v) for v in text]
    except ValueError:
        raise PrunelensError(f"--keep must be comma-separated numbers in (0, 1], got {text!r}") from None
    bad = [k for k in keeps if not 0 < k <= 1]
    if not keeps or bad:
        raise PrunelensError(f"--keep values must lie in (0, 1], got {text!r}")
    return keeps


@dataclass
class CompressConfig:
    """`prunelens compress`: every ranking of a folder cut to each keep fraction in student tokens."""

    rankings: Path = setting(help="a rankings folder (`prunelens prune`, `rank` or `features` output)",
                             result=True, input=True)  # fmt: skip
    keep: list[float] = setting(default_factory=lambda: [0.5, 0.7, 0.9], help="keep fractions in (0, 1], comma-separated "
                                "(each its own file: a rerun may add others)", cli_type=str, parse=parse_keeps)  # fmt: skip
    student_tokenizer: str = setting("smollm2-135m", "the student's tokenizer: model alias, local dir or HF id",
                                     result=True)  # fmt: skip
    out: Path | None = setting(None, "output folder (default: runs/compress-<rankings>-<student>)")
    skip_bad: bool = setting(False, "log rankings that cannot be cut to skipped.jsonl and go on", flag="--skip-bad")
    redo_changed: bool = setting(False, "cut again the finished chains whose ranking changed since (else such a "
                                 "rerun is refused)", flag="--redo-changed")  # fmt: skip

    def output_dir(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        return Path("runs") / f"compress-{Path(self.rankings).name}-{folder_name(self.student_tokenizer)}"


def chains_path(out_dir: Path, keep: float) -> Path:
    """The chains file of one keep fraction: keep0.5.jsonl."""
    return Path(out_dir) / f"keep{keep:g}.jsonl"


def compress_rankings(config: CompressConfig, log=log_line) -> dict[float, list[dict]]:
    """Write, per keep fraction, chains {id, question, reasoning, answer, method, keep, student_tokens, …}
    whose reasoning has round(keep · n_student) student tokens; resumes per file. Every new chain is cut before
    anything is written, so a failure leaves the folder as it was. A finished chain whose ranking changed since
    is refused, or with ``redo_changed`` cut again. Returns the chains."""
    keeps = parse_keeps(config.keep)
    out_dir = config.output_dir()
    check_writable(out_dir)
    check_settings(out_dir, "compress", config)
    rankings = load_rankings(config.rankings)
    if not rankings:
        raise PrunelensError(f"{config.rankings}: no finished rankings to compress")
    inputs = InputDigests(config)
    sources = {r.id: inputs.sources(r.id) for r in rankings}
    finished = {keep: {record["id"]: record for record in read_finished(chains_path(out_dir, keep))} for keep in keeps}
    changed = {}
    for records in finished.values():
        for chain_id, record in records.items():
            names = changed_sources(record.get("sources"), sources.get(chain_id, {}))
            if names:
                changed[chain_id] = names
    if not config.redo_changed:
        refuse_changes(out_dir, changed, "finished chain(s) came from other rankings", "cut them again")
    tokenizer = load_student_tokenizer(config.student_tokenizer)
    new, failed = {keep: [] for keep in keeps}, []
    for keep in keeps:
        for ranking in rankings:
            if ranking.id in finished[keep] and ranking.id not in changed:
                continue
            try:
                matched = matched_chain(ranking.reasoning_tokens, ranking.deletion_order, tokenizer, keep)
            except ValueError as error:
                if not config.skip_bad:
                    raise BadRecordError(ranking.id, str(error)) from None
                failed.append(BadRecordError(ranking.id, str(error)))
                continue
            new[keep].append({"id": ranking.id, "question": ranking.question, "reasoning": matched.text,
                              "answer": ranking.answer, "method": ranking.method, "model": ranking.model,
                              "keep": keep, "student_tokens": matched.student_tokens, "target": matched.target,
                              "n_student": matched.n_student, "pruner_kept": matched.pruner_kept,
                              "sources": sources[ranking.id]})  # fmt: skip
    skip = skip_recorder(out_dir, log)
    for error in failed:
        skip(error)
    written = {}
    for keep in keeps:
        path = chains_path(out_dir, keep)
        if new[keep]:
            record_settings(out_dir, "compress", config)
        if changed and finished[keep]:
            log(f"keep {keep:g}: cutting again {len(changed)} chain(s) whose ranking changed ({describe_changes(changed)})")
            write_jsonl(path, [r for i, r in finished[keep].items() if i not in changed])
        for record in new[keep]:
            append_jsonl(path, record)
        written[keep] = read_finished(path)
    if failed and not any(written.values()):
        raise PrunelensError(f"no chain could be cut: {len(failed)} skipped (reasons in {out_dir / 'skipped.jsonl'})")
    return written
