"""Which examples a run processes, and on which model: the settings every job shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prunelens.datasets import Example, get_benchmark, load_examples
from prunelens.datasets.chains import load_chains
from prunelens.datasets.tokenize import tokenize_chain
from prunelens.core.errors import BadRecordError, PrunelensError
from prunelens.core.jsonl import append_jsonl
from prunelens.core.registry import BENCHMARKS
from prunelens.core.settings import folder_name, name_parts, setting

SKIPPED_NAME = "skipped.jsonl"


def split_ids(text: str | list[str]) -> list[str]:
    """'a, b,c' → ['a', 'b', 'c'] (a list passes through)."""
    return [i.strip() for i in text.split(",") if i.strip()] if isinstance(text, str) else list(text)


@dataclass
class Selection:
    """Examples (a dataset split or a chains file, filtered by ids, cut by limit and shard) and the
    model that reads them."""

    model: str = setting("smollm2-135m", "alias, HF id, local dir or .gguf path", result=True, prefix=True)
    dataset: str = setting("gsm8k", f"{' | '.join(BENCHMARKS.names())} (also picks prompt and answer format)",
                           result=True, prefix=True)  # fmt: skip
    split: str = setting("test", "train | dev | test (| validation for mmlu_pro)", result=True, prefix=True)
    limit: int | None = setting(3, "only the first N selected examples", minimum=0)
    ids: list[str] | None = setting(None, "comma-separated example ids", cli_type=str, parse=split_ids)
    chains: Path | None = setting(None, "JSONL of {id, question, reasoning, answer} instead of a dataset", result=True,
                                  prefix=True, input="examples")  # fmt: skip
    device: str = setting("cpu", "cpu | cuda | auto")
    dtype: str = setting("float32", "float32 | bfloat16 | float16 | float64", result=True, name="")
    skip_bad: bool = setting(False, "log bad records to skipped.jsonl and go on", flag="--skip-bad")
    data_dir: Path | None = setting(None, "folder with the benchmark JSONL files")
    shard: str | None = setting(None, "K/N: only every N-th selected example, from K")

    def run_folder(self, job: str, model_part: str | None = None) -> Path:
        """The default output folder of a ``job`` run on this selection: runs/<job>-<data>-<model>-<named result
        settings>[-<hash of the others>][-shardKofN]; ``model_part`` stands in for the model's name (e.g. "gold")."""
        source = Path(self.chains).stem if self.chains else f"{self.dataset}-{self.split}"
        shard = ["shard{}of{}".format(*parse_shard(self.shard))] if self.shard else []
        return Path("runs") / "-".join([job, source, model_part or folder_name(self.model), *name_parts(self), *shard])


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' → (K, N) with 0 ≤ K < N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise PrunelensError(f"--shard must look like K/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise PrunelensError(f"--shard {text}: K must satisfy 0 ≤ K < N")
    return index, count


def select_examples(selection: Selection, on_skip) -> list[Example]:
    """The examples a selection names; bad records go to ``on_skip`` when ``skip_bad``, else raise."""
    get_benchmark(selection.dataset)  # an unknown --dataset fails here, before run.json records it
    if selection.chains is not None:
        examples = load_chains(selection.chains, dataset=selection.dataset, skip_bad=selection.skip_bad, on_skip=on_skip)
    else:
        examples = load_examples(selection.dataset, selection.split, data_dir=selection.data_dir,
                                 skip_bad=selection.skip_bad, on_skip=on_skip)  # fmt: skip
    if selection.ids is not None:
        by_id = {e.id: e for e in examples}
        missing = [i for i in selection.ids if i not in by_id]
        if missing:
            raise PrunelensError(f"unknown id(s) in the selection: {', '.join(missing)}")
        examples = [by_id[i] for i in selection.ids]
    if selection.limit is not None:
        examples = examples[: selection.limit]
    if selection.shard:
        index, count = parse_shard(selection.shard)
        examples = examples[index::count]
    return examples


def ids_by_length(examples: list[Example], tokenizer, low: int, high: int, count: int) -> list[str]:
    """Ids of the first ``count`` examples whose reasoning has ``low``–``high`` tokens (inclusive)."""
    chosen = []
    for example in examples:
        if example.reasoning and low <= len(tokenizer(example.reasoning, add_special_tokens=False)["input_ids"]) <= high:
            chosen.append(example.id)
            if len(chosen) == count:
                break
    return chosen


def skip_recorder(out_dir: Path, log, skipped: list[str] | None = None) -> Callable[[BadRecordError], None]:
    """A callback for bad records: one log line, a line in out_dir/skipped.jsonl, the id in ``skipped``."""

    def skip(error: BadRecordError) -> None:
        log(f"skipped {error}")
        if skipped is not None:
            skipped.append(error.record_id)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        append_jsonl(Path(out_dir) / SKIPPED_NAME, {"id": error.record_id, "error": str(error)})

    return skip


def tokenized_chains(selection: Selection, examples: list[Example], loaded, skip) -> Iterator[tuple[Example, object]]:
    """(example, TokenizedChain) for each example; a bad one raises, or goes to ``skip`` when ``skip_bad``."""
    bench = get_benchmark(selection.dataset)
    for example in examples:
        try:
            chain = tokenize_chain(loaded.tokenizer, bench, example, loaded.max_positions)
        except BadRecordError as error:
            if not selection.skip_bad:
                raise
            skip(error)
            continue
        yield example, chain
