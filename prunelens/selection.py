"""Which examples a run processes, and on which model: the settings every job shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prunelens.datasets import Example, load_examples
from prunelens.datasets.chains import load_chains
from prunelens.errors import PrunelensError


@dataclass
class Selection:
    """Examples (a dataset split or a chains file, filtered by ids, cut by limit and shard) and the
    model that reads them."""

    model: str = "smollm2-135m"
    dataset: str = "gsm8k"
    split: str = "test"
    limit: int | None = 3
    ids: list[str] | None = None
    chains: Path | None = None
    device: str = "cpu"
    dtype: str = "float32"
    skip_bad: bool = False
    data_dir: Path | None = None
    shard: str | None = None  # "K/N": every N-th selected example, starting at K


def select_examples(selection: Selection, on_skip) -> list[Example]:
    """The examples a selection names; bad records go to ``on_skip`` when ``skip_bad``, else raise."""
    from prunelens.pruning.merge import parse_shard

    if selection.chains is not None:
        examples = load_chains(selection.chains, dataset=selection.dataset, skip_bad=selection.skip_bad, on_skip=on_skip)
    else:
        examples = load_examples(selection.dataset, selection.split, data_dir=selection.data_dir,
                                 skip_bad=selection.skip_bad, on_skip=on_skip)  # fmt: skip
    if selection.ids:
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
