"""Dataset loaders on the real files in ../shared/data: counts, splits, gold chains, grading."""

import pytest
from conftest import DATA_DIR

from prunelens.datasets import get_benchmark, load_examples, partition
from prunelens.datasets.chains import load_chains
from prunelens.datasets.grading import extract_letter, numbers_equal
from prunelens.errors import BadRecordError, PrunelensError


@pytest.mark.parametrize(
    "dataset,split,count",
    [("gsm8k", "test", 1319), ("gsm8k", "train", 6973), ("gsm8k", "dev", 500), ("math500", "test", 500),
     ("mmlu_pro", "train", 10_000), ("mmlu_pro", "dev", 800), ("mmlu_pro", "test", 1232),
     ("mmlu_pro", "validation", 70)],
)  # fmt: skip
def test_split_sizes(dataset, split, count):
    assert len(load_examples(dataset, split, data_dir=DATA_DIR)) == count


@pytest.mark.parametrize("dataset,splits", [("gsm8k", ("train", "dev")), ("mmlu_pro", ("train", "dev", "test"))])
def test_derived_splits_are_disjoint_complete_and_reproducible(dataset, splits):
    parts = [load_examples(dataset, s, data_dir=DATA_DIR) for s in splits]
    ids = [e.id for part in parts for e in part]
    assert len(ids) == len(set(ids))
    assert [e.id for e in load_examples(dataset, splits[0], data_dir=DATA_DIR)] == [e.id for e in parts[0]]


def test_partition_is_seeded():
    a = partition(100, {"dev": 10, "train": None}, seed=0)
    assert a == partition(100, {"dev": 10, "train": None}, seed=0)
    assert a != partition(100, {"dev": 10, "train": None}, seed=1)
    assert sorted(a["dev"] + a["train"]) == list(range(100))
    with pytest.raises(PrunelensError, match="exceed"):
        partition(5, {"dev": 10}, seed=0)


def test_gsm8k_gold_chain_parsing():
    first = load_examples("gsm8k", "test", data_dir=DATA_DIR)[0]
    assert first.id == "gsm8k-test-0" and first.answer == "18"
    assert "<<" not in first.reasoning and "####" not in first.reasoning
    assert first.reasoning.startswith("Janet sells 16 - 3 - 4 = 9 duck eggs a day.")
    assert first.reasoning.endswith("$18 every day at the farmer’s market.")
    assert all("<<" not in e.reasoning for e in load_examples("gsm8k", "train", data_dir=DATA_DIR)[:200])


def test_mmlu_pro_validation_chain_and_options():
    example = load_examples("mmlu_pro", "validation", data_dir=DATA_DIR)[0]
    assert example.id == "mmlu_pro-0" and example.answer == "A" and len(example.options) == 10
    assert example.reasoning.startswith("Let's think step by step.")
    assert "The answer is" not in example.reasoning[-25:]
    assert load_examples("mmlu_pro", "test", data_dir=DATA_DIR)[0].reasoning is None


def test_math500_fields():
    example = load_examples("math500", "test", data_dir=DATA_DIR)[0]
    assert example.id == "math500-test/precalculus/807"
    assert example.answer and example.reasoning and example.meta["level"] in range(1, 6)


@pytest.mark.parametrize(
    "completion,gold,ok",
    [("so she makes $1,234.", "1234", True), ("#### 18", "18", True), ("The answer: 18.0", "18", True),
     ("#### 17", "18", False), ("no number here", "18", False), ("3 then 5\n#### -2", "-2", True)],
)  # fmt: skip
def test_gsm8k_grading(completion, gold, ok):
    assert get_benchmark("gsm8k").is_correct(completion, gold) is ok


def test_numbers_equal_edge_cases():
    assert numbers_equal("$70,000", "70000") and numbers_equal("5.", "5") and not numbers_equal(None, "5")


@pytest.mark.parametrize(
    "completion,letter",
    [("... The answer is (C).", "C"), ("the answer is b", "B"), ("(D)", "D"), ("I think so", None)],
)
def test_letter_extraction(completion, letter):
    assert extract_letter(completion) == letter


def test_mmlu_grading():
    bench = get_benchmark("mmlu_pro")
    assert bench.is_correct("Thus the answer is (H).", "H") and not bench.is_correct("The answer is (A).", "H")


@pytest.mark.parametrize(
    "completion,gold,ok",
    [("so $\\boxed{\\frac{1}{2}}$", "\\frac12", True), ("we get \\boxed{0.5}", "\\frac{1}{2}", True),
     ("\\boxed{3}", "4", False)],
)  # fmt: skip
def test_math_grading_uses_math_verify(completion, gold, ok):
    assert get_benchmark("math500").is_correct(completion, gold) is ok


def test_unknown_dataset_and_split():
    with pytest.raises(PrunelensError, match="unknown dataset 'gsm9k'"):
        load_examples("gsm9k", "test")
    with pytest.raises(PrunelensError, match="unknown split 'dev'"):
        load_examples("math500", "dev", data_dir=DATA_DIR)


def test_data_dir_lookup_order(tmp_path, monkeypatch):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text('{"question": "q?", "answer": "a\\n#### 3"}\n')
    monkeypatch.setenv("PRUNELENS_DATA_DIR", str(tmp_path))
    assert [e.answer for e in load_examples("gsm8k", "test")] == ["3"]
    with pytest.raises(PrunelensError, match="not found in --data-dir"):
        load_examples("gsm8k", "train", data_dir=tmp_path)


def test_offline_hub_fallback_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ../shared/data next to the cwd
    monkeypatch.setenv("PRUNELENS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("prunelens.datasets.sources.candidate_data_dirs",
                        lambda explicit=None: [("env", tmp_path)])  # fmt: skip
    with pytest.raises(PrunelensError, match="no local copy.*HF_HUB_OFFLINE"):
        load_examples("math500", "test")


def test_bad_gsm8k_row_names_the_record(tmp_path):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text('{"question": "q", "answer": "a\\n#### 1"}\n{"question": "q", "answer": "no final"}\n')
    with pytest.raises(BadRecordError, match="'gsm8k-test-1'.*missing final answer"):
        load_examples("gsm8k", "test", data_dir=tmp_path)
    skipped = []
    assert len(load_examples("gsm8k", "test", data_dir=tmp_path, skip_bad=True, on_skip=skipped.append)) == 1
    assert [e.record_id for e in skipped] == ["gsm8k-test-1"]


def test_chains_file_errors(tmp_path):
    path = tmp_path / "chains.jsonl"
    path.write_text('{"id": "a", "question": "q", "reasoning": "r", "answer": "1"}\n{"id": "b", "question": \n')
    with pytest.raises(BadRecordError, match="chains.jsonl:2.*malformed JSON"):
        load_chains(path)
    path.write_text('{"id": "a", "question": "q", "reasoning": "r"}\n')
    with pytest.raises(BadRecordError, match="'a': missing 'answer'"):
        load_chains(path)
    path.write_text('{"id": "a", "question": "q", "reasoning": "r", "answer": 1}\n' * 2)
    with pytest.raises(BadRecordError, match="'a': duplicate id"):
        load_chains(path)


PACKAGED_GSM8K_SHA256 = "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"


def test_packaged_gsm8k_test_needs_no_data_dir(tmp_path, monkeypatch):
    from prunelens.datasets import sources

    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # no ../shared/data next to the cwd
    monkeypatch.setattr(sources, "REPO_ROOT", tmp_path / "repo")  # nor next to the repo root
    monkeypatch.delenv("PRUNELENS_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    found = [label for label, d in sources.candidate_data_dirs() if (d / "gsm8k" / "test.jsonl").is_file()]
    assert found == ["packaged"]
    packaged = load_examples("gsm8k", "test")
    assert len(packaged) == 1319 and packaged == load_examples("gsm8k", "test", data_dir=DATA_DIR)
    with pytest.raises(PrunelensError, match="no local copy.*HF_HUB_OFFLINE") as error:
        load_examples("gsm8k", "train")  # only the test split ships
    assert "\n" not in str(error.value)


def test_packaged_gsm8k_is_byte_identical_package_data():
    import hashlib
    from importlib.resources import files

    resource = files("prunelens.datasets") / "data/gsm8k/test.jsonl"
    assert resource.is_file()
    data = resource.read_bytes()
    assert len(data) == 749_738 and hashlib.sha256(data).hexdigest() == PACKAGED_GSM8K_SHA256
    assert data == (DATA_DIR / "gsm8k" / "test.jsonl").read_bytes()
