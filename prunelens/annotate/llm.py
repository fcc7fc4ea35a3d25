"""The LLM annotator: one functional category per word of a reasoning chain, asked of a chat model.

The model sees the chain's words (``split_words_and_symbols``, numbered from 0), the six category definitions (paper
App. D, in our own words) with the priority order for words that fit several, and answers
``{"labels": [{"i": 0, "word": "...", "label": "SymbMath"}, ...]}``. A reply is accepted when it labels
every index exactly once with a known category; otherwise it is retried (``ChatClient.ask``) and the
chain finally fails with the reason.
"""

from __future__ import annotations

import json

from prunelens.annotate.client import ChatClient, InvalidReply, ReplyFailed, server_host
from prunelens.annotate.labels import CATEGORIES, AnnotationFailed, Annotator

PROMPT_VERSION = "1"

SYSTEM_PROMPT = (
    "You annotate the reasoning of math word-problem solutions word by word. You assign each word the "
    "functional role it plays in the reasoning, following the definitions you are given exactly and "
    "consistently. You answer with one JSON object and nothing else."
)

DEFINITIONS = {
    "SymbMath": "symbolic or numeric computation: digits and numbers, currency signs, arithmetic operators "
                "(+ - * / = x), fractions, percentages, equation parts.",
    "MetaDisc": "words that organise or narrate the solving process rather than state facts: \"to find\", "
                "\"we need to\", \"first\", \"next\", \"now\", \"so\", \"let's\", \"calculate\", \"step\", "
                "\"the answer is\", step numbers and list markers. An arithmetic verb belongs here only when it "
                "announces a step (\"Now we add them up\").",
    "CoRef": "pronouns and other expressions pointing back to something already introduced: \"she\", \"her\", "
             "\"it\", \"they\", \"we\", \"this\", \"that\".",
    "EntName": "the concrete things the problem is about: names of people, objects, units and counted nouns "
               "(\"Natalia\", \"apples\", \"wallet\", \"pages\", \"hours\", \"dollars\").",
    "VerbalMath": "arithmetic relations and quantities put in words: \"half\", \"twice\", \"total\", "
                  "\"remaining\", \"more\", \"less\", \"per\", \"each\", \"rate\", \"sum\". An arithmetic verb "
                  "(\"add\", \"multiply\", \"divide\") belongs here when it states the operation itself (\"5 "
                  "multiplied by 3\").",
    "Grammar": "grammatical filler with little content of its own: articles, prepositions, conjunctions, "
               "auxiliary verbs, punctuation and formatting marks.",
}  # fmt: skip


def user_prompt(words: list[str]) -> str:
    """The task for one chain: definitions, tie-break order, output format, then the numbered words."""
    definitions = "\n".join(f"- {name}: {DEFINITIONS[name]}" for name in CATEGORIES)
    numbered = "\n".join(f"{index}\t{word}" for index, word in enumerate(words))
    return (
        f"Label every word of the reasoning below with exactly one of these {len(CATEGORIES)} categories:\n"
        f"{definitions}\n\n"
        f"When a word fits more than one category, take the one that comes first in this order: "
        f"{' > '.join(CATEGORIES)}.\n\n"
        f"The reasoning has {len(words)} words, listed one per line as <index><TAB><word> (indices 0 to "
        f"{len(words) - 1}). Reply with a JSON object of the form "
        '{"labels": [{"i": 0, "word": "...", "label": "..."}, ...]} that has exactly one entry for every index, '
        "in order, each label spelled exactly as a category name above.\n\n"
        f"{numbered}"
    )


def parse_labels(reply: dict, n_words: int) -> list[str]:
    """The per-word labels of a reply, in word order; InvalidReply naming the first problem found."""
    entries = reply.get("labels")
    if not isinstance(entries, list):
        raise InvalidReply('no "labels" list')
    canonical = {name.lower(): name for name in CATEGORIES}
    labels: dict[int, str] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("i"), int) or isinstance(entry.get("i"), bool):
            raise InvalidReply(f"an entry without an integer index: {json.dumps(entry)[:80]}")
        index, label = entry["i"], entry.get("label")
        if not 0 <= index < n_words:
            raise InvalidReply(f"index {index} outside 0..{n_words - 1}")
        if index in labels:
            raise InvalidReply(f"index {index} labelled twice")
        if not isinstance(label, str) or label.strip().lower() not in canonical:
            raise InvalidReply(f"unknown label {label!r} at index {index}")
        labels[index] = canonical[label.strip().lower()]
    missing = [index for index in range(n_words) if index not in labels]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", …" if len(missing) > 10 else "")
        raise InvalidReply(f"{len(missing)} of {n_words} words unlabelled (indices {shown})")
    return [labels[index] for index in range(n_words)]


class LLMAnnotator(Annotator):
    """Labels words through an OpenAI-compatible chat model; its options (``config.options``) are the
    ``LLMSettings`` registered with it: model, server, cache, retries, sampling."""

    def __init__(self, config):
        super().__init__(config)
        self.chat = ChatClient(self.options)

    def settings(self) -> dict:
        options = self.options
        return {"llm_model": options.llm_model, "server": server_host(options), "prompt_version": PROMPT_VERSION}

    def label_words(self, words: list[str], reasoning: str) -> list[str]:
        if not words:
            return []
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_prompt(words)}]
        try:
            return self.chat.ask(messages, lambda reply: parse_labels(reply, len(words)))
        except ReplyFailed as failure:
            raise AnnotationFailed(str(failure)) from None
