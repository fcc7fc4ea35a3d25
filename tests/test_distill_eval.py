"""Student evaluation: Wilson intervals, grading of known outputs, answer log-likelihood, resume."""

from __future__ import annotations

import json
import math

import pytest

from prunelens.datasets import get_benchmark
from prunelens.datasets.base import Example
from prunelens.distill import evaluate as evaluate_module
from prunelens.distill.evaluate import (
    EvalConfig,
    Evaluation,
    evaluate,
    run_evaluation,
)
from prunelens.distill.generate import Generation
from prunelens.core.errors import PrunelensError


def accuracy_interval(correct: int, n: int) -> tuple[float, float]:
    """The 95% interval ``Evaluation`` gives ``correct`` right answers out of ``n``."""
    rows = [{"correct": i < correct, "reasoning_tokens": 1, "answer_logprob": 0.0, "finished": 1.0} for i in range(n)]
    result = Evaluation.from_rows(rows)
    return result.ci_low, result.ci_high


def test_accuracy_interval_matches_wilsons_closed_form():
    low, high = accuracy_interval(5, 50)
    assert low == pytest.approx(0.04348, abs=1e-4) and high == pytest.approx(0.21360, abs=1e-4)
    assert accuracy_interval(0, 20)[0] == 0.0 and accuracy_interval(0, 20)[1] == pytest.approx(0.1611, abs=1e-4)
    assert accuracy_interval(20, 20) == (pytest.approx(0.8389, abs=1e-4), 1.0)
    assert accuracy_interval(0, 0) == (0.0, 1.0)


def test_gsm8k_answer_line_end_and_reasoning():
    bench = get_benchmark("gsm8k")
    assert bench.answer_line_end("2 + 2 = 4\n#### 4") is None  # the line is not finished yet
    assert bench.answer_line_end("2 + 2 = 4\n####\n") is None  # no answer on the line
    text = "2 + 2 = 4\n#### 4\n#### 4"
    assert text[: bench.answer_line_end(text)] == "2 + 2 = 4\n#### 4"
    assert bench.reasoning_of("2 + 2 = 4\n#### 4") == "2 + 2 = 4"
    assert bench.reasoning_of("no marker here") is None


class ScriptedGenerator:
    """Stands in for HFGenerator: returns fixed completions per question text, counting calls."""

    def __init__(self, by_question: dict[str, str]):
        self.by_question, self.prompts_seen = by_question, []

    def __call__(self, loaded, batch_size=8):
        return self

    def generate(self, bench, prompts, sampling):
        self.prompts_seen += prompts
        out = []
        for prompt in prompts:
            question = next(q for q in self.by_question if q in prompt)
            out.append([Generation(self.by_question[question], 5, "####" in self.by_question[question])])
        return out


@pytest.fixture
def tiny_loaded(tiny_model_dir):
    from prunelens.models import load_model

    return load_model(str(tiny_model_dir))


EXAMPLES = [Example("q1", "What is 2 + 3?", "5", dataset="gsm8k"), Example("q2", "What is 4 * 2?", "8", dataset="gsm8k"),
            Example("q3", "What is 9 - 1?", "8", dataset="gsm8k")]  # fmt: skip
SCRIPT = {"What is 2 + 3?": "2 + 3 = 5\n#### 5", "What is 4 * 2?": "4 * 2 = 9\n#### 9",
          "What is 9 - 1?": "9 minus 1 is 7 and then I ramble"}  # fmt: skip


def test_evaluate_grades_known_outputs_and_scores_the_gold_answer(monkeypatch, tmp_path, tiny_loaded):
    from prunelens.core.objectives import Objective
    from prunelens.pruning.scorer import HFScorer

    monkeypatch.setattr(evaluate_module, "HFGenerator", ScriptedGenerator(SCRIPT))
    result = evaluate(tiny_loaded, get_benchmark("gsm8k"), EXAMPLES, tmp_path, batch_size=2)
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "predictions.jsonl").read_text().splitlines())}
    assert [rows[i]["correct"] for i in ("q1", "q2", "q3")] == [True, False, False]
    assert (result.n, result.correct, result.accuracy) == (3, 1, pytest.approx(1 / 3))
    assert (result.ci_low, result.ci_high) == pytest.approx((0.06149, 0.79235), abs=1e-4)  # Wilson, 1 of 3
    assert result.finished == pytest.approx(2 / 3)
    assert rows["q1"]["generated_tokens"] == 5  # the generator's count, kept as the decoding cost
    # the reasoning is the text before the marker (the whole text without one), in the model's tokens
    tokenizer = tiny_loaded.tokenizer
    assert rows["q1"]["reasoning_tokens"] == len(tokenizer("2 + 3 = 5", add_special_tokens=False)["input_ids"])
    assert rows["q3"]["reasoning_tokens"] == len(tokenizer(SCRIPT["What is 9 - 1?"], add_special_tokens=False)["input_ids"])
    # answer log-likelihood: log p("\n#### 8" | prompt, "4 * 2 = 9") under the model, whatever the model said
    from prunelens.datasets.prompts import build_prompt

    bench = get_benchmark("gsm8k")
    prompt_ids = tokenizer(build_prompt(tokenizer, bench.user_message(EXAMPLES[1])), add_special_tokens=False)["input_ids"]
    expected = HFScorer(tiny_loaded.model).score(prompt_ids, [tokenizer("4 * 2 = 9", add_special_tokens=False)["input_ids"]],
                                                 tokenizer("\n#### 8", add_special_tokens=False)["input_ids"], Objective.ANSWER)[0]  # fmt: skip
    assert rows["q2"]["answer_logprob"] == pytest.approx(expected, abs=1e-5)
    assert result.mean_answer_logprob == pytest.approx(sum(r["answer_logprob"] for r in rows.values()) / 3)
    assert math.isfinite(result.mean_answer_logprob) and result.mean_answer_logprob < 0


def test_evaluate_resumes_without_regenerating_finished_questions(monkeypatch, tmp_path, tiny_loaded):
    first = ScriptedGenerator(SCRIPT)
    monkeypatch.setattr(evaluate_module, "HFGenerator", first)
    evaluate(tiny_loaded, get_benchmark("gsm8k"), EXAMPLES[:2], tmp_path, batch_size=2)
    second = ScriptedGenerator(SCRIPT)
    monkeypatch.setattr(evaluate_module, "HFGenerator", second)
    result = evaluate(tiny_loaded, get_benchmark("gsm8k"), EXAMPLES, tmp_path, batch_size=2)
    assert len(second.prompts_seen) == 1 and "9 - 1" in second.prompts_seen[0]
    assert result.n == 3 and result.correct == 1


def test_run_evaluation_writes_and_reuses_evaluation_json(monkeypatch, tmp_path, tiny_model_dir):
    monkeypatch.setattr(evaluate_module, "HFGenerator", ScriptedGenerator({"": "#### 0"}))
    config = EvalConfig(model=str(tiny_model_dir), dataset="gsm8k", limit=2, threads=1, out=tmp_path / "ev")
    result = run_evaluation(config, log=lambda line: None)
    saved = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert Evaluation(**saved) == result and result.n == 2
    monkeypatch.setattr("prunelens.models.load_model", lambda *a, **k: pytest.fail("a finished evaluation reloaded"))
    assert run_evaluation(config, log=lambda line: None) == result
    with pytest.raises(PrunelensError, match="other settings"):
        run_evaluation(EvalConfig(model=str(tiny_model_dir), dataset="gsm8k", limit=3, out=tmp_path / "ev"))
