"""GSM8K: grade-school math word problems with worked solutions."""

from __future__ import annotations

import re

from prunelens.datasets.base import Benchmark, Example, SplitRule, require
from prunelens.datasets.grading import last_number, numbers_equal
from prunelens.core.errors import BadRecordError

_CALCULATOR = re.compile(r"<<[^>]*>>")


def parse_solution(solution: str, record_id: str) -> tuple[str, str]:
    """Split a GSM8K solution into (reasoning without <<calc>> annotations, final answer)."""
    if "####" not in solution:
        raise BadRecordError(record_id, "missing final answer ('#### ...') in the solution")
    reasoning, _, answer = solution.rpartition("####")
    return _CALCULATOR.sub("", reasoning).strip(), answer.strip()


class GSM8K(Benchmark):
    name = "gsm8k"
    title = "GSM8K"
    answer_marker = "####"
    raw_files = {"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"}
    hub_repo = "openai/gsm8k"
    hub_config = "main"
    hub_splits = {"train": "train", "test": "test"}
    splits = {
        "train": SplitRule("train", "train"),
        "dev": SplitRule("train", "dev"),
        "test": SplitRule("test"),
    }
    partitions = {"train": {"dev": 500, "train": None}}

    def parse(self, row, raw_split, index):
        record_id = f"gsm8k-{raw_split}-{index}"
        question = require(row, "question", record_id)
        reasoning, answer = parse_solution(require(row, "answer", record_id), record_id)
        if not answer:
            raise BadRecordError(record_id, "empty final answer after '####'")
        return Example(record_id, question, answer, reasoning or None, dataset=self.name)

    def user_message(self, example):
        return f"{example.question}\nReason step by step, then give the final answer after '####'."

    def answer_text(self, answer):
        return f"\n#### {answer}"

    def extract(self, completion):
        if "####" in completion:
            return last_number(completion.rpartition("####")[2])
        return last_number(completion)

    def is_correct(self, completion, gold):
        return numbers_equal(self.extract(completion), gold)
