"""Dataset loaders on the benchmark files packaged with prunelens: counts, splits, gold chains, grading,
checksums, and that a clone or a built wheel needs nothing outside the package."""

import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import DATA_DIR

from prunelens.datasets import get_benchmark, load_examples, partition
from prunelens.datasets.chains import load_chains
from prunelens.datasets.grading import extract_letter, numbers_equal
from prunelens.datasets import sources
from prunelens.core.errors import BadRecordError, PrunelensError
from prunelens.core.registry import BENCHMARKS


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
    assert len(load_examples("gsm8k", "train")) == 6973  # not in that folder: the packaged copy answers
    with pytest.raises(PrunelensError, match="not found in --data-dir"):
        load_examples("gsm8k", "train", data_dir=tmp_path)


def test_offline_hub_fallback_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
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


def packaged_table() -> dict[str, tuple[int, int, str]]:
    """file -> (records, bytes, sha256), as the packaged data README states them."""
    readme = (DATA_DIR / "README.md").read_text()
    rows = re.findall(r"^\| (\S+\.jsonl) \| (\d+) \| (\d+) \| ([0-9a-f]{64}) \|$", readme, flags=re.M)
    return {name: (int(records), int(size), sha) for name, records, size, sha in rows}


def benchmark_files() -> set[str]:
    """Every raw file a registered benchmark reads."""
    return {f for name in BENCHMARKS.names() for f in get_benchmark(name).raw_files.values()}


def test_every_benchmark_file_ships_with_its_stated_checksum():
    table = packaged_table()
    assert set(table) == benchmark_files() and len(table) == 5
    for name, (records, size, sha) in table.items():
        data = (DATA_DIR / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha), name
        assert sum(1 for line in data.splitlines() if line.strip()) == records, name


def test_every_split_loads_offline_from_an_empty_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PRUNELENS_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is never reached: the packaged copy answers
    for name in BENCHMARKS.names():
        for split in get_benchmark(name).splits:
            assert load_examples(name, split), (name, split)
    assert [label for label, _ in sources.candidate_data_dirs()] == ["packaged"]


def test_no_source_refers_to_a_folder_beside_the_repository():
    root = Path(__file__).resolve().parents[1]
    texts = [p for pattern in ("prunelens/**/*.py", "tests/*.py", "experiments/*.py", "*.md", "docs/*.md",
                               "Makefile", ".ci/*", "pyproject.toml") for p in root.glob(pattern)]  # fmt: skip
    outside = "../" + "shared"  # spelt apart so that this file does not match itself
    assert [str(p) for p in texts if outside in p.read_text()] == []


@pytest.mark.slow
def test_built_wheel_and_sdist_hold_every_data_file(tmp_path):
    root = Path(__file__).resolve().parents[1]
    source = tmp_path / "source"  # a copy, so the build leaves the checkout alone
    shutil.copytree(root / "prunelens", source / "prunelens", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    for kind in ("wheel", "sdist"):  # one process each: a second build in the same process writes nothing
        build = f"from setuptools import build_meta; import sys; build_meta.build_{kind}(sys.argv[1])"
        subprocess.run([sys.executable, "-c", build, str(tmp_path / "dist")], cwd=source, check=True,
                       capture_output=True)  # fmt: skip
    wanted = {f"prunelens/datasets/data/{name}" for name in [*packaged_table(), "README.md"]}
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert wanted <= set(archive.namelist())
        assert all(archive.read(f) == (root / f).read_bytes() for f in wanted)
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        assert wanted <= {name.partition("/")[2] for name in archive.getnames()}
