"""The server scorer and the server generator against a real llama.cpp server (llama-cpp-python's, the ``llamacpp``
extra) serving smollm2-135m's GGUF as shipped (Q4_1, computed in quantised form), compared with the same weights
de-quantised in float32 under Hugging Face."""

import json

import numpy as np
import openai
import pytest
import torch
from conftest import write_chains
from typer.testing import CliRunner

from prunelens.bench.servers import llama_server
from prunelens.cli import app
from prunelens.datasets import get_benchmark, load_examples
from prunelens.datasets.tokenize import tokenize_chain
from prunelens.pruning.scorer import HFScorer
from prunelens.pruning.server_scorer import ServerScorer, ServerSettings

pytestmark = [pytest.mark.slow, pytest.mark.integration]
CHAIN_ID = "gsm8k-test-23"


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    with llama_server("smollm2-135m", threads=2, log=tmp_path_factory.mktemp("llama") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def chain(smollm2):
    example = next(e for e in load_examples("gsm8k", "test") if e.id == CHAIN_ID)
    return tokenize_chain(smollm2.tokenizer, get_benchmark("gsm8k"), example, None)


def test_echoed_log_probs_agree_with_hugging_face_token_by_token(server_url, chain, smollm2):
    ids = chain.prompt_ids + chain.reasoning_ids + chain.answer_ids
    text = smollm2.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    client = openai.OpenAI(base_url=server_url, api_key="local")
    reply = client.completions.create(model="smollm2-135m", prompt=text, echo=True, logprobs=0, max_tokens=1,
                                      temperature=0)  # fmt: skip
    echoed = reply.choices[0].logprobs.token_logprobs
    scored = len(chain.reasoning_ids) + len(chain.answer_ids)
    server = np.array(echoed[-1 - scored : -1] if len(reply.choices[0].text) > len(text) else echoed[-scored:])
    with torch.no_grad():
        logits = smollm2.model(torch.tensor([ids])).logits[0].double()
    hf = torch.log_softmax(logits, -1)[torch.arange(len(ids) - scored - 1, len(ids) - 1), ids[-scored:]].numpy()
    gap = np.abs(server - hf)
    print(f"\n{scored} tokens: mean |server - HF| {gap.mean():.4f} nats, max {gap.max():.4f}, "
          f"sums {server.sum():.3f} vs {hf.sum():.3f}")
    shifted = np.abs(server[1:] - hf[:-1]).mean()  # what an echo one position off would agree with
    assert gap.mean() < 0.1 and gap.max() < 1.0 and shifted > 10 * gap.mean()


def test_the_scorer_reads_the_llama_cpp_server_by_echoed_text(server_url, chain, smollm2):
    candidates = [chain.reasoning_ids[:i] + chain.reasoning_ids[i + 1 :] for i in (0, 9, 20)]
    scorer = ServerScorer(None, options=ServerSettings(base_url=server_url), tokenizer=smollm2.tokenizer)
    got = scorer.score(chain.prompt_ids, candidates, chain.answer_ids, "joint")
    hf = HFScorer(smollm2.model).score(chain.prompt_ids, candidates, chain.answer_ids, "joint")
    assert scorer.protocol == "echo-text"
    assert scorer.describe()["server_model"] == "smollm2-135m"
    print(f"\nsummed objectives, server - HF: {np.round(got - hf, 3).tolist()}; {scorer.stats.retokenized} retokenised")
    assert scorer.stats.retokenized <= 1
    assert np.abs(got - hf).max() < 1.0 and np.corrcoef(got, hf)[0, 1] > 0.99  # ~60 tokens of Q4_1 arithmetic


def test_prune_and_teach_through_the_llama_cpp_server(server_url, tmp_path):
    """Short: llama-cpp-python echoes log-probs slowly (it sorts the whole vocabulary of every prompt position in
    Python, about 50 ms a token here), so the chain has 6 tokens and one step."""
    runner = CliRunner()
    chains = write_chains(tmp_path / "chains.jsonl", [{"id": "c1", "question": "2 + 3?", "reasoning": "2 + 3 = 5.",
                                                       "answer": "5"}])  # fmt: skip
    pruned = runner.invoke(app, ["prune", "--model", "smollm2-135m", "--chains", str(chains), "--steps", "1",
                                 "--scorer", "server", "--base-url", server_url,
                                 "--out", str(tmp_path / "prune")])  # fmt: skip
    assert pruned.exit_code == 0, pruned.output
    ranking = json.loads((tmp_path / "prune" / "rankings.jsonl").read_text())
    assert len(ranking["deletion_order"]) == 1
    assert {k: ranking["settings"][k] for k in ("server", "server_model", "protocol")} == {
        "server": server_url, "server_model": "smollm2-135m", "protocol": "echo-text"}
    taught = runner.invoke(app, ["distill", "teach", "--model", "smollm2-135m", "--dataset", "gsm8k", "--ids", CHAIN_ID,
                                 "--samples", "2", "--max-new-tokens", "32", "--generator", "server", "--base-url",
                                 server_url, "--out", str(tmp_path / "teach")])  # fmt: skip
    assert taught.exit_code == 0, taught.output
    rows = [json.loads(line) for name in ("chains.jsonl", "rejected.jsonl") if (tmp_path / "teach" / name).exists()
            for line in (tmp_path / "teach" / name).read_text().splitlines()]  # fmt: skip
    assert len(rows) == 1 and rows[0]["samples"] == 2 and rows[0]["generated_tokens"] > 2
