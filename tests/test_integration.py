"""End to end with the real smollm2-135m on short GSM8K gold chains."""

import json

import numpy as np
import pytest
import torch
from conftest import DATA_DIR
from typer.testing import CliRunner

from prunelens.cli import app
from prunelens.datasets import get_benchmark, load_examples
from prunelens.datasets.tokenize import tokenize_chain
from prunelens.core.objectives import Objective
from prunelens.pruning.scorer import HFScorer

pytestmark = pytest.mark.integration


def shortest_test_ids(k):
    examples = load_examples("gsm8k", "test", data_dir=DATA_DIR)[:60]
    return [e.id for e in sorted(examples, key=lambda e: len(e.reasoning))[:k]]


def test_scorer_matches_logits_on_smollm2(smollm2):
    example = next(e for e in load_examples("gsm8k", "test", data_dir=DATA_DIR) if e.id == shortest_test_ids(1)[0])
    chain = tokenize_chain(smollm2.tokenizer, get_benchmark("gsm8k"), example, smollm2.max_positions)
    ids = torch.tensor([chain.prompt_ids + chain.reasoning_ids + chain.answer_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(smollm2.model(ids).logits[0].double(), -1)
    for objective in Objective:
        first = objective.first_target(len(chain.prompt_ids), len(chain.reasoning_ids))
        direct = sum(logprobs[t - 1, ids[0, t]].item() for t in range(first, ids.shape[1]))
        score = HFScorer(smollm2.model).score(chain.prompt_ids, [chain.reasoning_ids], chain.answer_ids, objective)
        assert score[0] == pytest.approx(direct, abs=1e-3)


def test_prune_cli_on_gsm8k(tmp_path):
    ids = shortest_test_ids(2)
    out = tmp_path / "run"
    args = ["prune", "--ids", ",".join(ids), "--steps", "2", "--keep", "0.9", "--out", str(out),
            "--data-dir", str(DATA_DIR)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "--- keep 1\n" in result.output and "[-" in result.output and str(out) in result.output
    records = [json.loads(line) for line in (out / "rankings.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ids
    for record in records:
        assert len(record["deletion_order"]) == 2 and record["model"] == "smollm2-135m"
        assert np.isfinite(record["step_scores"]).all() and len(record["reasoning_tokens"]) == len(record["reasoning_ids"])
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "(0 new)" in again.output


def test_cli_reports_bad_input_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["prune", "--dataset", "gsm9k", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["error: unknown dataset 'gsm9k' (known: gsm8k, math500, mmlu_pro, arith)"]


def test_hook_backends_agree_on_smollm2(smollm2_dir):
    """All four backends give the same received attention (30 layers × 9 query heads) on a real chain."""
    from prunelens.models import load_model
    from prunelens.probes.backends import make_backend
    from prunelens.core.registry import BACKENDS

    loaded = load_model(str(smollm2_dir), attn_implementation="eager")
    loaded.name = "smollm2-135m"
    example = load_examples("gsm8k", "test", data_dir=DATA_DIR)[0]
    chain = tokenize_chain(loaded.tokenizer, get_benchmark("gsm8k"), example, loaded.max_positions)
    ids = chain.prompt_ids + chain.reasoning_ids + chain.answer_ids
    results = {}
    for name in BACKENDS.names():
        results[name] = make_backend(name, loaded).received_attention(ids)
    assert results["hf"].shape == (30, 9, len(ids))
    for name, received in results.items():
        np.testing.assert_allclose(received, results["hf"], atol=1e-4, err_msg=name)


@pytest.mark.slow
def test_fast_scorer_equals_naive_on_smollm2(smollm2):
    from prunelens.pruning.greedy import greedy_prune
    from prunelens.pruning.prefix_scorer import PrefixCacheScorer

    example = next(e for e in load_examples("gsm8k", "test", data_dir=DATA_DIR) if e.id == shortest_test_ids(1)[0])
    chain = tokenize_chain(smollm2.tokenizer, get_benchmark("gsm8k"), example, smollm2.max_positions)
    args = (chain.prompt_ids, chain.reasoning_ids, chain.answer_ids)
    for objective in ("joint", "answer"):
        naive = greedy_prune(HFScorer(smollm2.model), *args, objective, keep=0.0, max_steps=3)
        fast = greedy_prune(PrefixCacheScorer(smollm2.model, token_budget=256), *args, objective, keep=0.0, max_steps=3)
        assert len(naive.deletion_order) == 3 and fast.deletion_order == naive.deletion_order
        np.testing.assert_allclose(fast.candidate_scores, naive.candidate_scores, atol=1e-4)


def test_demo_prints_greedy_beside_the_baselines(tmp_path):
    """`make demo`'s command on one chain (the README's first command), kept short with --keep 0.9."""
    result = CliRunner().invoke(app, ["demo", "--count", "1", "--keep", "0.9", "--threads", "1",
                                      "--out", str(tmp_path / "demo")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.count("=== gsm8k-test-") == 1
    methods = ("greedy", "surprisal", "h2o")
    assert all(f"--- {method}, keep 0.9" in result.output for method in methods) and "[-" in result.output
    assert all((tmp_path / "demo" / method / "rankings.jsonl").exists() for method in methods)
