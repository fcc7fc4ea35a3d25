"""The offline (rule) annotator: labels of hand-written sentences, ties, determinism, and the annotate path
from a rankings folder on the tiny model to labels that join with the rankings."""

from dataclasses import replace

import pytest
import torch
from conftest import write_chains

from prunelens.annotate.labels import (
    CATEGORIES,
    AnnotationFailed,
    annotations_path,
    labels_for,
    load_annotations,
    split_words_and_symbols,
)
from prunelens.annotate.rules import RuleAnnotator, label_spans
from prunelens.core.errors import PrunelensError


def labelled(text: str) -> list[tuple[str, str]]:
    """(word, label) for every word of ``text``."""
    spans = split_words_and_symbols(text)
    return list(zip([w for w, _, _ in spans], label_spans(spans, text), strict=True))


def label_of(text: str, word: str, occurrence: int = 0) -> str:
    return [label for w, label in labelled(text) if w == word][occurrence]


def test_symbolic_math():
    text = "Janet sells 16 - 3 - 4 = 9 duck eggs a day, so she makes 9 * 2 = $18 and 30*.5 = 15."
    pairs = labelled(text)
    assert [w for w, label in pairs if label == "SymbMath"] == [
        "16", "-", "3", "-", "4", "=", "9", "9", "*", "2", "=", "$", "18", "30", "*", ".", "5", "=", "15"]  # fmt: skip
    assert label_of(text, ".", 1) == "Grammar"  # the full stop, not the decimal point
    assert label_of("He pays $5000*(2.5/100) (the fee)", "(") == "SymbMath"
    assert label_of("He pays $5000*(2.5/100) (the fee)", "(", 1) == "Grammar"
    assert label_of("Let x be the price: 2/3 * x = 12", "x", 1) == "SymbMath"
    assert label_of("3 x $68 = $204", "x") == "SymbMath"
    assert label_of("the regular-priced glasses", "-") == "Grammar"  # a hyphen
    assert label_of("45 -40 = 5 and 7-2", "-", 1) == "SymbMath"  # minus, glued or not
    assert [label for w, label in labelled("the 4th day") if w in {"4", "th"}] == ["SymbMath", "SymbMath"]
    assert label_of(r"\frac{3}{4}", "frac") == "SymbMath"


def test_meta_discourse_and_list_markers():
    text = "First find the total. Then divide that number by 2.\nSo we need to add 5."
    labels = dict(labelled(text))
    assert [labels[w] for w in ("First", "find", "Then", "divide", "So", "need", "add")] == ["MetaDisc"] * 7
    listing = "1. Add 3 and 4.\n2. Step 3: the answer is 7"
    pairs = labelled(listing)
    assert pairs[:3] == [("1", "MetaDisc"), (".", "MetaDisc"), ("Add", "MetaDisc")]
    assert ("Step", "MetaDisc") in pairs and pairs[pairs.index(("Step", "MetaDisc")) + 1] == ("3", "MetaDisc")
    assert label_of(listing, "3") == "SymbMath"  # "Add 3": an operand, not a list marker
    assert label_of("- Add the two.\n- Done", "-") == "MetaDisc"  # a bullet


def test_coreference():
    text = "She gave it to them, which is what they wanted; this helps him and we'll see that she'll stay."
    labels = dict(labelled(text))
    pronouns = ("She", "it", "them", "which", "they", "this", "him", "we'll", "she'll")
    assert [labels[w] for w in pronouns] == ["CoRef"] * len(pronouns)
    assert labels["that"] == "Grammar"  # a conjunction after "see"
    assert label_of("that's 7 dozen and that bag", "that's") == "CoRef"
    assert label_of("that's 7 dozen and that bag", "that") == "CoRef"


def test_verbal_math():
    text = "He has twice as many apples, three more than half of the total per box, and the number increased by 5."
    labels = dict(labelled(text))
    words = ("twice", "many", "three", "more", "than", "half", "total", "per", "number", "increased")
    assert [labels[w] for w in words] == ["VerbalMath"] * len(words)
    assert label_of("We find x by dividing each side by 2", "dividing") == "VerbalMath"  # states the operation
    assert label_of("Dividing both sides by 3, we get 4", "Dividing") == "MetaDisc"  # narrates the step
    assert label_of("the first two months", "first") == "VerbalMath"  # an ordinal inside a clause


def test_grammar_and_entities():
    labels = dict(labelled("**Natalia** sold the clips of her wallet in March: they were in pages."))
    assert [labels[w] for w in ("*", "the", "of", "in", ":", "were", ".")] == ["Grammar"] * 7
    assert [labels[w] for w in ("Natalia", "sold", "clips", "wallet", "March", "pages")] == ["EntName"] * 6


def test_ties_take_the_higher_priority():
    # "we" is CoRef and "to" Grammar alone; in "we need to" both are MetaDisc (MetaDisc > CoRef > Grammar)
    assert dict(labelled("we need to"))["we"] == "MetaDisc" == dict(labelled("we need to"))["to"]
    assert label_of("we went", "we") == "CoRef"
    assert label_of("That means 5", "That") == "MetaDisc"  # CoRef word in a MetaDisc phrase
    assert label_of("how many are left", "how") == "VerbalMath"  # Grammar word in a VerbalMath phrase
    assert label_of("a = 3", "a") == "SymbMath"  # an article beside a symbol is a variable
    assert label_of("a day", "a") == "Grammar"


def test_deterministic_and_every_word_a_known_label():
    from prunelens.datasets import load_examples

    annotator = RuleAnnotator(None)
    for example in load_examples("gsm8k", "test")[:60]:
        words = [w for w, _, _ in split_words_and_symbols(example.reasoning)]
        labels = annotator.label_words(words, example.reasoning)
        assert len(labels) == len(words) and set(labels) <= set(CATEGORIES)
        assert RuleAnnotator(None).label_words(words, example.reasoning) == labels
    assert "approximation" in RuleAnnotator.__doc__


def test_refuses_words_that_are_not_the_reasoning_split():
    with pytest.raises(AnnotationFailed, match="not split_words_and_symbols"):
        RuleAnnotator(None).label_words(["3", "apples"], "3 + 2 = 5 apples")


CHAINS = [
    {"id": "c1", "question": "Tom has 3 apples and buys 2. How many?", "reasoning": "He has 3 + 2 = 5 apples.",
     "answer": "5"},
    {"id": "c2", "question": "What is 4 times 6?", "reasoning": "First, 4 * 6 = 24, so the product is twice 12.",
     "answer": "24"},
]  # fmt: skip


@pytest.fixture(scope="module")
def rankings_dir(tmp_path_factory, tiny_model_dir):
    from prunelens.rankers.run import RankConfig, run_rank

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("rules")
    chains = write_chains(root / "chains.jsonl", CHAINS)
    config = RankConfig(model=str(tiny_model_dir), chains=chains, method="truncation", limit=None, out=root / "rank")
    return run_rank(config, progress=False).out_dir


@pytest.fixture(scope="module")
def annotated(rankings_dir):
    """The offline annotations of ``rankings_dir``, written by annotate_rankings."""
    from prunelens.annotate.run import AnnotateConfig, annotate_rankings

    return annotate_rankings(AnnotateConfig(rankings=rankings_dir, annotator="offline"), progress=False)


def test_annotate_a_rankings_folder_offline(rankings_dir, annotated):
    from prunelens.annotate.run import AnnotateConfig, annotate_rankings
    from prunelens.core.ranking import load_rankings

    annotations = annotated
    path = annotations_path(rankings_dir, "offline")
    assert load_annotations(path).keys() == {"c1", "c2"}
    for ranking in load_rankings(rankings_dir):
        labels = labels_for(ranking, annotations)
        assert len(labels) == ranking.n and set(labels) <= set(CATEGORIES)
        for piece, label in zip(ranking.reasoning_tokens, labels, strict=True):
            if piece.strip() in {"3", "2", "5", "4", "6", "24", "12", "=", "+", "*"}:
                assert label == "SymbMath", piece
            if piece.strip() in {"He", "First", "twice", "apples"}:
                assert label == {"He": "CoRef", "First": "MetaDisc", "twice": "VerbalMath", "apples": "EntName"}[
                    piece.strip()]  # fmt: skip
            if not piece.strip():
                assert label == "Grammar"
        words = split_words_and_symbols(ranking.reasoning)
        assert annotations[ranking.id].word_labels == label_spans(words, ranking.reasoning)
    lines = path.read_text().count("\n")
    annotate_rankings(AnnotateConfig(rankings=rankings_dir, annotator="offline"), progress=False)  # all done
    assert path.read_text().count("\n") == lines


def test_labels_from_other_annotator_settings_are_not_reused(rankings_dir, annotated, tmp_path):
    import json

    from prunelens.annotate.run import AnnotateConfig, annotate_rankings
    from prunelens.core.errors import PrunelensError

    old = tmp_path / "old-rules.jsonl"
    records = [json.loads(line) for line in annotations_path(rankings_dir, "offline").read_text().splitlines()]
    old.write_text("".join(json.dumps({**r, "settings": {"rules_version": 0}}) + "\n" for r in records))
    with pytest.raises(PrunelensError, match="holds labels made with other settings .*rules_version.: 0"):
        annotate_rankings(AnnotateConfig(rankings=rankings_dir, annotator="offline", out=old), progress=False)


def test_a_token_spanning_words_takes_the_higher_priority_label():
    from prunelens.annotate.run import annotate_ranking
    from prunelens.core.ranking import Ranking

    ranking = Ranking(id="t", method="uniform", model="m", reasoning="she 3 the", reasoning_ids=[1, 2],
                      reasoning_tokens=["she 3", " the"], offsets=[[0, 5], [5, 9]], deletion_order=[0, 1])  # fmt: skip
    annotation = annotate_ranking(RuleAnnotator(None), "offline", ranking)
    assert annotation.word_labels == ["CoRef", "SymbMath", "Grammar"]
    assert annotation.labels == ["SymbMath", "Grammar"]


def test_labels_of_other_tokens_are_refused(rankings_dir, annotated):
    from prunelens.core.ranking import load_rankings

    annotations = annotated
    ranking = load_rankings(rankings_dir)[0]
    other = replace(ranking, reasoning_ids=ranking.reasoning_ids[::-1])
    with pytest.raises(PrunelensError, match=r"^record 'c1': its annotation was made for other tokens"):
        labels_for(other, annotations)
