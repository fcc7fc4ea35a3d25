"""The LLM annotator through the real openai client against a scripted local server, its response cache,
`prunelens annotate` / `annotate-stability`, and (integration) `transformers serve` with smollm2-135m."""

from __future__ import annotations

import json
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from conftest import write_chains
from openai_stub import (
    CHAINS,
    ScriptedServer,
    error,
    isolate_from_openai,
    labels_reply,
    make_ranking,
    numbered_words,
    ok,
    word_label,
    write_rankings,
)
from typer.testing import CliRunner

from prunelens.annotate.client import (
    ChatClient,
    InvalidReply,
    LLMSettings,
    ReplyFailed,
    parse_json_object,
)
from prunelens.annotate.labels import CATEGORIES, load_annotations, split_words_and_symbols
from prunelens.bench.servers import free_port, served
from prunelens.annotate.llm import parse_labels
from prunelens.annotate.rules import RuleAnnotator
from prunelens.annotate.run import (
    AnnotateConfig,
    StabilityConfig,
    StabilityLLMSettings,
    annotate_rankings,
    annotation_stability,
)
from prunelens.cli import app
from prunelens.core.errors import PrunelensError, SettingsError
from prunelens.core.registry import ANNOTATORS
from prunelens.core.settings import build_config


def chain_of(body: dict) -> str:
    """Which of CHAINS a request is about."""
    words = numbered_words(body)
    return next(key for key, text in CHAINS.items() if [w for w, _, _ in split_words_and_symbols(text)] == words)


@pytest.fixture
def rankings_dir(tmp_path) -> Path:
    return write_rankings(tmp_path / "rankings")


@pytest.fixture(autouse=True)
def no_openai_env(monkeypatch, tmp_path):
    isolate_from_openai(monkeypatch, tmp_path)


def config_with(server, rankings_dir, **overrides) -> AnnotateConfig:
    values = dict(rankings=rankings_dir, annotator="llm", llm_model="stub-model", base_url=server.url, concurrency=1,
                  max_retries=2, retry_delay=0.01, timeout=5.0, no_cache=True)  # fmt: skip
    return build_config(AnnotateConfig, {**values, **overrides})  # the LLM settings go into config.options


def test_the_llm_annotators_settings_are_its_registered_options():
    assert ANNOTATORS.options_type("llm") is LLMSettings and ANNOTATORS.options_type("offline") is None
    config = build_config(AnnotateConfig, {"rankings": "r", "annotator": "llm", "llm_model": "m", "base_url": "u",
                                           "max_retries": 1, "concurrency": 2})  # fmt: skip
    assert config.options == LLMSettings(llm_model="m", base_url="u", max_retries=1) and config.concurrency == 2
    assert not hasattr(config, "llm_model")  # no connection settings on the config itself
    assert AnnotateConfig(rankings=Path("r"), annotator="llm").options == LLMSettings()  # its defaults when not given
    assert AnnotateConfig(rankings=Path("r")).options is None  # the offline rules have no settings
    annotator = ANNOTATORS.load("llm")(config)
    assert annotator.options is config.options and annotator.chat.settings is config.options
    assert annotator.settings() == {"llm_model": "m", "server": "u", "prompt_version": "1"}
    assert RuleAnnotator(AnnotateConfig(rankings=Path("r"))).options is None
    with pytest.raises(SettingsError, match="^llm_model is a setting of annotator llm, not offline$"):
        build_config(AnnotateConfig, {"rankings": "r", "annotator": "offline", "llm_model": "m"})
    with pytest.raises(SettingsError, match="annotator 'offline' takes no options, not LLMSettings"):
        AnnotateConfig(rankings=Path("r"), annotator="offline", options=LLMSettings())


def test_an_llm_setting_with_the_offline_annotator_is_refused_in_one_line(rankings_dir):
    for command in ("annotate", "annotate-stability"):
        result = CliRunner().invoke(app, [command, "--rankings", str(rankings_dir), "--annotator", "offline",
                                          "--llm-model", "x"])  # fmt: skip
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and lines == ["error: --llm-model is a setting of --annotator llm, not offline"]
    assert not (rankings_dir / "annotations-offline.jsonl").exists()  # refused before anything ran
    shown = CliRunner().invoke(app, ["annotate", "--help"], env={"COLUMNS": "240"}).output
    assert "LLM: the model name sent to the server" in shown and "llm: LLM:" not in shown  # named once


def test_valid_reply_labels_every_token_from_its_words(rankings_dir):
    with ScriptedServer([labels_reply]) as server:
        annotations = annotate_rankings(config_with(server, rankings_dir), progress=False)
    assert len(server.requests) == 2 and all(a.status == "ok" for a in annotations.values())
    a = annotations["a"]
    ranking = make_ranking("a", CHAINS["a"])
    words = [w for w, _, _ in split_words_and_symbols(CHAINS["a"])]
    assert len(a.labels) == ranking.n and a.word_labels == [word_label(w) for w in words]
    by_piece = dict(zip(ranking.reasoning_tokens, a.labels, strict=True))
    assert by_piece[" 48"] == "SymbMath" and by_piece[" She"] == "CoRef" and by_piece[" sold"] == "Grammar"
    assert by_piece[" clips."] == "Grammar" and by_piece[" 24."] == "SymbMath"  # a piece spanning a number and "."
    assert a.settings == {"llm_model": "stub-model", "server": "127.0.0.1", "prompt_version": "1"}
    request = server.requests[0]
    assert request["model"] == "stub-model" and request["temperature"] == 0
    assert request["response_format"] == {"type": "json_object"}
    prompt = request["messages"][-1]["content"]
    assert all(name in prompt for name in CATEGORIES) and " > ".join(CATEGORIES) in prompt
    assert numbered_words(request) == [w for w, _, _ in split_words_and_symbols(CHAINS[chain_of(request)])]


def test_malformed_then_valid_reply_succeeds_after_a_retry_that_names_the_problem(rankings_dir):
    with ScriptedServer([ok('{"labels": [{"i": 0,'), labels_reply]) as server:
        annotations = annotate_rankings(config_with(server, rankings_dir, limit=1), progress=False)
    assert annotations["a"].status == "ok" and len(server.requests) == 2
    retry = server.requests[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": '{"labels": [{"i": 0,'}
    assert "malformed JSON" in retry[-1]["content"]


def test_always_malformed_chain_is_recorded_failed_and_the_run_goes_on(rankings_dir):
    def script(body):
        return ok("Sure! Here are the labels: SymbMath, Grammar") if chain_of(body) == "a" else labels_reply(body)

    logged = []
    with ScriptedServer([script]) as server:
        annotations = annotate_rankings(config_with(server, rankings_dir), progress=False, log=logged.append)
    assert annotations["a"].status == "failed" and annotations["a"].labels == []
    assert "malformed JSON" in annotations["a"].reason and "after 3 attempts" in annotations["a"].reason
    assert annotations["b"].status == "ok"
    assert sum(chain_of(r) == "a" for r in server.requests) == 3  # max_retries=2: three attempts, no more
    assert any(line.startswith("failed a: invalid reply") for line in logged)


def test_missing_indices_and_unknown_labels_are_retried_then_fail_with_the_reason(rankings_dir):
    def unknown(body):
        return ok(json.dumps({"labels": [{"i": i, "label": "Noun"} for i in range(len(numbered_words(body)))]}))

    with ScriptedServer([lambda body: labels_reply(body, skip=3), unknown, labels_reply]) as server:
        assert annotate_rankings(config_with(server, rankings_dir, limit=1), progress=False)["a"].status == "ok"
    assert len(server.requests) == 3
    n_words = len(split_words_and_symbols(CHAINS["a"]))
    assert f"1 of {n_words} words unlabelled (indices 3)" in server.requests[1]["messages"][-1]["content"]
    assert "unknown label 'Noun'" in server.requests[2]["messages"][-1]["content"]
    with ScriptedServer([lambda body: labels_reply(body, skip=0)]) as server, pytest.raises(
            PrunelensError, match=r"every chain failed \(1; first: a: .*--retry-failed"):  # fmt: skip
        annotate_rankings(config_with(server, rankings_dir, limit=1, out=rankings_dir / "x.jsonl"), progress=False)
    failed = load_annotations(rankings_dir / "x.jsonl")  # the failure is stored, with its reason
    assert failed["a"].status == "failed" and "words unlabelled (indices 0)" in failed["a"].reason


def test_rate_limit_and_server_error_are_retried(rankings_dir):
    with ScriptedServer([error(429, "slow down"), error(503), labels_reply]) as server:
        annotations = annotate_rankings(config_with(server, rankings_dir, limit=1), progress=False)
    assert annotations["a"].status == "ok" and len(server.requests) == 3
    assert server.requests[2]["messages"] == server.requests[0]["messages"]  # HTTP errors resend as it was


def test_timeouts_are_retried_then_fail(rankings_dir):
    slow = lambda body: labels_reply(body, delay=3.0)
    started = time.perf_counter()
    with ScriptedServer([slow, labels_reply]) as server:
        annotations = annotate_rankings(config_with(server, rankings_dir, limit=1, timeout=0.3), progress=False)
    assert annotations["a"].status == "ok" and len(server.requests) == 2
    with ScriptedServer([slow]) as server, pytest.raises(PrunelensError, match="every chain failed"):
        annotate_rankings(config_with(server, rankings_dir, limit=1, timeout=0.3, max_retries=1,
                                      out=rankings_dir / "slow.jsonl"), progress=False)  # fmt: skip
    failed = load_annotations(rankings_dir / "slow.jsonl")
    assert failed["a"].status == "failed" and failed["a"].reason == "timed out after 0.3 s (after 2 attempts)"
    assert time.perf_counter() - started < 4


def test_response_cache_avoids_requests_and_no_cache_bypasses_it(rankings_dir, tmp_path):
    cache = tmp_path / "llm-cache"
    cached = partial(config_with, no_cache=False)
    with ScriptedServer([labels_reply]) as server:
        first = annotate_rankings(cached(server, rankings_dir, cache_dir=cache, out=tmp_path / "1.jsonl"), False)
        assert len(server.requests) == 2 and len(list(cache.rglob("*.json"))) == 2
        second = annotate_rankings(cached(server, rankings_dir, cache_dir=cache, out=tmp_path / "2.jsonl"), False)
        assert len(server.requests) == 2  # every reply came from the cache
        assert {k: a.labels for k, a in second.items()} == {k: a.labels for k, a in first.items()}
        annotate_rankings(cached(server, rankings_dir, cache_dir=cache, no_cache=True, out=tmp_path / "3.jsonl"),
                          progress=False)  # fmt: skip
        assert len(server.requests) == 4
        other = tmp_path / "unused-cache"
        annotate_rankings(cached(server, rankings_dir, cache_dir=other, no_cache=True, out=tmp_path / "4.jsonl"),
                          progress=False)  # fmt: skip
        assert len(server.requests) == 6 and not other.exists()
        annotate_rankings(cached(server, rankings_dir, out=tmp_path / "5.jsonl"), progress=False)
    assert len(list((tmp_path / "cache" / "llm").rglob("*.json"))) == 2  # default: $PRUNELENS_CACHE/llm


def test_invalid_replies_are_not_cached(tmp_path):
    settings = LLMSettings(llm_model="m", max_retries=0, retry_delay=0, cache_dir=tmp_path / "c")
    with ScriptedServer([ok("not json"), ok('{"x": 1}')]) as server:
        chat = ChatClient(LLMSettings(**{**vars(settings), "base_url": server.url}))
        with pytest.raises(ReplyFailed, match="malformed JSON"):
            chat.ask([{"role": "user", "content": "hi"}], lambda reply: reply)
        assert not (tmp_path / "c").exists()
        assert chat.ask([{"role": "user", "content": "hi"}], lambda reply: reply) == {"x": 1}
        assert chat.ask([{"role": "user", "content": "hi"}], lambda reply: reply) == {"x": 1}
    assert len(server.requests) == 2


def test_a_temperature_the_model_refuses_is_dropped(tmp_path):
    refusal = error(400, "Unsupported value: 'temperature' does not support 0 with this model.")
    with ScriptedServer([refusal, ok('{"x": 1}')]) as server:
        chat = ChatClient(LLMSettings(llm_model="m", base_url=server.url, no_cache=True, retry_delay=0))
        assert chat.ask([{"role": "user", "content": "hi"}], lambda reply: reply) == {"x": 1}
        assert chat.ask([{"role": "user", "content": "again"}], lambda reply: reply) == {"x": 1}
    assert [("temperature" in r) for r in server.requests] == [True, False, False]


def test_refused_requests_stop_the_run_with_one_line(rankings_dir):
    with ScriptedServer([error(401, "Incorrect API key provided")]) as server:
        with pytest.raises(PrunelensError, match=r"refused the request: HTTP 401 .*Incorrect API key"):
            annotate_rankings(config_with(server, rankings_dir), progress=False)
        result = CliRunner().invoke(app, ["annotate", "--rankings", str(rankings_dir), "--annotator", "llm",
                                          "--base-url", server.url, "--llm-model", "m"])  # fmt: skip
    assert result.exit_code == 2 and "error: the server refused the request: HTTP 401" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_openai_without_a_key_is_a_one_line_error(rankings_dir):
    with pytest.raises(PrunelensError, match="set OPENAI_API_KEY"):
        annotate_rankings(AnnotateConfig(rankings=rankings_dir, annotator="llm"), progress=False)


def test_parse_labels_and_json_objects():
    assert parse_labels({"labels": [{"i": 1, "label": "grammar"}, {"i": 0, "label": " SymbMath"}]}, 2) == [
        "SymbMath", "Grammar"]  # fmt: skip
    for reply, problem in [({"labels": {"0": "Grammar"}}, 'no "labels" list'),
                           ({"labels": [{"i": "0", "label": "Grammar"}]}, "integer index"),
                           ({"labels": [{"i": 2, "label": "Grammar"}]}, "index 2 outside 0..1"),
                           ({"labels": [{"i": 0, "label": "Grammar"}] * 2}, "index 0 labelled twice")]:  # fmt: skip
        with pytest.raises(InvalidReply, match=problem):
            parse_labels(reply, 2)
    assert parse_json_object('```json\n{"a": 1}\n```') == {"a": 1}
    for text, problem in [("", "empty reply"), ("[1]", "expected a JSON object"), ("{", "malformed JSON")]:
        with pytest.raises(InvalidReply, match=problem):
            parse_json_object(text)


def test_annotate_cli_prints_counts_and_path_and_resumes(rankings_dir):
    def script(body):
        return ok("no") if chain_of(body) == "b" else labels_reply(body)

    args = ["annotate", "--rankings", str(rankings_dir), "--annotator", "llm", "--base-url", None, "--llm-model", "m",
            "--max-retries", "0", "--no-cache", "--concurrency", "2"]  # fmt: skip
    with ScriptedServer([script]) as server:
        args[args.index(None)] = server.url
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert (f"1 chains labelled, 1 failed (rerun with --retry-failed to try them again); labels in "
                f"{rankings_dir / 'annotations-llm.jsonl'}") in result.output
        rerun = CliRunner().invoke(app, args)
    assert rerun.exit_code == 0 and len(server.requests) == 2  # finished (and failed) chains are not asked again
    records = [json.loads(line) for line in (rankings_dir / "annotations-llm.jsonl").read_text().splitlines()]
    assert sorted((r["id"], r["status"]) for r in records) == [("a", "ok"), ("b", "failed")]


def test_stability_reports_token_agreement_and_failures(rankings_dir, tmp_path):
    seen = set()

    def script(body):
        key = chain_of(body)
        if key == "b":
            return ok("{}")
        first_time = key not in seen
        seen.add(key)
        reply = json.loads(labels_reply(body).content)
        if not first_time:
            reply["labels"][0]["label"] = "MetaDisc"  # the second pass disagrees on "Natalia"
        return ok(json.dumps(reply))

    with ScriptedServer([script]) as server:
        options = StabilityLLMSettings(base_url=server.url, llm_model="m", max_retries=0, cache_dir=tmp_path / "c")
        stability = annotation_stability(StabilityConfig(rankings=rankings_dir, options=options, concurrency=1),
                                         progress=False)  # fmt: skip
    n_tokens = make_ranking("a", CHAINS["a"]).n
    assert stability.agreements == {"a": pytest.approx((n_tokens - 1) / n_tokens)} and stability.failed == ["b"]
    assert len(server.requests) == 4 and not (tmp_path / "c").exists()  # cache off in both passes
    assert stability.report == rankings_dir / "stability-llm" / "stability.md"
    report = stability.report.read_text()
    assert f"| llm | m | 1 | 1 | {(n_tokens - 1) / n_tokens:.3f} |" in report and "| b | invalid reply" in report
    with ScriptedServer([script]) as server:
        rerun = annotation_stability(build_config(StabilityConfig, {"rankings": rankings_dir, "base_url": server.url,
                                                                    "llm_model": "m"}), progress=False)  # fmt: skip
    assert len(server.requests) == 0 and rerun.agreements == stability.agreements  # both passes resume


def test_stability_cli(rankings_dir, tmp_path):
    with ScriptedServer([labels_reply]) as server:
        result = CliRunner().invoke(app, ["annotate-stability", "--rankings", str(rankings_dir), "--base-url",
                                          server.url, "--llm-model", "m", "--out", str(tmp_path / "s")])  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = "token-level agreement over 2 chains: mean 1.000, median 1.000, 100% of chains >= 0.97; 0 chains failed"
    assert expected in result.output
    assert f"report in {tmp_path / 's' / 'stability.md'}" in result.output and len(server.requests) == 4


@pytest.mark.slow
@pytest.mark.integration
def test_transformers_serve_end_to_end(tmp_path, smollm2_dir):
    """A real OpenAI-compatible server (`transformers serve` with the local smollm2-135m checkpoint) answers the
    annotator's requests through the real openai client. The 135M model cannot follow the label format (at
    temperature 0 it repeats itself instead of writing JSON), so the chain is recorded as failed with the reply's
    problem, not a connection error, and the run says so in one line. Bounded: 60 s for the server to come up,
    two requests of at most 30 s each."""
    from prunelens.rankers.run import RankConfig, run_rank

    chains = write_chains(tmp_path / "chains.jsonl", [{"id": "short", "question": "Tom has 3 apples and buys 2. How "
                          "many?", "reasoning": "Tom has 3 + 2 = 5 apples.", "answer": "5"}])  # fmt: skip
    run_rank(RankConfig(method="truncation", chains=chains, model=str(smollm2_dir), out=tmp_path / "rank", threads=1),
             progress=False)  # fmt: skip
    port = free_port()
    command = [str(Path(sys.executable).with_name("transformers")), "serve", str(smollm2_dir), "--host", "127.0.0.1",
               "--port", str(port), "--device", "cpu", "--dtype", "float32"]  # fmt: skip
    env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with served(command, port, "transformers serve", tmp_path / "serve.log", startup_seconds=60, env=env) as url:
        settings = dict(llm_model=str(smollm2_dir), base_url=url, no_cache=True, max_retries=1, retry_delay=0,
                        timeout=30, max_tokens=200)  # fmt: skip
        with pytest.raises(PrunelensError, match="every chain failed"):
            config = AnnotateConfig(rankings=tmp_path / "rank", annotator="llm", options=LLMSettings(**settings))
            annotate_rankings(config, progress=False)
    annotation = load_annotations(tmp_path / "rank" / "annotations-llm.jsonl")["short"]
    assert annotation.status == "failed" and annotation.labels == []
    assert annotation.reason.startswith("invalid reply: malformed JSON") and "(after 2 attempts)" in annotation.reason
    print(f"transformers serve + smollm2-135m: {annotation.reason}")


def test_replies_are_cached_per_server():
    from prunelens.annotate.client import request_key

    messages = [{"role": "user", "content": "label these words"}]
    same = request_key("m", messages, {"temperature": 0}, "http://127.0.0.1:8001/v1")
    assert same == request_key("m", messages, {"temperature": 0}, "http://127.0.0.1:8001/v1")
    assert same != request_key("m", messages, {"temperature": 0}, "http://127.0.0.1:8002/v1")


def test_an_unwritable_cache_costs_requests_not_the_run(rankings_dir, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    with ScriptedServer([labels_reply] * 2) as server:
        annotations = annotate_rankings(config_with(server, rankings_dir, no_cache=False, cache_dir=blocked),
                                        progress=False)  # fmt: skip
    assert all(a.status == "ok" for a in annotations.values())
