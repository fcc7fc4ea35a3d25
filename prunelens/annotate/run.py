"""`prunelens annotate`: label the chains of a rankings folder with a registered annotator.

Labels go to ``annotations-<annotator>.jsonl`` beside the rankings (one ``Annotation`` per chain,
appended as each finishes, so a rerun resumes). Chains are annotated ``concurrency`` at a time; a chain
the annotator cannot label is recorded as failed with the reason, and the run goes on.
`prunelens annotate-stability` (``annotation_stability``) annotates the same chains twice and reports
token-level agreement.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from prunelens.annotate.client import LLMSettings
from prunelens.annotate.labels import (
    Annotation,
    AnnotationFailed,
    annotations_path,
    load_annotations,
    split_words_and_symbols,
    token_labels,
    tokens_digest,
)
from prunelens.core.errors import PrunelensError
from prunelens.core.jsonl import append_jsonl, write_atomic
from prunelens.core.progress import log_line, progress_bar
from prunelens.core.ranking import load_rankings
from prunelens.core.registry import ANNOTATORS
from prunelens.core.settings import setting, settle_variant
from prunelens.report import markdown_table

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class AnnotateConfig:
    """Which rankings to label, with which annotator, and the annotator's own settings (``options``: the dataclass
    registered with it, e.g. the LLM annotator's ``LLMSettings``; None for the offline rules)."""

    rankings: Path = setting(help="a rankings folder (`prunelens prune`, `rank` or `features` output)")
    annotator: str = setting("offline", ANNOTATORS.choices())
    options: Any = setting(None, "the annotator's own settings (its registered options dataclass; default: its "
                           "defaults)", cli=False, variant_of=("annotator", ANNOTATORS))  # fmt: skip
    out: Path | None = setting(None, "labels file (default: <rankings>/annotations-<annotator>.jsonl)")
    limit: int | None = setting(None, "only the first N chains of the folder", minimum=1)
    concurrency: int = setting(4, "chains annotated at once", minimum=1)
    retry_failed: bool = setting(False, "annotate again the chains whose stored annotation failed", flag="--retry-failed")
    redo_changed: bool = setting(False, "annotate again the chains whose tokens changed since (else refused)",
                                 flag="--redo-changed")  # fmt: skip

    def __post_init__(self):
        settle_variant(self)

    def output_path(self) -> Path:
        return Path(self.out) if self.out is not None else annotations_path(self.rankings, self.annotator)

    def output_dir(self) -> Path:
        return self.output_path().parent


def concurrently(function: Callable[[T], R], items: list[T], workers: int, desc: str, progress: bool = True,
                 log=log_line) -> Iterator[R]:  # fmt: skip
    """``function(item)`` for every item, ``workers`` at a time, yielded as each finishes (with progress);
    an exception or Ctrl-C drops the items not yet started and propagates."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(function, item) for item in items]
        try:
            for future in progress_bar(as_completed(futures), total=len(futures), desc=desc, enabled=progress, log=log):
                yield future.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def annotate_ranking(annotator, name: str, ranking) -> Annotation:
    """One chain's Annotation: the annotator's word labels mapped to the ranking's tokens, or a failure."""
    started = time.perf_counter()
    words = split_words_and_symbols(ranking.reasoning)
    common = dict(id=ranking.id, annotator=name, model=ranking.model,
                  digest=tokens_digest(ranking.model, ranking.reasoning_ids), settings=annotator.settings())  # fmt: skip
    try:
        word_labels = annotator.label_words([w for w, _, _ in words], ranking.reasoning)
    except AnnotationFailed as failure:
        return Annotation(**common, status="failed", reason=str(failure), seconds=round(time.perf_counter() - started, 3))
    return Annotation(**common, labels=token_labels(ranking.offsets, words, word_labels), word_labels=word_labels,
                      seconds=round(time.perf_counter() - started, 3))  # fmt: skip


def annotate_rankings(config: AnnotateConfig, progress: bool = True, log=log_line) -> dict[str, Annotation]:
    """Annotate every chain of ``config.rankings`` not yet in the labels file (with ``retry_failed`` also those
    whose annotation failed; with ``redo_changed`` those whose tokens changed since, which are refused otherwise);
    all annotations by id. Raises when every chain it tried failed (the failures stay stored)."""
    annotator = ANNOTATORS.load(config.annotator)(config)
    path = config.output_path()
    rankings = load_rankings(config.rankings)[: config.limit]
    done = load_annotations(path) if path.exists() else {}
    other = next((a for a in done.values() if a.settings != annotator.settings()), None)
    if other is not None:
        raise PrunelensError(f"{path} holds labels made with other settings ({other.id!r}: {other.settings}; now "
                             f"{annotator.settings()}); pass another --out")  # fmt: skip
    changed = [r.id for r in rankings if r.id in done and done[r.id].digest != tokens_digest(r.model, r.reasoning_ids)]
    if changed and not config.redo_changed:
        raise PrunelensError(f"{path}: {len(changed)} chain(s) were labelled on other tokens ({', '.join(changed[:3])}"
                             f"{' …' if len(changed) > 3 else ''}); rerun with --redo-changed to label them again, "
                             "or pass another --out")  # fmt: skip
    redo = set(changed) | {i for i, a in done.items() if config.retry_failed and a.status != "ok"}
    todo = [r for r in rankings if r.id not in done or r.id in redo]
    path.parent.mkdir(parents=True, exist_ok=True)
    work = partial(annotate_ranking, annotator, config.annotator)
    failed = []
    for annotation in concurrently(work, todo, config.concurrency, f"annotate ({config.annotator})", progress, log):
        if annotation.status != "ok":
            log(f"failed {annotation.id}: {annotation.reason}")
            failed.append(annotation)
        append_jsonl(path, annotation.to_dict())  # a later line of the same id replaces an earlier one
    if todo and len(failed) == len(todo):
        raise PrunelensError(f"every chain failed ({len(failed)}; first: {failed[0].id}: {failed[0].reason}); the "
                             f"failures are kept in {path}: rerun with --retry-failed to try them again")  # fmt: skip
    return load_annotations(path) if path.exists() else {}


@dataclass(kw_only=True)
class StabilityLLMSettings(LLMSettings):
    """The LLM annotator's settings in the stability check: the response cache is off (no --cache-dir, --no-cache)."""

    cache_dir: Path | None = setting(None, cli=False)
    no_cache: bool = setting(True, cli=False)


class StabilityAnnotators:
    """The annotators as the stability check offers them: each with its registered options, the LLM annotator's
    as ``StabilityLLMSettings``."""

    kind = ANNOTATORS.kind

    def names(self) -> list[str]:
        return ANNOTATORS.names()

    def options_type(self, name: str) -> type | None:
        options = ANNOTATORS.options_type(name)
        return StabilityLLMSettings if options is LLMSettings else options


@dataclass(kw_only=True)
class StabilityConfig(AnnotateConfig):
    """`prunelens annotate-stability`: annotate the same chains twice, response cache off, and compare."""

    annotator: str = setting("llm", ANNOTATORS.choices())
    options: Any = setting(None, "the annotator's own settings (the LLM annotator's: StabilityLLMSettings)", cli=False,
                           variant_of=("annotator", StabilityAnnotators()))  # fmt: skip
    out: Path | None = setting(None, "folder of both passes and the report (default: <rankings>/stability-<annotator>)")

    def output_dir(self) -> Path:
        return Path(self.out) if self.out is not None else Path(self.rankings) / f"stability-{self.annotator}"


@dataclass
class Stability:
    """Token-level agreement of two annotation passes: per chain labelled in both (share of tokens with
    the same label), and the chains that failed in either pass."""

    agreements: dict[str, float]
    failed: list[str]
    report: Path

    @property
    def mean(self) -> float:
        return statistics.fmean(self.agreements.values()) if self.agreements else float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.agreements.values()) if self.agreements else float("nan")

    def share_at_least(self, level: float) -> float:
        values = list(self.agreements.values())
        return sum(v >= level for v in values) / len(values) if values else float("nan")

    def summary(self) -> str:
        return (f"token-level agreement over {len(self.agreements)} chains: mean {self.mean:.3f}, median "
                f"{self.median:.3f}, {self.share_at_least(0.97):.0%} of chains >= 0.97; {len(self.failed)} chains "
                f"failed in a pass")  # fmt: skip


def _cell(reason: str) -> str:
    return reason.replace("|", "\\|") if reason else "ok"


def token_agreement(first: list[str], second: list[str]) -> float:
    """The share of tokens given the same label by both passes (1.0 for an empty chain)."""
    return sum(a == b for a, b in zip(first, second, strict=True)) / len(first) if first else 1.0


def annotation_stability(config: StabilityConfig, progress: bool = True, log=log_line) -> Stability:
    """Annotate ``config.rankings`` twice (``pass1.jsonl``, ``pass2.jsonl``; each resumes) without the
    response cache, then write ``stability.md``: mean and median token-level agreement (paper App. D.2:
    0.90 and 0.92 with gpt-5-mini), the share of chains at >= 0.97, failures, and each chain's agreement."""
    out_dir = config.output_dir()
    base = {f.name: getattr(config, f.name) for f in fields(AnnotateConfig)}
    if isinstance(config.options, LLMSettings):
        base["options"] = replace(config.options, no_cache=True)
    passes = [annotate_rankings(AnnotateConfig(**{**base, "out": out_dir / f"pass{k}.jsonl"}), progress=progress,
                                log=log) for k in (1, 2)]  # fmt: skip
    first, second = passes
    ids = [i for i in first if i in second]
    failed = [i for i in ids if first[i].status != "ok" or second[i].status != "ok"]
    agreements = {i: token_agreement(first[i].labels, second[i].labels) for i in ids if i not in failed}
    result = Stability(agreements, failed, out_dir / "stability.md")
    summary = markdown_table(
        ["annotator", "model", "chains compared", "failed", "mean agreement", "median", "chains >= 0.97"],
        [[config.annotator, config.options.llm_model if isinstance(config.options, LLMSettings) else "-",
          len(agreements), len(failed),
          f"{result.mean:.3f}", f"{result.median:.3f}", f"{result.share_at_least(0.97):.0%}"]],
    )  # fmt: skip
    per_chain = markdown_table(["chain", "tokens", "agreement"],
                               [[i, len(first[i].labels), f"{agreements[i]:.3f}"] for i in agreements])  # fmt: skip
    failures = markdown_table(["chain", "pass 1", "pass 2"],
                              [[i, _cell(first[i].reason), _cell(second[i].reason)] for i in failed])  # fmt: skip
    write_atomic(
        result.report,
        f"# Annotation stability: `{config.rankings}`\n\nTwo passes over the same chains with the response cache "
        f"off; agreement = share of reasoning tokens given the same category (paper App. D.2: mean 0.90, median "
        f"0.92).\n\n{summary}\n\n## Per chain\n\n{per_chain}\n"
        + (f"\n## Failed chains\n\n{failures}\n" if failed else "")
    )
    return result
