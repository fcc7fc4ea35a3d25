"""Greedy pruning through a running server: an OpenAI-compatible completions endpoint scores the candidates.

The server is asked for the log-probability of every prompt token, in the first of three protocols it answers
(tried on the first request of a run, then kept):

- ``prompt_logprobs``: token-id prompts with vLLM's ``prompt_logprobs=0`` (sent through ``extra_body``);
- ``echo``: token-id prompts with the classic ``echo=True, logprobs=0``;
- ``echo-text``: text prompts with ``echo`` and ``logprobs``, for servers that take no token ids
  (llama-cpp-python's). Each candidate goes as its decoded text, and the targets are the echoed tokens of the
  text from the first target's character on. This is exact only where the server tokenises the text back into the
  candidate's ids; ``stats.retokenized`` counts the candidates whose text the local tokenizer does not turn
  back into their ids (deleting a token can let its neighbours merge). llama-cpp-python pairs echoed tokens
  with log-probs one position off unless the prompt starts with BOS (its issue #1983), so this protocol takes
  only sequences that start with the tokenizer's BOS token.

Requests carry up to ``token_budget`` tokens of token-id prompts each (one text prompt each), ``concurrency``
at a time, and are retried with exponential backoff through ``prunelens.core.openai_http``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from prunelens.core.errors import PrunelensError
from prunelens.core.objectives import Objective
from prunelens.core.openai_http import CompletionsClient, ServerConnection, one_line
from prunelens.core.settings import setting
from prunelens.pruning.scorer import ScorerStats
from prunelens.pruning.vllm_scorer import objective_from_prompt_logprobs

PROTOCOLS = ("prompt_logprobs", "echo", "echo-text")


@dataclass(kw_only=True)
class ServerSettings(ServerConnection):
    """How the ``server`` scorer reaches its server and asks it (``prunelens prune --scorer server``)."""

    protocol: str | None = setting(None, f"server: {' | '.join(PROTOCOLS)} (default: the first the server answers)",
                                   result=True)  # fmt: skip

    def __post_init__(self):
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise PrunelensError(f"unknown server protocol {self.protocol!r} (known: {', '.join(PROTOCOLS)})")


class Unsupported(Exception):
    """The server does not answer a protocol (it refused the request, or its reply lacks the log-probs)."""


@dataclass
class ServerStats(ScorerStats):
    """ScorerStats plus the requests sent and, under ``echo-text``, the candidates whose text retokenises
    differently."""

    requests: int = 0
    retokenized: int = 0


class ServerScorer:
    """The objective of each candidate from a server's prompt log-probs; same interface as HFScorer. Needs no
    model weights here, only the tokenizer (for ``echo-text``)."""

    needs_weights: ClassVar[bool] = False

    def __init__(self, model=None, token_budget: int = 4096, options: ServerSettings | None = None,
                 tokenizer=None):  # fmt: skip
        self.options = options or ServerSettings()
        self.token_budget = token_budget
        self.tokenizer = tokenizer
        self.stats = ServerStats()
        self.server = CompletionsClient(self.options)
        self.protocol: str | None = None
        self._lock = threading.Lock()  # the stats are counted from the request threads
        self._described_retokenized = 0

    def describe(self) -> dict[str, Any]:
        """What a ranking records of the server (called once per chain): where it is, the model it reported, the
        protocol used, and the candidates retokenised since the previous call (``echo-text``; else 0)."""
        retokenized, self._described_retokenized = (self.stats.retokenized - self._described_retokenized,
                                                     self.stats.retokenized)  # fmt: skip
        return {"server": self.server.url, "server_model": self.server.reported_model or self.server.model,
                "protocol": self.protocol, "retokenized": retokenized}  # fmt: skip

    def score(self, prompt_ids, candidates, answer_ids, objective, trunk=None):
        objective = Objective.parse(objective)
        sequences = [list(prompt_ids) + list(c) + list(answer_ids) for c in candidates]
        firsts = [objective.first_target(len(prompt_ids), len(c)) for c in candidates]
        scores = np.zeros(len(candidates), dtype=np.float64)
        if not sequences:
            return scores
        if self.protocol is None:
            scores[0] = self._detect(sequences[0], firsts[0])
            todo = list(range(1, len(sequences)))
        else:
            todo = list(range(len(sequences)))
        batches = self._batches(todo, sequences)
        with ThreadPoolExecutor(max_workers=self.options.concurrency) as pool:
            for batch, values in zip(batches, pool.map(lambda b: self._ask(self.protocol, [sequences[i] for i in b],
                                                                              [firsts[i] for i in b]), batches)):
                scores[batch] = values
        self.stats.forward_calls += 1
        self.stats.tokens_computed += sum(len(s) for s in sequences)
        return scores

    def _batches(self, indices: list[int], sequences: list[list[int]]) -> list[list[int]]:
        """Requests of at most ``token_budget`` tokens (one prompt each under ``echo-text``)."""
        if self.protocol == "echo-text":
            return [[i] for i in indices]
        batches, current, size = [], [], 0
        for i in indices:
            if current and size + len(sequences[i]) > self.token_budget:
                batches.append(current)
                current, size = [], 0
            current.append(i)
            size += len(sequences[i])
        return batches + ([current] if current else [])

    def _detect(self, sequence: list[int], first: int) -> float:
        """The first protocol the server answers (``options.protocol`` only, when set); returns the score of
        ``sequence`` that the probe yielded. One line naming each refusal when none works."""
        refusals = []
        for protocol in [self.options.protocol] if self.options.protocol else PROTOCOLS:
            try:
                value = self._ask(protocol, [sequence], [first], probing=True)[0]
            except Unsupported as why:
                refusals.append(f"{protocol}: {why}")
                continue
            self.protocol = protocol
            return value
        raise PrunelensError(f"the server at {self.server.url} gave no prompt log-probs ({'; '.join(refusals)})")

    def _ask(self, protocol: str, sequences: list[list[int]], firsts: list[int], probing: bool = False) -> list[float]:
        """One request's objectives under ``protocol``; Unsupported (when ``probing``) if the server does not
        answer it."""
        request: dict[str, Any] = {"max_tokens": 1, "temperature": 0.0}
        if protocol == "prompt_logprobs":
            request.update(prompt=sequences, extra_body={"prompt_logprobs": 0})
        elif protocol == "echo":
            request.update(prompt=sequences, echo=True, logprobs=0)
        else:
            text, cut = self._text(sequences[0], firsts[0], probing)
            request.update(prompt=text, echo=True, logprobs=0)
        choices, usage = self._post(request, probing)
        if len(choices) != len(sequences):
            raise self._problem(f"{len(choices)} choices for {len(sequences)} prompts", probing)
        if protocol == "echo-text":  # one prompt: the usage counts its generated tokens
            return [self._from_echo_text(choices[0], sequences[0], firsts[0], text, cut, probing, usage)]
        read = self._from_prompt_logprobs if protocol == "prompt_logprobs" else self._from_echo
        return [read(choice, sequence, first, probing) for choice, sequence, first in zip(choices, sequences, firsts)]

    def _post(self, request: dict, probing: bool) -> tuple[list, Any]:
        """The reply's choices in prompt order, and its usage. A probe the server refuses (HTTP 400, 404, 422, or
        500, which llama-cpp-python answers to a request it cannot validate) is Unsupported at once, without
        retries; 502–504 and the rest are retried as usual."""
        try:
            response = self.server.complete(refused=_refusal if probing else (lambda error: False), **request)
        except Exception as error:
            if not (probing and _refusal(error)):
                raise
            raise Unsupported(f"HTTP {error.status_code} ({one_line(error, 120)})") from None
        if not response.choices:
            raise self._problem("a reply without choices", probing)
        with self._lock:
            self.stats.requests += 1
        return sorted(response.choices, key=lambda choice: choice.index), response.usage

    @staticmethod
    def _problem(message: str, probing: bool) -> Exception:
        return Unsupported(message) if probing else PrunelensError(f"unusable server reply: {message}")

    def _from_prompt_logprobs(self, choice, sequence, first, probing) -> float:
        entries = (choice.model_extra or {}).get("prompt_logprobs")
        if not entries:
            raise self._problem("no prompt_logprobs in the reply", probing)
        as_floats = [None if e is None else {int(k): v["logprob"] if isinstance(v, dict) else v for k, v in e.items()}
                     for e in entries]  # fmt: skip
        return objective_from_prompt_logprobs(as_floats, sequence, first)

    def _from_echo(self, choice, sequence, first, probing) -> float:
        values = choice.logprobs.token_logprobs if choice.logprobs else None
        if not values or len(values) < len(sequence):
            raise self._problem(f"{len(values or [])} echoed log-probs for a prompt of {len(sequence)} tokens", probing)
        return _sum_targets(values[first : len(sequence)])

    def _from_echo_text(self, choice, sequence, first, text, cut, probing, usage) -> float:
        """The last m echoed prompt tokens, m being the target tokens of the sent text as the local tokenizer splits
        it: counted from the end, since servers leave a leading BOS (and llama-cpp-python later ones) out of the
        echo, and their text offsets skip special tokens. The generated tokens at the end of the echo are counted
        by the reply's usage (a generated token can add no text). ``text`` and ``cut`` are ``_text``'s."""
        values = choice.logprobs.token_logprobs if choice.logprobs else None
        if not values:
            raise self._problem("no echoed log-probs in the reply", probing)
        generated = getattr(usage, "completion_tokens", None)
        if generated is None:  # no usage: the echo is the prompt, then the completion's text
            generated = 1 if len(choice.text or "") > len(text) else 0
        shown = values[: len(values) - generated]
        ids = self._plain_ids(text)
        targets = len(ids) - len(self._plain_ids(text[:cut]))
        if targets > len(shown):
            raise self._problem(f"{len(shown)} echoed prompt tokens for {targets} targets", probing)
        if targets != len(sequence) - first or ids != self._sent(sequence):
            with self._lock:
                self.stats.retokenized += 1
        return _sum_targets(shown[len(shown) - targets :])

    @cached_property
    def _adds_bos(self) -> bool:
        """Whether the tokenizer (and so the server, reading the same model's settings) adds BOS to every text."""
        return self.tokenizer("x")["input_ids"][:1] == [self.tokenizer.bos_token_id]

    def _sent(self, sequence: list[int]) -> list[int]:
        """The ids whose text is sent: the sequence without the BOS that the server adds itself."""
        return sequence[1:] if self._adds_bos else sequence

    def _plain_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _text(self, sequence: list[int], first: int, probing: bool) -> tuple[str, int]:
        """The text sent for ``sequence`` and the character at which its targets start."""
        refused = Unsupported if probing else PrunelensError
        if self.tokenizer is None:
            raise refused("text prompts need the model's tokenizer")
        if sequence[0] != self.tokenizer.bos_token_id:
            raise refused("text prompts must start with BOS (llama-cpp-python shifts echoed log-probs by one "
                          "position otherwise, its issue #1983)")  # fmt: skip
        sent = self._sent(sequence)
        skipped = len(sequence) - len(sent)
        return self._decode(sent), len(self._decode(sent[: first - skipped]))


def _refusal(error: Exception) -> bool:
    """Whether an error answers a probe with "not this protocol" (see ``ServerScorer._post``)."""
    return getattr(error, "status_code", None) in (400, 404, 422, 500)


def _sum_targets(values: Sequence[float | None]) -> float:
    if any(v is None for v in values):
        raise PrunelensError("the server returned no log-prob for a target token")
    return float(sum(values))
