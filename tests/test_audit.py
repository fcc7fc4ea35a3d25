"""The comprehensibility audit (paper App. E): an LLM judge through the real openai client against a scripted
local server, its verdicts file, its Table-3-like report and `prunelens audit`."""

from __future__ import annotations

import json

import pytest
from openai_stub import (
    CHAINS,
    ScriptedServer,
    error,
    isolate_from_openai,
    make_ranking,
    ok,
    task,
    write_rankings,
)
from typer.testing import CliRunner

from prunelens.annotate.audit import (
    DIMENSIONS,
    AuditConfig,
    audit_table,
    parse_verdict,
    run_audit,
)
from prunelens.annotate.client import InvalidReply
from prunelens.cli import app
from prunelens.core.errors import PrunelensError
from prunelens.core.jsonl import append_jsonl, read_finished

FULL = {"corruption": "OK", "structural_integrity": "Intact", "semantic_coherence": "OK", "math_state": "Yes",
        "sft_suitability": "Yes"}  # fmt: skip
DAMAGED = {"corruption": "Minor", "structural_integrity": "Mildly broken", "semantic_coherence": "Minor",
           "math_state": "Borderline", "sft_suitability": "Borderline"}  # fmt: skip


def shortened(body: dict) -> str:
    prompt = task(body)
    return prompt.split("## Shortened solution\n", 1)[1].split("\n\n## Rubric", 1)[0]


def judge(body: dict):
    """The scripted judge: a chain that lost its last sentence is damaged, any other is fine."""
    return ok(json.dumps(DAMAGED if not shortened(body).rstrip().endswith(("24.", "total.")) else FULL))


@pytest.fixture(autouse=True)
def no_openai_env(monkeypatch, tmp_path):
    isolate_from_openai(monkeypatch, tmp_path)


@pytest.fixture
def rankings_dir(tmp_path):
    return write_rankings(tmp_path / "rankings")


def audit_config(server, rankings_dir, **overrides) -> AuditConfig:
    values = dict(rankings=rankings_dir, keep=[0.5, 1.0], llm_model="judge", base_url=server.url, max_retries=1,
                  retry_delay=0.01, timeout=5.0, concurrency=2)  # fmt: skip
    return AuditConfig(**{**values, **overrides})


def test_judge_sees_question_full_chain_and_pruned_chain_and_the_table_counts_levels(rankings_dir):
    with ScriptedServer([judge]) as server:
        summary = run_audit(audit_config(server, rankings_dir), progress=False)
    assert len(server.requests) == 4 and all(r["temperature"] == 0 for r in server.requests)
    assert all(r["response_format"] == {"type": "json_object"} for r in server.requests)
    by_chain = {}
    for request in server.requests:
        prompt = task(request)
        assert "How many clips?" in prompt and "## Final answer\n72" in prompt
        assert all(f'"{d.key}": "{" | ".join(d.names)}"' in prompt for d in DIMENSIONS)
        chain = next(k for k, text in CHAINS.items() if f"## Original solution\n{text}\n" in prompt)
        by_chain.setdefault(chain, set()).add(shortened(request))
    ranking = make_ranking("a", CHAINS["a"])
    assert by_chain["a"] == {ranking.text(0.5), ranking.text(1.0)}
    verdicts = {(v["id"], v["keep"]): v for v in summary.verdicts}
    assert verdicts[("a", 1.0)]["status"] == "ok" and verdicts[("a", 1.0)]["corruption"] == "OK"
    assert verdicts[("a", 0.5)]["sft_suitability"] == "Borderline" and verdicts[("a", 0.5)]["kept_tokens"] == 9  # 17 pieces: 8.5 rounds up
    assert verdicts[("a", 0.5)]["judge"] == {"llm_model": "judge", "server": "127.0.0.1", "prompt_version": "1"}
    report = summary.report.read_text()
    assert summary.report == rankings_dir / "audit-judge" / "audit.md" and summary.table in report
    assert "| dimension | level | ρ = 0.5 | ρ = 1 |" in report
    assert "| Corruption | OK | 0.0% | 100.0% |" in report and "| Corruption | Minor | 100.0% | 0.0% |" in report
    assert "| SFT suitability | Borderline | 100.0% | 0.0% |" in report and "| chains rated |  | 2 | 2 |" in report


def test_invalid_verdicts_are_retried_then_recorded_failed_and_the_run_goes_on(rankings_dir):
    def script(body):
        if "Natalia" in task(body):
            return ok(json.dumps({**FULL, "corruption": "Mostly fine"}))
        return judge(body)

    logged = []
    with ScriptedServer([script]) as server:
        summary = run_audit(audit_config(server, rankings_dir, concurrency=1), progress=False, log=logged.append)
    failed = [v for v in summary.verdicts if v["status"] == "failed"]
    assert sorted((v["id"], v["keep"]) for v in failed) == [("a", 0.5), ("a", 1.0)]
    assert all("corruption: 'Mostly fine' is not one of OK, Minor, Severe" in v["reason"] for v in failed)
    assert len(server.requests) == 6  # two attempts for each of a's two, one for each of b's
    assert "| chains rated |  | 1 | 1 |" in summary.table and "| chains failed |  | 1 | 1 |" in summary.table
    assert any(line.startswith("failed a at keep 0.5: invalid reply") for line in logged)


def test_rate_limit_and_malformed_replies_are_retried(rankings_dir):
    with ScriptedServer([error(429), ok("{not json"), judge]) as server:
        summary = run_audit(audit_config(server, rankings_dir, keep=[1.0], limit=1, max_retries=2), progress=False)
    assert [v["status"] for v in summary.verdicts] == ["ok"] and len(server.requests) == 3


def test_audit_resumes_and_judges_only_new_keeps(rankings_dir):
    with ScriptedServer([judge]) as server:
        run_audit(audit_config(server, rankings_dir, keep=[1.0], no_cache=True), progress=False)
        assert len(server.requests) == 2
        summary = run_audit(audit_config(server, rankings_dir, keep=[0.5, 1.0], no_cache=True), progress=False)
        assert len(server.requests) == 4 and len(summary.verdicts) == 4
        again = run_audit(audit_config(server, rankings_dir, keep=[0.5], no_cache=True), progress=False)
    assert len(server.requests) == 4 and {v["keep"] for v in again.verdicts} == {0.5}
    assert len(read_finished(rankings_dir / "audit-judge" / "verdicts.jsonl")) == 4
    other = audit_config(server, rankings_dir, llm_model="other", out=rankings_dir / "audit-judge")
    with pytest.raises(PrunelensError, match="llm_model='judge' \\(now 'other'\\)"):
        run_audit(other, progress=False)


def test_keep_beyond_a_ranking_is_a_one_line_error(rankings_dir, tmp_path):
    partial = make_ranking("short", CHAINS["b"])
    partial.deletion_order = partial.deletion_order[:2]
    append_jsonl(rankings_dir / "rankings.jsonl", partial.to_dict())
    with ScriptedServer([judge]) as server, pytest.raises(PrunelensError, match=r"record 'short': its ranking stops "
                                                                                r"at keep 0.833, before 0.5"):  # fmt: skip
        run_audit(audit_config(server, rankings_dir), progress=False)
    assert len(server.requests) == 0 and not (rankings_dir / "audit-judge").exists()


def test_parse_verdict_and_table():
    loose = {"corruption": "minor", "structural_integrity": "mildly_broken", "semantic_coherence": "OK",
             "math_state": "YES", "sft_suitability": "Borderline", "notes": "ignored"}  # fmt: skip
    assert parse_verdict(loose) == {**DAMAGED, "semantic_coherence": "OK", "math_state": "Yes"}
    with pytest.raises(InvalidReply, match="math_state: None is not one of Yes, Borderline, No"):
        parse_verdict({k: v for k, v in FULL.items() if k != "math_state"})
    verdicts = [{"keep": 0.7, "status": "ok", **FULL}, {"keep": 0.7, "status": "ok", **DAMAGED},
                {"keep": 0.7, "status": "ok", **FULL}, {"keep": 0.7, "status": "failed"}]  # fmt: skip
    table = audit_table(verdicts, [0.7, 0.9])
    assert "| Math state preserved | Yes | 66.7% | – |" in table and "| Math state preserved | No | 0.0% | – |" in table
    assert "| chains rated |  | 3 | 0 |" in table and "| chains failed |  | 1 | 0 |" in table
    assert len(table.splitlines()) == 2 + 3 * len(DIMENSIONS) + 2


def test_audit_cli(rankings_dir, tmp_path):
    with ScriptedServer([judge]) as server:
        common = ["audit", "--rankings", str(rankings_dir), "--base-url", server.url]
        result = CliRunner().invoke(app, [*common, "--keep", "0.5,1", "--llm-model", "judge", "--out", str(tmp_path / "a")])
        bad = CliRunner().invoke(app, [*common, "--keep", "0,2"])
    assert result.exit_code == 0, result.output
    assert "| Corruption | OK | 0.0% | 100.0% |" in result.output
    assert f"4 verdicts, 0 failed; report in {tmp_path / 'a' / 'audit.md'}" in result.output
    assert bad.exit_code == 2 and "error: --keep values must lie in (0, 1]" in bad.output
