"""Matched-length pruning across tokenizers: smollm2's real tokenizer and a GPT-2-style byte-level
BPE trained here on GSM8K (GPT-2's own vocabulary cannot be downloaded offline)."""

from __future__ import annotations

import json
import math
import random
import re

import pytest
from conftest import DATA_DIR

from prunelens.compress import MatchedChain, load_student_tokenizer, matched_chain
from prunelens.core.errors import PrunelensError

KEEPS = (0.5, 0.7, 0.9)


def gold_reasoning(count: int) -> list[str]:
    """GSM8K test gold reasoning: the part before '####', calculator annotations removed."""
    lines = (DATA_DIR / "gsm8k" / "test.jsonl").read_text().splitlines()[:count]
    return [re.sub(r"<<[^>]*>>", "", json.loads(line)["answer"].split("####")[0]).strip() for line in lines]


def pieces_of(tokenizer, text: str) -> list[str]:
    """Pruner pieces: piece i runs from the end of token i-1 to the end of token i (last: to the end)."""
    ends = [end for _, end in tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]
    pieces, previous = [], 0
    for i, end in enumerate(ends):
        stop = len(text) if i == len(ends) - 1 else max(previous, end)
        pieces.append(text[previous:stop])
        previous = stop
    return pieces


def is_subsequence(short: str, long: str) -> bool:
    rest = iter(long)
    return all(ch in rest for ch in short)


def student_count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def orders(count: int) -> dict[str, list[int]]:
    shuffled = list(range(count))
    random.Random(0).shuffle(shuffled)
    return {"random": shuffled, "truncation": list(range(count))[::-1], "identity": list(range(count))}


@pytest.fixture(scope="module")
def smollm2_tokenizer(smollm2_dir):
    return load_student_tokenizer(str(smollm2_dir))


@pytest.fixture(scope="module")
def bpe_tokenizer(tmp_path_factory):
    """A GPT-2-style byte-level BPE (GPT-2 regex, keeps digit runs) trained on 300 GSM8K train answers,
    saved as a transformers fast tokenizer and loaded back through load_student_tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    lines = (DATA_DIR / "gsm8k" / "train.jsonl").read_text().splitlines()[:300]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=800, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)  # fmt: skip
    bpe.train_from_iterator((json.loads(line)["answer"] for line in lines), trainer)
    target = tmp_path_factory.mktemp("bpe-student")
    PreTrainedTokenizerFast(tokenizer_object=bpe).save_pretrained(target)
    return load_student_tokenizer(str(target))


@pytest.fixture(scope="module")
def pairs(smollm2_tokenizer, bpe_tokenizer):
    return {"smollm2->bpe": (smollm2_tokenizer, bpe_tokenizer), "bpe->smollm2": (bpe_tokenizer, smollm2_tokenizer)}


def test_tokenizers_really_differ(smollm2_tokenizer, bpe_tokenizer):
    texts = gold_reasoning(10)
    differing = sum(pieces_of(smollm2_tokenizer, t) != pieces_of(bpe_tokenizer, t) for t in texts)
    assert differing == len(texts)

    def digit_pieces(tokenizer):
        return [p for p in pieces_of(tokenizer, "costs 125 dollars") if any(c.isdigit() for c in p)]

    assert digit_pieces(smollm2_tokenizer) == ["1", "2", "5"]  # one digit per token
    assert digit_pieces(bpe_tokenizer) == [" 12", "5"]  # digit runs (with their space) merge


@pytest.mark.parametrize("pair", ["smollm2->bpe", "bpe->smollm2"])
def test_cross_tokenizer_hits_target(pairs, pair):
    pruner, student = pairs[pair]
    exact = total = 0
    for text in gold_reasoning(10):
        pieces = pieces_of(pruner, text)
        assert "".join(pieces) == text
        n = student_count(student, text)
        for name, order in orders(len(pieces)).items():
            full = matched_chain(pieces, order, student, 1.0)
            assert (full.text, full.student_tokens, full.target, full.n_student) == (text, n, n, n)
            assert (full.pruner_kept, full.pruner_partial) == (len(pieces), 0)
            for keep in KEEPS:
                result = matched_chain(pieces, order, student, keep)
                assert result.target == math.floor(keep * n + 0.5) and result.n_student == n
                assert result.student_tokens == student_count(student, result.text)
                assert abs(result.student_tokens - result.target) <= 1, (name, keep, result)
                assert is_subsequence(result.text, text)
                assert 0 < result.pruner_kept <= len(pieces)
                exact += result.student_tokens == result.target
                total += 1
    assert exact >= 0.95 * total, f"{exact}/{total} exact"


def test_truncation_order_keeps_a_prefix(pairs):
    """Deleting from the end keeps a prefix of the text at every fraction."""
    pruner, student = pairs["smollm2->bpe"]
    text = gold_reasoning(3)[2]
    pieces = pieces_of(pruner, text)
    for keep in KEEPS:
        result = matched_chain(pieces, list(range(len(pieces)))[::-1], student, keep)
        assert text.startswith(result.text) and result.student_tokens == result.target


@pytest.mark.parametrize("which", ["smollm2", "bpe"])
def test_same_tokenizer_reproduces_pruner_chain(smollm2_tokenizer, bpe_tokenizer, which):
    """Pruner = student: the pruner's own chain whenever it re-tokenizes to the target."""
    tokenizer = smollm2_tokenizer if which == "smollm2" else bpe_tokenizer
    reproduced = total = 0
    for text in gold_reasoning(10):
        pieces = pieces_of(tokenizer, text)
        count = len(pieces)
        for name, order in orders(count).items():
            for keep in KEEPS:
                deleted = set(order[: count - math.floor(keep * count + 0.5)])
                chain = "".join(p for i, p in enumerate(pieces) if i not in deleted)
                result = matched_chain(pieces, order, tokenizer, keep)
                assert result.n_student == count
                if "" in pieces:  # a byte token: the pruner counts it, the student mapping cannot
                    continue
                if student_count(tokenizer, chain) == result.target:
                    assert result.text == chain
                    assert (result.pruner_kept, result.pruner_partial) == (count - len(deleted), 0)
                    reproduced += 1
                else:  # re-tokenization merged or split tokens: the adjustment still hits the target
                    assert result.text != chain and abs(result.student_tokens - result.target) <= 1
                total += 1
    assert total >= 0.9 * 10 * 3 * len(KEEPS)
    assert reproduced >= 0.8 * total, f"{reproduced}/{total}"


class WordTokenizer:
    """A hand-made 'fast' tokenizer: one token per run of non-space characters or of newlines."""

    is_fast = True

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
        spans = [m.span() for m in re.finditer(r"[^\s]+|\n+", text)]
        out = {"input_ids": list(range(len(spans)))}
        if return_offsets_mapping:
            out["offset_mapping"] = spans
        return out


def test_hand_made_spans_and_rules():
    """'alpha' spans pieces al|p|ha (ranks 0, 4, 2); piece ' beta gamma' (rank 1) spans two words."""
    pieces = ["al", "p", "ha", " beta gamma", " delta"]
    order = [0, 3, 2, 4, 1]
    words = WordTokenizer()

    def run(keep, rule="majority") -> MatchedChain:
        return matched_chain(pieces, order, words, keep, rule=rule)

    # majority: 'alpha' goes once 3 of its 5 characters are gone (rank 2), after beta and gamma (1).
    assert run(0.75).text == "alpha gamma delta"  # ties by position: ' beta' first; spaces survive
    assert run(0.5).text == "alpha delta"
    assert run(0.25).text == " delta"
    assert [run(k).student_tokens for k in (0.25, 0.5, 0.75, 1.0)] == [1, 2, 3, 4]
    # 'alpha gamma delta' keeps pieces 0-2 and 4 whole and part of ' beta gamma'.
    assert (run(0.75).pruner_kept, run(0.75).pruner_partial) == (5, 1)
    assert (run(0.5).pruner_kept, run(0.5).pruner_partial) == (4, 0)
    # min: 'alpha' goes with its first piece (rank 0); max: only with its last (rank 4).
    assert run(0.75, "min").text == " beta gamma delta"
    assert run(0.25, "max").text == "alpha"


def test_whitespace_only_and_leading_space_tokens():
    """A newline-run token is ranked by its own characters; a leading space does not vote."""
    words = WordTokenizer()
    pieces = ["ab ", "c\n", "\nde"]  # student tiling: 'ab' | ' c' | '\n\n' | 'de'
    # ranks: piece 1 → 0, piece 0 → 1, piece 2 → 2. '\n\n' covers pieces 1 and 2: its 2-character
    # majority is the later rank (2), so it goes after 'ab' (1); ties by position.
    assert matched_chain(pieces, [1, 0, 2], words, 0.5).text == "\n\nde"
    assert matched_chain(pieces, [1, 0, 2], words, 0.25).text == "de"
    # ranks: piece 1 → 0, piece 2 → 1, piece 0 → 2. ' c' is ranked by 'c' (0), not by its space (2).
    assert matched_chain(pieces, [1, 2, 0], words, 0.75).text == "ab\n\nde"
    # The plain prefix (' c', '\n\n' gone) gives 'abde', one word: the adjustment instead removes
    # ' c' and the next unit in the order after '\n\n', 'de', to hit 2 tokens.
    result = matched_chain(pieces, [1, 2, 0], words, 0.5)
    assert (result.text, result.student_tokens, result.target) == ("ab\n\n", 2, 2)


def test_multibyte_characters_group_byte_tokens(bpe_tokenizer, smollm2_tokenizer):
    """Byte tokens of one unseen character share its offsets: they are removed together."""
    text = "It costs 5€ or 7 ¥ today 😀 and then 12 more."
    n = student_count(bpe_tokenizer, text)
    assert n > len(bpe_tokenizer(text.replace("😀", "x"), add_special_tokens=False)["input_ids"]) + 1
    pieces = pieces_of(smollm2_tokenizer, text)
    for name, order in orders(len(pieces)).items():
        for keep in (0.3, 0.5, 0.7, 0.9, 1.0):
            result = matched_chain(pieces, order, bpe_tokenizer, keep)
            assert abs(result.student_tokens - result.target) <= 1, (name, keep)
            assert is_subsequence(result.text, text)
            assert result.student_tokens == student_count(bpe_tokenizer, result.text)


def test_byte_tokens_count_in_the_first_estimate(bpe_tokenizer, smollm2_tokenizer):
    """Removing one unseen emoji removes its 4 byte tokens; no re-tokenization needed to see that."""
    text = "Total: 12 more today 😀😀"
    n = student_count(bpe_tokenizer, text)
    assert n - student_count(bpe_tokenizer, text[:-1]) == 4
    pieces = pieces_of(smollm2_tokenizer, text)
    result = matched_chain(pieces, list(range(len(pieces)))[::-1], bpe_tokenizer, (n - 4) / n, max_tries=1)
    assert (result.text, result.student_tokens, result.target) == (text[:-1], n - 4, n - 4)


def test_early_stopped_ranking(pairs):
    pruner, student = pairs["smollm2->bpe"]
    text = gold_reasoning(1)[0]
    pieces = pieces_of(pruner, text)
    prefix = list(range(len(pieces)))[::-1][: len(pieces) // 2]  # the second half, from the end
    result = matched_chain(pieces, prefix, student, 0.7)
    assert text.startswith(result.text) and result.student_tokens == result.target
    with pytest.raises(ValueError, match=r"^keep fraction 0.2 not reached: the ranking stops at 0\.\d+"):
        matched_chain(pieces, prefix, student, 0.2)


@pytest.mark.parametrize("keep", [0, 1.5, -0.1, float("nan")])
def test_bad_keep(keep):
    with pytest.raises(ValueError, match="keep fraction must be in"):
        matched_chain(["a", "b"], [0, 1], WordTokenizer(), keep)


def test_bad_order():
    with pytest.raises(ValueError, match="deletion order"):
        matched_chain(["a", "b"], [0, 0], WordTokenizer(), 0.5)
    with pytest.raises(ValueError, match="deletion order"):
        matched_chain(["a", "b"], [2], WordTokenizer(), 0.5)


def test_unloadable_tokenizer(tmp_path):
    for spec in (str(tmp_path), str(tmp_path / "missing")):
        with pytest.raises(PrunelensError) as info:
            load_student_tokenizer(spec)
        message = str(info.value)
        assert "\n" not in message and message.startswith(f"student tokenizer {spec!r}: ")
    (tmp_path / "tokenizer.json").write_text("{broken")
    with pytest.raises(PrunelensError, match=r"could not load: .*"):
        load_student_tokenizer(str(tmp_path))


def test_slow_tokenizer_refused(monkeypatch, tmp_path):
    import transformers

    class Slow:
        is_fast = False

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: Slow())
    with pytest.raises(PrunelensError, match="not a fast tokenizer"):
        load_student_tokenizer(str(tmp_path))


def test_compress_rankings_writes_resumes_refuses_and_skips(tmp_path, tiny_model_dir):
    from conftest import write_chains

    from prunelens.compress import CompressConfig, chains_path, compress_rankings
    from prunelens.core.errors import BadRecordError
    from prunelens.rankers.run import RankConfig, run_rank

    rows = [{"id": f"c{i}", "question": "q?", "reasoning": text, "answer": "1"}
            for i, text in enumerate(["First add 3 and 4 to get 7.", "Then 7 times 2 is 14, so 14 in all."])]  # fmt: skip
    chains = write_chains(tmp_path / "chains.jsonl", rows)
    ranked = run_rank(RankConfig(model=str(tiny_model_dir), chains=chains, limit=None, method="truncation",
                                 out=tmp_path / "rank"), progress=False).out_dir  # fmt: skip
    config = CompressConfig(rankings=ranked, keep=[0.5, 0.9], student_tokenizer=str(tiny_model_dir), out=tmp_path / "c")
    written = compress_rankings(config, log=lambda line: None)
    assert sorted(written) == [0.5, 0.9] and [c["id"] for c in written[0.5]] == ["c0", "c1"]
    for chain, row in zip(written[0.5], rows):
        assert chain["student_tokens"] == chain["target"] and row["reasoning"].startswith(chain["reasoning"].rstrip())
        assert {"question", "answer", "method", "keep", "student_tokens"} <= set(chain)
    before = chains_path(tmp_path / "c", 0.5).read_text()
    assert compress_rankings(config, log=lambda line: None) == written  # a rerun resumes: nothing new
    assert chains_path(tmp_path / "c", 0.5).read_text() == before
    with pytest.raises(PrunelensError, match="other settings: student_tokenizer"):
        compress_rankings(CompressConfig(rankings=ranked, keep=[0.5, 0.9], student_tokenizer="smollm2-135m",
                                         out=tmp_path / "c"))  # fmt: skip
    # a ranking that stops early cannot be cut below its reach: an error, or skipped with --skip-bad
    lines = (ranked / "rankings.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["deletion_order"] = first["deletion_order"][:1]
    (ranked / "rankings.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    early = CompressConfig(rankings=ranked, keep=[0.5], student_tokenizer=str(tiny_model_dir), out=tmp_path / "e")
    with pytest.raises(BadRecordError, match="'c0': keep fraction 0.5 not reached"):
        compress_rankings(early, log=lambda line: None)
    early.skip_bad = True
    assert [c["id"] for c in compress_rankings(early, log=lambda line: None)[0.5]] == ["c1"]
    assert "c0" in (tmp_path / "e" / "skipped.jsonl").read_text()
