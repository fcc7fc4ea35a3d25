"""TokenSkip / LLMLingua-2 ranker on a tiny random XLM-RoBERTa classifier and an offline-trained tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import load_experiment

from prunelens.core.errors import PrunelensError
from prunelens.rankers.tokenskip import (
    load_classifier,
    split_on_whitespace,
    token_keep_probabilities,
    tokenskip_keep_probabilities,
    word_chunks,
    word_keep_probabilities,
)

CORPUS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "So the total is 48 + 24 = 72 clips. Therefore the answer is 72.",
    "Weng earns 12 dollars an hour for babysitting; yesterday she did 50 minutes of babysitting.",
    "First compute the rate per minute, then multiply by the number of minutes.",
]
TEXT = (
    "First, Natalia sold 48 clips in April.\nThen she sold half   as many in May:\n\n"
    "48 / 2 = 24 clips. So the total is 48 + 24 = 72 clips; Thereforemultiplyingminutes supercalifragilistic!"
)


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    """A saved tiny random XLM-RoBERTa token classifier with a small trained WordPiece fast tokenizer."""
    save_standin_classifier = load_experiment("standin_classifier").save_standin_classifier
    target = tmp_path_factory.mktemp("tiny-llmlingua")
    save_standin_classifier(target, CORPUS, vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=160, initializer_range=0.5)  # fmt: skip
    return target


@pytest.fixture(scope="module")
def classifier(classifier_dir):
    torch.set_num_threads(1)
    return load_classifier(str(classifier_dir))


def naive_word_probs(model, tokenizer, words, max_length=None):
    """One forward pass over ``words``; per-word mean of the softmaxed label-1 probability, by hand."""
    encoded = tokenizer(words, is_split_into_words=True, truncation=max_length is not None, max_length=max_length,
                        return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        logits = model(**encoded).logits[0].double()
    keep = torch.softmax(logits, dim=-1)[:, 1].tolist()
    out = []
    for index in range(len(words)):
        values = [p for p, w in zip(keep, encoded.word_ids()) if w == index]
        out.append(sum(values) / len(values))
    return np.array(out)


def test_split_on_whitespace_spans_are_exact():
    text = "  Total =\t3 apples\nso  3.\n\n"
    words = split_on_whitespace(text)
    assert [w for w, _, _ in words] == ["Total", "=", "3", "apples", "so", "3."]
    assert [(s, e) for _, s, e in words] == [(2, 7), (8, 9), (10, 11), (12, 18), (19, 21), (23, 25)]
    assert all(text[s:e] == w for w, s, e in words)
    words = split_on_whitespace(TEXT)
    assert len(words) == 33 and all(w == TEXT[s:e] and not any(c.isspace() for c in w) for w, s, e in words)
    assert "".join(TEXT[e:s] for (_, _, e), (_, s, _) in zip(words, words[1:])).isspace()  # only spaces between
    assert split_on_whitespace("") == [] and split_on_whitespace(" \n\t ") == []


def test_load_classifier_returns_eval_model(classifier):
    model, tokenizer = classifier
    assert not model.training and model.config.num_labels == 2 and tokenizer.is_fast


def test_load_classifier_missing_path_is_one_line(tmp_path):
    with pytest.raises(PrunelensError) as info:
        load_classifier(str(tmp_path / "no-such-model"))
    message = str(info.value)
    assert message.startswith(f"TokenSkip classifier {str(tmp_path / 'no-such-model')!r}: could not load: ")
    assert "\n" not in message and len(message) > len("TokenSkip classifier : could not load: ") + 10


def test_word_probabilities_match_a_naive_single_pass(classifier):
    model, tokenizer = classifier
    words = [w for w, _, _ in split_on_whitespace(TEXT)]
    assert len(word_chunks(tokenizer, words, max_tokens=150)) == 1
    got = word_keep_probabilities(model, tokenizer, words, max_tokens=150)
    assert got.dtype == np.float64 and got.shape == (len(words),)
    np.testing.assert_allclose(got, naive_word_probs(model, tokenizer, words), atol=1e-6, rtol=0)
    assert got.std() > 1e-3  # the random classifier does tell words apart
    assert word_keep_probabilities(model, tokenizer, []).shape == (0,)


def test_chunks_fit_the_window_and_cover_every_word(classifier):
    model, tokenizer = classifier
    words = [w for w, _, _ in split_on_whitespace(TEXT)]
    long_word = max(range(len(words)), key=lambda i: len(tokenizer.tokenize(words[i])))
    assert len(tokenizer.tokenize(words[long_word])) > 10  # longer than the window: truncated, not dropped
    chunks = word_chunks(tokenizer, words, max_tokens=12)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(words) and len(chunks) > 3
    assert all(stop > start and stop == following for (start, stop), (following, _) in zip(chunks, chunks[1:]))
    for start, stop in chunks:
        length = len(tokenizer(words[start:stop], is_split_into_words=True)["input_ids"])
        assert length <= 12 or (stop - start == 1 and start == long_word)
        if stop < len(words) and start != long_word:  # greedy: the next word would not have fitted
            assert len(tokenizer(words[start : stop + 1], is_split_into_words=True)["input_ids"]) > 12
    got = word_keep_probabilities(model, tokenizer, words, max_tokens=12)
    assert got.shape == (len(words),) and np.all((got > 0) & (got < 1))
    for start, stop in chunks:  # each chunk is scored on its own
        expected = naive_word_probs(model, tokenizer, words[start:stop], max_length=12)
        np.testing.assert_allclose(got[start:stop], expected, atol=1e-6, rtol=0)
    with pytest.raises(ValueError):
        word_chunks(tokenizer, words, max_tokens=2)


def test_token_probabilities_follow_the_overlap_rules():
    text = "Total = 3 apples\nso 3."
    words = split_on_whitespace(text)  # Total(0,5) =(6,7) 3(8,9) apples(10,16) so(17,19) 3.(20,22)
    probs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    cases = {
        (0, 0): 0.1,  # empty span before everything: the next word
        (0, 3): 0.1,  # "Tot" and "al": a word split over two tokens shares its probability
        (3, 5): 0.1,
        (2, 2): 0.1,  # empty span inside a word: that word
        (5, 9): 0.2,  # " = 3": one character of "=" and of "3", a tie goes to the earlier word
        (7, 8): 0.3,  # a lone space: the next word
        (7, 10): 0.3,  # " 3 ": the only word it overlaps
        (9, 13): 0.4,
        (13, 16): 0.4,
        (15, 20): 0.5,  # "s\nso ": 2 characters of "so" beat 1 of "apples"
        (16, 17): 0.5,  # pure "\n": the next word
        (17, 21): 0.5,  # "so 3" spans two words: the most-overlapping one
        (21, 22): 0.6,
        (22, 22): 0.6,  # empty span at the end: no word follows, the last word
    }
    got = token_keep_probabilities(text, list(cases), words, probs)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, list(cases.values()))
    assert token_keep_probabilities(text + "\n\n", [(22, 23), (23, 24)], words, probs).tolist() == [0.6, 0.6]
    assert token_keep_probabilities("  \n", [(0, 2), (2, 3)], [], []).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError):
        token_keep_probabilities(text, [(0, 1)], words, probs[:-1])
    with pytest.raises(ValueError):
        token_keep_probabilities(text, [(20, 30)], words, probs)


def test_end_to_end_on_pruner_offsets(classifier):
    model, tokenizer = classifier
    pruner = tokenizer.backend_tokenizer  # any tokenizer with offsets stands in for the pruner's
    offsets = [tuple(span) for span in pruner.encode(TEXT, add_special_tokens=False).offsets]
    got = tokenskip_keep_probabilities(model, tokenizer, TEXT, offsets, max_tokens=40)
    words = split_on_whitespace(TEXT)
    word_probs = word_keep_probabilities(model, tokenizer, [w for w, _, _ in words], max_tokens=40)
    np.testing.assert_array_equal(got, token_keep_probabilities(TEXT, offsets, words, word_probs))
    assert got.shape == (len(offsets),)
    assert tokenskip_keep_probabilities(model, tokenizer, " \n ", [(0, 1), (1, 2), (2, 2)]).tolist() == [1.0] * 3
