"""The ``server`` scorer against scripted OpenAI-compatible completions servers (tests/completions_stub.py) that
compute log-probs with a real tiny model: each protocol matches the in-process scorer, requests are batched and
retried, failures are one line, and `prunelens prune --scorer server` records the server it used."""

import json

import numpy as np
import pytest
from completions_stub import MODEL_NAME, CompletionsServer
from conftest import tiny_model, write_chains
from transformers import AutoTokenizer
from typer.testing import CliRunner

from prunelens.cli import app
from prunelens.core.errors import PrunelensError
from prunelens.pruning.run import PruneConfig
from prunelens.pruning.scorer import HFScorer
from prunelens.pruning.server_scorer import ServerScorer, ServerSettings


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    return AutoTokenizer.from_pretrained(smollm2_dir)


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_model("llama", seed=5, vocab=len(tokenizer))


@pytest.fixture(scope="module")
def chain(tokenizer):
    """A chat prompt (it starts with BOS, <|im_start|>), a reasoning and an answer, as smollm2 tokenises them."""
    prompt = tokenizer("<|im_start|>user\nHow many clips?<|im_end|>\n<|im_start|>assistant\n")["input_ids"]
    reasoning = tokenizer("Natalia sold 48 clips, then half as many: 48 / 2 = 24.")["input_ids"]
    answer = tokenizer(" The answer is 72.")["input_ids"]
    return prompt, reasoning, answer


def deletions(reasoning):
    """Every candidate of one greedy step, plus a shorter one (screening mixes lengths)."""
    return [reasoning[:i] + reasoning[i + 1 :] for i in range(len(reasoning))] + [reasoning[2:]]


def scorer_for(server, tokenizer=None, **settings):
    options = ServerSettings(base_url=server.url, retry_delay=0, **settings)
    return ServerScorer(None, token_budget=200, options=options, tokenizer=tokenizer)


@pytest.mark.parametrize("objective", ["joint", "answer"])
@pytest.mark.parametrize("answers", [("prompt_logprobs", "echo"), ("echo",)])
def test_token_id_protocols_match_the_in_process_scorer(model, chain, objective, answers):
    prompt, reasoning, answer = chain
    candidates = deletions(reasoning)
    with CompletionsServer(model, answers=answers) as server:
        scorer = scorer_for(server)
        got = scorer.score(prompt, candidates, answer, objective)
        bodies = server.bodies
    np.testing.assert_allclose(got, HFScorer(model).score(prompt, candidates, answer, objective), atol=1e-9)
    assert scorer.protocol == answers[0]
    assert scorer.describe() == {"server": server.url, "server_model": MODEL_NAME, "protocol": answers[0],
                                 "retokenized": 0}  # fmt: skip
    probes = 3 - len(answers)  # a refused probe of prompt_logprobs, then the one answered
    assert sum(len(b["prompt"]) for b in bodies) == len(candidates) + probes - 1
    assert max(sum(map(len, b["prompt"])) for b in bodies[probes:]) <= 200  # batches of at most the token budget
    assert len(bodies) - probes < len(candidates) - 1


def test_a_text_only_server_is_scored_by_echoed_text(model, chain, tokenizer):
    prompt, reasoning, answer = chain
    split = tokenizer(" t")["input_ids"] + tokenizer("he")["input_ids"]  # " the" spelt in two tokens
    assert tokenizer(" the")["input_ids"] != split
    candidates = deletions(reasoning)[:6] + [reasoning[:3] + split + reasoning[3:]]
    with CompletionsServer(model, tokenizer, answers=("echo",), text_only=True) as server:
        scorer = scorer_for(server, tokenizer)
        got = scorer.score(prompt, candidates, answer, "joint")
    expected = HFScorer(model).score(prompt, candidates, answer, "joint")
    assert scorer.protocol == "echo-text"
    np.testing.assert_allclose(got[:6], expected[:6], atol=1e-9)
    assert scorer.stats.retokenized == 1 and abs(got[6] - expected[6]) > 1e-3  # the server read " the", one token
    assert scorer.describe()["retokenized"] == 1 and scorer.describe()["retokenized"] == 0  # counted per chain
    with pytest.raises(PrunelensError, match="start with BOS .*#1983"):
        scorer.score(prompt[1:], candidates[:1], answer, "joint")
    silent = lambda body: ("", "length")  # noqa: E731 - a generated token that adds no text (a special token)
    with CompletionsServer(model, tokenizer, answers=("echo",), text_only=True, completion=silent) as server:
        np.testing.assert_allclose(scorer_for(server, tokenizer).score(prompt, candidates[:3], answer, "joint"),
                                   expected[:3], atol=1e-9)  # fmt: skip


def test_failed_requests_are_retried_and_refusals_are_one_line(model, chain):
    prompt, reasoning, answer = chain
    with CompletionsServer(model, failures=[503, 429]) as server:
        scorer = scorer_for(server)
        assert scorer.score(prompt, [reasoning], answer, "joint")[0] == pytest.approx(
            HFScorer(model).score(prompt, [reasoning], answer, "joint")[0], abs=1e-9)
        assert scorer.stats.requests == 1 and len(server.bodies) == 3
        assert scorer.protocol == "prompt_logprobs"  # a 503 or 429 while probing is retried, not a refusal
    with CompletionsServer(model) as server:
        scorer = scorer_for(server, max_retries=2)
        scorer.score(prompt, [reasoning], answer, "joint")  # the protocol is found
        server.failures = [500] * 3
        with pytest.raises(PrunelensError, match=r"HTTP 500 .*\(after 3 attempts\)"):
            scorer.score(prompt, [reasoning], answer, "joint")
    with CompletionsServer(model, failures=[500] * 2) as server:  # a probe answered 500 moves on without retries
        with pytest.raises(PrunelensError, match="prompt_logprobs: HTTP 500 .*; echo: HTTP 500 .*; echo-text"):
            scorer_for(server).score(prompt, [reasoning], answer, "joint")
        assert len(server.bodies) == 2
    with CompletionsServer(model, answers=()) as server:
        refusals = "gave no prompt log-probs \\(prompt_logprobs: no prompt_logprobs.*; echo-text: text prompts need"
        with pytest.raises(PrunelensError, match=refusals):
            scorer_for(server).score(prompt, [reasoning], answer, "joint")
    with pytest.raises(PrunelensError, match="needs --base-url"):
        ServerScorer(None, options=ServerSettings())
    with pytest.raises(PrunelensError, match="unknown server protocol 'grpc'"):
        ServerSettings(protocol="grpc")


def test_prune_through_a_server_matches_in_process_pruning_and_records_the_server(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    chains = write_chains(tmp_path / "chains.jsonl", [
        {"id": "c1", "question": "Tom has 3 apples and buys 2. How many?", "reasoning": "3 + 2 = 5 apples.",
         "answer": "5"}])  # fmt: skip
    served = AutoModelForCausalLM.from_pretrained(tiny_model_dir, torch_dtype="float32").eval()
    common = ["prune", "--model", str(tiny_model_dir), "--chains", str(chains), "--steps", "3", "--threads", "1"]
    runner = CliRunner()
    with CompletionsServer(served) as server:
        result = runner.invoke(app, [*common, "--scorer", "server", "--base-url", server.url, "--out",
                                     str(tmp_path / "server")])  # fmt: skip
    assert result.exit_code == 0, result.output
    local = runner.invoke(app, [*common, "--scorer", "naive", "--out", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output
    read = lambda name: json.loads((tmp_path / name / "rankings.jsonl").read_text().splitlines()[0])  # noqa: E731
    remote, here = read("server"), read("local")
    assert remote["deletion_order"] == here["deletion_order"] and len(remote["deletion_order"]) == 3
    np.testing.assert_allclose(remote["step_scores"], here["step_scores"], atol=1e-4)
    recorded = {key: remote["settings"].get(key) for key in ("server", "server_model", "protocol", "retokenized")}
    assert recorded == {"server": server.url, "server_model": MODEL_NAME, "protocol": "prompt_logprobs",
                        "retokenized": 0}  # fmt: skip
    assert "warning" not in result.output
    assert remote["scorer"] == "server"


def test_settings_a_server_scorer_cannot_take_are_refused_in_one_line():
    with pytest.raises(PrunelensError, match="screen_dtype needs the model's weights here; scorer 'server'"):
        PruneConfig(scorer="server", screen=4, screen_dtype="bfloat16")
    result = CliRunner().invoke(app, ["prune", "--scorer", "fast", "--base-url", "http://127.0.0.1:1/v1"])
    assert result.exit_code != 0 and "--base-url is a setting of --scorer server, not fast" in result.output
