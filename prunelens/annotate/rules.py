"""The offline annotator: deterministic lexicons and patterns that approximate the LLM's category labels.

It labels each word of ``split_words_and_symbols`` without a model or a network, so the retention analyses run
anywhere; it is an approximation of the LLM annotator (paper App. D uses gpt-5-mini), not a replacement:
word senses that need the sentence's meaning ("that" as pronoun or conjunction, "first" as step marker or
ordinal, an arithmetic verb narrating a step or stating a relation) are decided by the local cues below.

Rules, per word (categories as in ``prunelens.annotate.labels``):
- **SymbMath**: numbers; arithmetic and comparison symbols, ``=``, ``%``, ``^``, currency signs; a ``.``
  directly followed by digits (``.5``); brackets whose first (or last) inner word is mathematical; ``\\`` and
  the LaTeX command after it; single letters other than a/A/I (variables, and ``x`` as "times"); a/A
  next to a symbol; ``st``/``nd``/``rd``/``th`` glued to a number. A ``-`` glued between a word and a
  following letter is a hyphen (Grammar), otherwise a minus.
- **MetaDisc**: step narration and discourse markers (``so``, ``thus``, ``therefore``, ``then``, ``now``,
  ``let's``, ``calculate``, ``find``, ``step``, ``answer``…), multi-word phrases (``we need to``, ``to find``,
  ``figure out``, ``the final answer is``…), ``first``/``second``/… when they open a clause, arithmetic verbs
  (``add``, ``divide``…) when they open a clause or follow a narrator (``then``, ``to``, ``we``…), and list
  markers and step numbers (``1.`` opening a line, ``Step 2``), which override the SymbMath of their digits.
- **CoRef**: personal, possessive, demonstrative and relative pronouns (``she``, ``it``, ``they``, ``we``,
  ``this``, ``which``…); ``that`` unless it follows a verb of saying/knowing or ``so``/``such``.
- **VerbalMath**: arithmetic relations and quantities in words (``times``, ``twice``, ``half``, ``total``,
  ``sum``, ``difference``, ``each``, ``per``, ``more``, ``less``, ``remaining``, ``rate``, number words,
  ordinals inside a clause, other forms of the arithmetic verbs) and phrases (``more than``, ``how many``,
  ``in total``, ``out of``…).
- **Grammar**: articles, prepositions, conjunctions, auxiliaries, common adverbs, other punctuation and
  formatting marks (``**``, ``#``, ``:``).
- **EntName**: every other word (names, objects, units, counted nouns, and content verbs and adjectives).
A word matched by several rules (a lexicon entry and a phrase) takes the highest-priority category
(``labels.resolve``); only list markers and step numbers override.
"""

from __future__ import annotations

import re

from prunelens.annotate.labels import AnnotationFailed, Annotator, resolve, split_words_and_symbols

RULES_VERSION = 1

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
MATH_SYMBOLS = set("+-−–*/×÷=<>≤≥≠≈%^$€£¥²³√π·")
_MINUS_LIKE = set("-−–")
_BRACKETS = set("()[]{}")
_ORDINAL_SUFFIXES = {"st", "nd", "rd", "th"}


def _words(text: str) -> set[str]:
    return set(text.split())


META_WORDS = _words("""
    so thus therefore hence consequently accordingly then now next finally lastly firstly secondly thirdly
    let let's step steps answer answers solution solve solving solved calculate calculating calculation
    calculations compute computing computation determine determining find finding figure figuring check
    checking verify verifying recall note notice because since means simplify simplifying substitute
    substituting plug plugging combine combining rearrange rearranging conclusion result question problem
    equation given
""")
CLAUSE_ORDINALS = _words("first second third fourth fifth")  # MetaDisc when they open a clause
ARITHMETIC_VERBS = _words("""
    add adds added adding subtract subtracts subtracted subtracting multiply multiplies multiplied multiplying
    divide divides divided dividing
""")
NARRATORS = _words("first then now next finally so to we i let's will can should must also and")  # before a verb
COREF_WORDS = _words("""
    he she it they we you i him her them us me his hers its their theirs our ours your yours himself herself
    itself themselves ourselves yourself this these those which who whom whose former latter
""")
THAT_AS_CONJUNCTION_AFTER = _words("""
    so such know knows knew means mean meant say says said given find found see saw note shows show showed
    assume assuming implies think is was are were
""")
VERBAL_MATH_WORDS = _words("""
    times twice thrice once double doubled doubles triple tripled quadruple half halves halved halve quarter
    quarters thirds fourths fifths total totals totaled totalled sum sums difference product quotient each per
    every more most less least fewer fewest than remaining remain remains remainder rest left leftover
    extra additional another rate rates average averages ratio proportion percent percentage fraction
    increase increases increased increasing decrease decreases decreased decreasing reduce reduces reduced
    reducing plus minus altogether together combined overall equal equals equally evenly split shared share
    number numbers amount amounts value quantity many much apiece zero one two three four five six seven eight
    nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty
    fifty sixty seventy eighty ninety hundred hundreds thousand thousands million millions billion dozen
    dozens pair pairs sixth seventh eighth ninth tenth
""")
GRAMMAR_WORDS = _words("""
    a an the of in on at to for from with by about into onto after before during over under between out up
    down off through until without within across along around among upon via as and or but nor yet if
    when while whether although though unless whereas where what why how there here
    is are was were be been being am has have had do does did done will would can could shall should may
    might must can't won't don't doesn't didn't isn't aren't wasn't weren't hasn't haven't
    not no also only just very even still already too again
""")
META_PHRASES = [p.split() for p in (
    "we need to", "we need", "need to", "we have to", "to find", "find out", "figure out", "work out",
    "let us", "in order to", "the answer is", "the final answer is", "final answer", "this means",
    "that means", "which means", "it means", "we know", "we get", "we can", "to calculate", "to determine",
    "as a result", "in conclusion", "in summary", "step by step",
)]  # fmt: skip
VERBAL_PHRASES = [p.split() for p in (
    "more than", "less than", "fewer than", "as many as", "as much as", "how many", "how much", "in total",
    "in all", "at least", "at most", "out of", "per cent", "left over", "a total of", "the rest",
)]  # fmt: skip


class RuleAnnotator(Annotator):
    """Offline, deterministic labels from documented lexicons and patterns (module docstring): an
    approximation of the LLM annotator's labels, for runs without an LLM."""

    def settings(self) -> dict:
        return {"rules_version": RULES_VERSION}

    def label_words(self, words: list[str], reasoning: str) -> list[str]:
        spans = split_words_and_symbols(reasoning)
        if [w for w, _, _ in spans] != list(words):
            raise AnnotationFailed("the words given are not split_words_and_symbols(reasoning)")
        return label_spans(spans, reasoning)


def label_spans(spans: list[tuple[str, int, int]], text: str) -> list[str]:
    """One category per word of ``split_words_and_symbols(text)`` (the rules of the module docstring)."""
    keys = [_key(w) for w, _, _ in spans]
    found: list[set[str]] = [set() for _ in spans]
    for phrases, category in ((META_PHRASES, "MetaDisc"), (VERBAL_PHRASES, "VerbalMath")):
        for start in range(len(spans)):
            for phrase in phrases:
                if keys[start : start + len(phrase)] == phrase:
                    for index in range(start, start + len(phrase)):
                        found[index].add(category)
    words = _Words(spans, text, keys)
    for index in range(len(spans)):
        found[index].add(words.lexical(index))
    labels = [resolve(candidates) for candidates in found]
    for index in range(len(spans)):  # a bracket is mathematical when the first word inside it is
        if spans[index][0] in _BRACKETS:
            step = 1 if spans[index][0] in "([{" else -1
            inside = index + step
            while 0 <= inside < len(spans) and spans[inside][0] in _BRACKETS:
                inside += step
            labels[index] = "SymbMath" if 0 <= inside < len(spans) and labels[inside] == "SymbMath" else "Grammar"
    for index in range(len(spans)):
        if words.list_marker(index):
            labels[index] = "MetaDisc"
    return labels


def _key(word: str) -> str:
    return word.lower().replace("’", "'")


class _Words:
    """The words of one text with their spans: the single-word rules and their local context."""

    def __init__(self, spans, text, keys):
        self.spans, self.text, self.keys = spans, text, keys

    def word(self, index: int) -> str:
        return self.spans[index][0] if 0 <= index < len(self.spans) else ""

    def glued(self, left: int, right: int) -> bool:
        """Whether words ``left`` and ``right`` touch (no character between them)."""
        return 0 <= left and right < len(self.spans) and self.spans[left][2] == self.spans[right][1]

    def opens_clause(self, index: int) -> bool:
        """First word of the text, of a line, or after sentence or clause punctuation."""
        if index == 0 or "\n" in self.text[self.spans[index - 1][2] : self.spans[index][1]]:
            return True
        return self.word(index - 1) in {".", ":", ";", "!", "?", ",", "(", "*", "-"}

    def is_number(self, index: int) -> bool:
        return bool(_NUMBER.fullmatch(self.word(index)))

    def list_marker(self, index: int) -> bool:
        """A step number (``Step 2``), a line-opening ``1.`` / ``1)``, or a line-opening bullet ``-`` / ``*``."""
        word = self.word(index)
        line_start = index == 0 or "\n" in self.text[self.spans[index - 1][2] : self.spans[index][1]]
        if self.is_number(index):
            if index and self.keys[index - 1] == "step":
                return True
            after = self.word(index + 1)
            return line_start and after in {".", ")"} and self.glued(index, index + 1) and self._space_after(index + 1)
        if word in {".", ")"} and self.is_number(index - 1) and self.glued(index - 1, index):
            return self.list_marker(index - 1)
        return line_start and word in {"-", "*", "•"} and self._space_after(index)

    def _space_after(self, index: int) -> bool:
        end = self.spans[index][2]
        return end == len(self.text) or self.text[end].isspace()

    def lexical(self, index: int) -> str:
        """The category from the word itself and its neighbours (phrases are matched separately)."""
        word, key = self.word(index), self.keys[index]
        if self.is_number(index):
            return "SymbMath"
        if len(word) == 1 and not word.isalnum():
            return self._symbol(index)
        if word.isalpha() and len(word) == 1 and key not in {"a", "i"}:
            return "SymbMath"  # a variable, or x as "times"
        if key == "a" and (self.word(index - 1) in MATH_SYMBOLS or self.word(index + 1) in MATH_SYMBOLS):
            return "SymbMath"
        if key in _ORDINAL_SUFFIXES and self.is_number(index - 1) and self.glued(index - 1, index):
            return "SymbMath"
        if self.word(index - 1) == "\\" and self.glued(index - 1, index):
            return "SymbMath"  # a LaTeX command
        if key in ARITHMETIC_VERBS:
            narrated = self.opens_clause(index) or self.keys[index - 1] in NARRATORS  # index 0 opens a clause
            return "MetaDisc" if narrated else "VerbalMath"
        if key in CLAUSE_ORDINALS:
            return "MetaDisc" if self.opens_clause(index) or self.word(index + 1) == "," else "VerbalMath"
        if key in META_WORDS:
            return "MetaDisc"
        if _stem(key) == "that":  # "that's" is the pronoun; a bare "that" after these verbs a conjunction
            conjunction = key == "that" and index and self.keys[index - 1] in THAT_AS_CONJUNCTION_AFTER
            return "Grammar" if conjunction else "CoRef"
        for table, category in ((COREF_WORDS, "CoRef"), (VERBAL_MATH_WORDS, "VerbalMath"), (GRAMMAR_WORDS, "Grammar")):
            if key in table or _stem(key) in table:
                return category
        return "EntName"

    def _symbol(self, index: int) -> str:
        word = self.word(index)
        if word in _MINUS_LIKE:
            glued = self.glued(index - 1, index) and self.glued(index, index + 1)
            hyphen = glued and self.word(index + 1)[:1].isalpha()
            return "Grammar" if hyphen else "SymbMath"
        if word == "*" and (self.word(index - 1) == "*" and self.glued(index - 1, index)
                            or self.word(index + 1) == "*" and self.glued(index, index + 1)):  # fmt: skip
            return "Grammar"  # Markdown bold
        if word in MATH_SYMBOLS:
            return "SymbMath"
        if word == "." and self.glued(index, index + 1) and self.word(index + 1)[:1].isdigit():
            return "SymbMath"  # a decimal point: .5
        if word == "\\":
            return "SymbMath"
        return "Grammar"  # brackets are decided afterwards, from their neighbours


def _stem(key: str) -> str:
    """A word without a clitic ('s, 'll, 're, 've, 'd, n't), so "she'll" looks up "she"."""
    for suffix in ("n't", "'s", "'ll", "'re", "'ve", "'d", "'m"):
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)]
    return key
