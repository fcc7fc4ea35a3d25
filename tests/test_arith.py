"""The generated arith dataset: seeded splits, gold chains that check out, GSM8K grading, and a CLI run on it."""

import hashlib
import json
import os
import re
import subprocess
import sys
from fractions import Fraction

import pytest
from typer.testing import CliRunner

from prunelens.annotate.labels import CATEGORIES, split_words_and_symbols
from prunelens.annotate.rules import label_spans
from prunelens.datasets import get_benchmark, load_examples
from prunelens.datasets.arith import calc
from prunelens.core.errors import BadRecordError, PrunelensError

SPLITS = {"train": 2000, "dev": 200, "test": 500}
EQUATION = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


@pytest.fixture(scope="module")
def splits():
    return {split: load_examples("arith", split) for split in SPLITS}


def digest(examples) -> str:
    return hashlib.sha1(json.dumps([[e.id, e.question, e.reasoning, e.answer] for e in examples]).encode()).hexdigest()


def test_sizes_ids_and_meta(splits):
    for split, size in SPLITS.items():
        examples = splits[split]
        assert len(examples) == size
        assert [e.id for e in examples] == [f"arith-{split}-{i}" for i in range(size)]
        assert all(e.dataset == "arith" and e.reasoning for e in examples)


def test_two_loads_are_equal(splits):
    again = load_examples("arith", "test")
    assert again == splits["test"] and [e.meta for e in again] == [e.meta for e in splits["test"]]


def test_same_rows_in_another_process_with_another_hash_seed(splits):
    code = "from prunelens.datasets import load_examples; print([e.question for e in load_examples('arith', 'dev')])"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str([e.question for e in splits["dev"]])


def test_splits_share_no_question_and_none_repeats(splits):
    questions = [e.question for examples in splits.values() for e in examples]
    assert len(questions) == len(set(questions))


def test_splits_differ_with_their_seeds(splits):
    assert digest(splits["dev"]) != digest(splits["test"][:200])


def test_templates_and_steps_vary(splits):
    test = splits["test"]
    assert len({e.meta["template"] for e in test}) >= 12
    assert {e.meta["steps"] for e in test} == {2, 3, 4}


@pytest.mark.parametrize("split", list(SPLITS))
def test_every_gold_equation_is_right_and_ends_in_the_answer(splits, split):
    for example in splits[split]:
        lines = example.reasoning.split("\n")
        assert len(lines) == example.meta["steps"], example.id
        results = []
        for line in lines:
            found = EQUATION.findall(line)
            assert len(found) == 1, (example.id, line)
            a, op, b, c = found[0]
            value = OPS[op](Fraction(a), Fraction(b))
            assert value == Fraction(c), (example.id, line)
            results.append(int(c))
        assert results[-1] == int(example.answer) > 0, example.id
        assert "####" not in example.reasoning and "<<" not in example.reasoning


def test_calc_refuses_remainders_and_negatives():
    assert calc(12, "/", 4) == ("12 / 4 = 3", 3)
    with pytest.raises(ValueError, match="not an integer"):
        calc(7, "/", 2)
    with pytest.raises(ValueError, match="negative"):
        calc(3, "-", 5)


def test_graded_like_gsm8k(splits):
    bench, gsm8k = get_benchmark("arith"), get_benchmark("gsm8k")
    for example in splits["test"][:50]:
        completion = example.reasoning + bench.answer_text(example.answer)
        assert bench.is_correct(completion, example.answer)
        assert not bench.is_correct(example.reasoning + bench.answer_text(str(int(example.answer) + 1)), example.answer)
        assert bench.user_message(example) == gsm8k.user_message(example)
        assert bench.answer_text(example.answer) == f"\n#### {example.answer}"


def test_all_six_categories_occur_in_50_test_chains(splits):
    found = set()
    for example in splits["test"][:50]:
        found.update(label_spans(split_words_and_symbols(example.reasoning), example.reasoning))
    assert found == set(CATEGORIES)


def test_bad_rows_and_splits_are_one_line_errors():
    bench = get_benchmark("arith")
    row = {"question": "q?", "reasoning": "1 + 1 = 2", "answer": "2", "steps": 1, "template": "t"}
    assert bench.parse(row, "dev", 4).meta == {"steps": 1, "template": "t"}
    with pytest.raises(BadRecordError, match="record 'arith-dev-4': missing 'reasoning'"):
        bench.parse({**row, "reasoning": ""}, "dev", 4)
    with pytest.raises(BadRecordError, match="'steps' must be an integer"):
        bench.parse({**row, "steps": "2"}, "dev", 4)
    with pytest.raises(PrunelensError, match="unknown split 'validation'"):
        load_examples("arith", "validation")


def test_cli_rank_uniform_on_arith_dev(tiny_model_dir, tmp_path):
    from prunelens.cli import app

    out = tmp_path / "out"
    args = ["rank", "--method", "uniform", "--dataset", "arith", "--split", "dev", "--limit", "3",
            "--model", str(tiny_model_dir), "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rankings = [json.loads(line) for line in (out / "rankings.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rankings] == ["arith-dev-0", "arith-dev-1", "arith-dev-2"]


@pytest.mark.integration
def test_most_chains_are_25_to_90_smollm2_tokens(smollm2_dir, splits):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    lengths = [len(tokenizer(e.reasoning, add_special_tokens=False)["input_ids"]) for e in splits["test"]]
    assert sum(25 <= n <= 90 for n in lengths) >= 0.9 * len(lengths)
