"""MATH-500: the 500-problem MATH test subset of "Let's Verify Step by Step"."""

from __future__ import annotations

from prunelens.datasets.base import Benchmark, Example, SplitRule, require
from prunelens.datasets.grading import math_equal


class Math500(Benchmark):
    name = "math500"
    title = "MATH-500"
    answer_marker = "The final answer is"
    raw_files = {"test": "math500/test.jsonl"}
    hub_repo = "HuggingFaceH4/MATH-500"
    hub_splits = {"test": "test"}
    splits = {"test": SplitRule("test")}

    def parse(self, row, raw_split, index):
        unique = str(row.get("unique_id") or index).removesuffix(".json")
        record_id = f"math500-{unique}"
        return Example(
            record_id,
            require(row, "problem", record_id),
            str(require(row, "answer", record_id)),
            row.get("solution") or None,
            dataset=self.name,
            meta={"subject": row.get("subject"), "level": row.get("level")},
        )

    def user_message(self, example):
        return f"{example.question}\nReason step by step, then give the final answer in \\boxed{{}}."

    def answer_text(self, answer):
        return f"\nThe final answer is $\\boxed{{{answer}}}$."

    def extract(self, completion):
        from math_verify import parse

        parsed = parse(completion)
        return str(parsed[-1]) if parsed else None

    def is_correct(self, completion, gold):
        return math_equal(completion, gold)
