"""MMLU-Pro: ten-option multiple choice across 14 subjects."""

from __future__ import annotations

import re
import string

from prunelens.datasets.base import Benchmark, Example, SplitRule, require
from prunelens.datasets.grading import extract_letter
from prunelens.core.errors import BadRecordError

LETTERS = string.ascii_uppercase[:10]
_COT_PREFIX = re.compile(r"^\s*A:\s*")
_COT_ANSWER = re.compile(r"\s*The answer is \(?[A-J]\)?\.?\s*$")


class MMLUPro(Benchmark):
    name = "mmlu_pro"
    title = "MMLU-Pro"
    answer_marker = "The answer is"
    multiple_choice = True
    raw_files = {"test": "mmlu_pro/test.jsonl", "validation": "mmlu_pro/validation.jsonl"}
    hub_repo = "TIGER-Lab/MMLU-Pro"
    hub_splits = {"test": "test", "validation": "validation"}
    splits = {
        "train": SplitRule("test", "train"),
        "dev": SplitRule("test", "dev"),
        "test": SplitRule("test", "test"),
        "validation": SplitRule("validation"),
    }
    partitions = {"test": {"train": 10_000, "dev": 800, "test": None}}

    def parse(self, row, raw_split, index):
        record_id = f"mmlu_pro-{row.get('question_id', f'{raw_split}-{index}')}"
        options = require(row, "options", record_id)
        answer = str(require(row, "answer", record_id)).strip()
        if answer not in LETTERS[: len(options)]:
            raise BadRecordError(record_id, f"answer {answer!r} is not one of the {len(options)} options")
        cot = row.get("cot_content") or ""
        reasoning = _COT_ANSWER.sub("", _COT_PREFIX.sub("", cot)).strip() or None
        return Example(
            record_id,
            require(row, "question", record_id),
            answer,
            reasoning,
            options=tuple(options),
            dataset=self.name,
            meta={"category": row.get("category"), "src": row.get("src")},
        )

    def user_message(self, example):
        lines = [example.question, "Options:"]
        lines += [f"({letter}) {option}" for letter, option in zip(LETTERS, example.options or ())]
        lines.append("Reason step by step, then finish with 'The answer is (X)'.")
        return "\n".join(lines)

    def answer_text(self, answer):
        return f"\nThe answer is ({answer})."

    def extract(self, completion):
        return extract_letter(completion)

    def is_correct(self, completion, gold):
        return self.extract(completion) == gold.strip().upper()
