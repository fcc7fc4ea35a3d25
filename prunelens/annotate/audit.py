"""`prunelens audit`: an LLM judge rates pruned chains for comprehensibility and SFT suitability (paper App. E).

Every ranking of a folder is cut to each keep fraction ρ (``Ranking.text``) and the judge rates the pruned
chain on five dimensions, each on a three-level scale (``DIMENSIONS``), answering one JSON object of fixed
keys at temperature 0. The paper does not say what else its judge saw; here it also gets the question, the
unpruned chain and the final answer as reference, so that missing quantities can be recognised as missing.
Verdicts go to ``verdicts.jsonl`` in the output folder (one per chain and ρ, appended as each finishes, so a
rerun resumes; a chain the judge could not rate is recorded as failed with the reason) and ``audit.md`` holds
the share of each level per dimension and ρ, as in the paper's Table 3.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from prunelens.annotate.client import (
    ChatClient,
    InvalidReply,
    LLMSettings,
    ReplyFailed,
    server_host,
)
from prunelens.annotate.run import concurrently
from prunelens.compress import parse_keeps
from prunelens.core.errors import PrunelensError
from prunelens.core.jsonl import append_jsonl, read_finished, write_atomic
from prunelens.core.progress import log_line
from prunelens.core.provenance import InputDigests, changed_records, refuse_changes
from prunelens.core.ranking import load_rankings
from prunelens.core.settings import setting
from prunelens.jobs.run_folder import check_settings, check_writable, record_settings
from prunelens.report import markdown_table

PROMPT_VERSION = "1"
VERDICTS_NAME = "verdicts.jsonl"
REPORT_NAME = "audit.md"


@dataclass(frozen=True)
class Dimension:
    """One rated aspect: its JSON key, its name in tables, what it asks, and its levels (best first) with
    what each means."""

    key: str
    title: str
    question: str
    levels: tuple[tuple[str, str], ...]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.levels]


DIMENSIONS = (
    Dimension("corruption", "Corruption", "How damaged is the surface of the text?", (
        ("OK", "reads as normal, fully readable text"),
        ("Minor", "surface artefacts (missing punctuation, dropped small words, stray formatting), but the "
                  "meaning is easy to recover"),
        ("Severe", "fragmented or malformed text that is hard to parse"))),
    Dimension("structural_integrity", "Structural integrity", "Is the step-by-step structure still there?", (
        ("Intact", "the steps are preserved"),
        ("Mildly broken", "some steps run together or lost their headers, but their order can still be followed"),
        ("Broken", "the flow of the reasoning can hardly be reconstructed"))),
    Dimension("semantic_coherence", "Semantic coherence", "Is the reasoning logically understandable?", (
        ("OK", "logically clear and readable"),
        ("Minor", "gaps in connectives or phrasing, but the reasoning stays clear"),
        ("Severe", "the logical flow is disrupted"))),
    Dimension("math_state", "Math state preserved", "Are the key quantities, intermediate results and the final "
              "answer present and consistent?", (
        ("Yes", "the key quantities and equations are present and numerically consistent"),
        ("Borderline", "small omissions (for example units), but the state can still be inferred"),
        ("No", "critical quantities are missing or inconsistent"))),
    Dimension("sft_suitability", "SFT suitability", "Could the pruned trace serve as supervision for fine-tuning "
              "a model?", (
        ("Yes", "usable as it is"),
        ("Borderline", "usable after a little cleanup"),
        ("No", "too degraded to train on"))),
)  # fmt: skip

SYSTEM_PROMPT = (
    "You assess reasoning traces that were shortened by deleting some of their tokens. You rate only the "
    "shortened trace, strictly by the rubric you are given, and you answer with one JSON object and nothing else."
)


def judge_prompt(question: str, reasoning: str, answer: str, pruned: str) -> str:
    """The judge's task for one pruned chain: the reference, the pruned chain, the rubric, the JSON form."""
    rubric = "\n".join(
        f"{d.key} — {d.question}\n" + "\n".join(f'  "{name}": {meaning}' for name, meaning in d.levels)
        for d in DIMENSIONS
    )
    form = ", ".join(f'"{d.key}": "{" | ".join(d.names)}"' for d in DIMENSIONS)
    return (
        "Below are a math word problem, its original step-by-step solution and final answer (for reference), and "
        "a SHORTENED version of the solution from which tokens were deleted. Rate the shortened solution.\n\n"
        f"## Question\n{question}\n\n## Original solution\n{reasoning}\n\n## Final answer\n{answer}\n\n"
        f"## Shortened solution\n{pruned}\n\n"
        f"## Rubric (one level per dimension)\n{rubric}\n\n"
        f"Reply with exactly this JSON object, choosing one level for each key: {{{form}}}"
    )


def parse_verdict(reply: dict) -> dict[str, str]:
    """The level chosen for each dimension (spelled as in ``DIMENSIONS``); InvalidReply for a missing key or
    an unknown level."""
    verdict = {}
    for dimension in DIMENSIONS:
        value = reply.get(dimension.key)
        canonical = {_folded(name): name for name in dimension.names}
        if not isinstance(value, str) or _folded(value) not in canonical:
            raise InvalidReply(f"{dimension.key}: {value!r} is not one of {', '.join(dimension.names)}")
        verdict[dimension.key] = canonical[_folded(value)]
    return verdict


def _folded(text: str) -> str:
    return re.sub(r"[\s_-]+", " ", text).strip().lower()


@dataclass
class AuditConfig(LLMSettings):
    """`prunelens audit`: the chains of a rankings folder at each keep fraction, rated by an LLM judge."""

    rankings: Path = setting(help="a rankings folder (`prunelens prune` or `rank` output)", result=True, input=True)
    keep: list[float] = setting(default_factory=lambda: [0.5, 0.7, 0.9], cli_type=str, parse=parse_keeps,
                                help="keep fractions in (0, 1], comma-separated")  # fmt: skip
    out: Path | None = setting(None, "output folder (default: <rankings>/audit-<llm model's last path part>)")
    limit: int | None = setting(None, "only the first N chains of the folder", minimum=1)
    concurrency: int = setting(4, "chains judged at once", minimum=1)
    retry_failed: bool = setting(False, "judge again the (chain, keep) pairs whose stored verdict failed",
                                 flag="--retry-failed")  # fmt: skip
    redo_changed: bool = setting(False, "judge again the chains whose ranking changed since (else refused)",
                                 flag="--redo-changed")  # fmt: skip

    def output_dir(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        return Path(self.rankings) / ("audit-" + re.sub(r"[^\w.-]+", "_", Path(self.llm_model).name))


@dataclass
class AuditSummary:
    """What an audit run left: every verdict record, the report's path and its table."""

    verdicts: list[dict]
    report: Path
    table: str


def judge(chat: ChatClient, settings: dict, sources: dict, item) -> dict:
    """One verdict record for (ranking, keep): the five levels, or ``status="failed"`` with the reason."""
    ranking, keep = item
    started = time.perf_counter()
    record = {"id": ranking.id, "method": ranking.method, "keep": keep, "n": ranking.n,
              "kept_tokens": len(ranking.kept_positions(keep)), "judge": settings,
              "sources": sources[ranking.id]}  # fmt: skip
    messages = [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": judge_prompt(ranking.question, ranking.reasoning, ranking.answer,
                                                         ranking.text(keep))}]  # fmt: skip
    try:
        record.update(status="ok", reason="", **chat.ask(messages, parse_verdict))
    except ReplyFailed as failure:
        record.update(status="failed", reason=str(failure))
    return {**record, "seconds": round(time.perf_counter() - started, 3)}


def audit_table(verdicts: list[dict], keeps: list[float]) -> str:
    """Table 3 of the paper: per dimension and level, the share of rated chains at each ρ, plus counts."""
    rated = {keep: [v for v in verdicts if v["keep"] == keep and v["status"] == "ok"] for keep in keeps}
    rows = []
    for dimension in DIMENSIONS:
        for level in dimension.names:
            counts = [(sum(v[dimension.key] == level for v in rated[k]), len(rated[k])) for k in keeps]
            rows.append([dimension.title, level, *(f"{hits / n:.1%}" if n else "–" for hits, n in counts)])
    rows.append(["chains rated", "", *(len(rated[k]) for k in keeps)])
    rows.append(["chains failed", "", *(sum(v["keep"] == k and v["status"] != "ok" for v in verdicts) for k in keeps)])
    return markdown_table(["dimension", "level", *(f"ρ = {k:g}" for k in keeps)], rows)


def run_audit(config: AuditConfig, progress: bool = True, log=log_line) -> AuditSummary:
    """Rate every (chain, ρ) not yet in ``verdicts.jsonl`` (with ``retry_failed`` also the failed ones; with
    ``redo_changed`` those whose ranking changed since, refused otherwise), then write ``audit.md``; a rerun
    resumes. Raises, after writing the report, when every pair it tried failed."""
    keeps = parse_keeps(config.keep)
    out_dir = config.output_dir()
    check_writable(out_dir)
    check_settings(out_dir, "audit", config)
    rankings = load_rankings(config.rankings)[: config.limit]
    if not rankings:
        raise PrunelensError(f"{config.rankings}: no finished rankings to audit")
    for ranking in rankings:
        short = [k for k in keeps if not ranking.reaches(k)]
        if short:
            raise PrunelensError(f"record {ranking.id!r}: its ranking stops at keep {ranking.deepest_keep:.3g}, "
                                 f"before {short[0]:g}; audit keep fractions it reaches")  # fmt: skip
    inputs = InputDigests(config)
    sources = {r.id: inputs.sources(r.id) for r in rankings}
    path = out_dir / VERDICTS_NAME
    latest = {(v["id"], v["keep"]): v for v in read_finished(path)}  # a later line of a pair replaces an earlier one
    changed = changed_records(latest.values(), sources)
    if not config.redo_changed:
        refuse_changes(out_dir, changed, "chain(s) were judged on other rankings", "judge them again")
    chat = ChatClient(config)
    settings = {"llm_model": config.llm_model, "server": server_host(config), "prompt_version": PROMPT_VERSION}
    redo = {pair for pair, v in latest.items() if pair[0] in changed or (config.retry_failed and v["status"] != "ok")}
    todo = [(r, k) for k in keeps for r in rankings if (r.id, k) not in latest or (r.id, k) in redo]
    failed = 0
    if todo:
        record_settings(out_dir, "audit", config)
    for verdict in concurrently(lambda item: judge(chat, settings, sources, item), todo, config.concurrency, "audit",
                                progress, log):  # fmt: skip
        if verdict["status"] != "ok":
            log(f"failed {verdict['id']} at keep {verdict['keep']:g}: {verdict['reason']}")
            failed += 1
        append_jsonl(path, verdict)
    wanted = {(r.id, k) for r in rankings for k in keeps}
    latest = {(v["id"], v["keep"]): v for v in read_finished(path)}
    verdicts = [v for pair, v in latest.items() if pair in wanted]
    table = audit_table(verdicts, keeps)
    rated = sum(v["status"] == "ok" for v in verdicts)
    empty = (f"**No chain was rated**: all {len(verdicts)} verdicts failed (first reason: "
             f"{next(v['reason'] for v in verdicts if v['status'] != 'ok')}); rerun with `--retry-failed`.\n\n"
             if verdicts and not rated else "")  # fmt: skip
    report = out_dir / REPORT_NAME
    write_atomic(
        report,
        f"# Comprehensibility audit: `{config.rankings}`\n\nJudge `{config.llm_model}` ({settings['server']}, prompt "
        f"version {PROMPT_VERSION}), rubric of paper App. E; share of the rated chains at each keep fraction ρ.\n\n"
        f"{empty}{table}\n"
    )
    if todo and failed == len(todo):
        raise PrunelensError(f"every verdict failed ({failed}); the failures are kept in {path} and the report in "
                             f"{report} says so: rerun with --retry-failed to try them again")  # fmt: skip
    return AuditSummary(verdicts, report, table)
