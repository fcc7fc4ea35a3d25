"""The likelihood objectives greedy pruning maximises."""

from __future__ import annotations

from enum import Enum

from prunelens.core.errors import PrunelensError


class Objective(str, Enum):
    """``joint``: log p(r_S, a | q), the kept reasoning and the answer given the prompt.
    ``answer``: log p(a | q, r_S), the answer tokens only."""

    JOINT = "joint"
    ANSWER = "answer"

    @classmethod
    def parse(cls, value: "str | Objective") -> "Objective":
        try:
            return cls(value)
        except ValueError:
            raise PrunelensError(f"unknown objective {value!r} (known: joint, answer)") from None

    def first_target(self, prompt_len: int, reasoning_len: int) -> int:
        """Index of the first token whose log-prob the objective sums, in prompt+reasoning+answer."""
        return prompt_len if self is Objective.JOINT else prompt_len + reasoning_len
