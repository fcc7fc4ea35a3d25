"""Training data for attention surrogates: a feature store joined with a pruning run's targets, by example id,
and a surrogate fitted from the two runs that make them.

It stands above both the probes (features) and pruning (targets), so neither has to import the other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prunelens.core.progress import log_line
from prunelens.core.ranking import load_rankings
from prunelens.probes.run import FeaturesConfig, run_features
from prunelens.probes.store import FeatureIndex, store_meta
from prunelens.probes.surrogate import ExampleData, Surrogate, SurrogateConfig, train_surrogate
from prunelens.pruning.compare import deletion_ranks
from prunelens.pruning.run import PruneConfig, run_pruning
from prunelens.pruning.store import open_scores


def load_examples_for_surrogate(features_path: Path, pruning_dir: Path | None, target: str = "score",
                                warn=None) -> list[ExampleData]:  # fmt: skip
    """Join a feature store with a pruning run by example id; ``pruning_dir`` None gives y = NaN
    (for prediction). Token ids must agree, else the two were tokenised differently. ``warn`` gets a
    line when the targets cover under half of the store's examples, or when rank targets come from
    runs of at most one step (every token but one then shares the last rank)."""
    store = FeatureIndex(features_path)
    records, scores = {}, None
    if pruning_dir is not None:
        records = {r.id: r for r in load_rankings(Path(pruning_dir))}
        scores = open_scores(pruning_dir)
    data = []
    for example_id, rows in store.rows.items():
        x = store.attention[rows].reshape(len(rows), -1)
        if pruning_dir is None:
            data.append(ExampleData(example_id, x, np.full(len(rows), np.nan)))
            continue
        record = records.get(example_id)
        if record is None:
            continue
        store.rows_for(example_id, record.reasoning_ids)  # the same tokens, or a one-line error
        if target == "score":
            if not record.deletion_order:
                continue
            y = scores["candidate_scores"].sel(example=example_id).values[0, : len(rows)]
        else:
            y = deletion_ranks(record.deletion_order, len(rows)) / len(rows)
        data.append(ExampleData(example_id, x, np.asarray(y, dtype=np.float64)))
    if scores is not None:
        scores.close()
        total = len(store.rows)
        if warn is not None and len(data) < total / 2:
            warn(f"warning: the targets in {pruning_dir} cover only {len(data)} of the {total} examples in the feature store")
        if warn is not None and target == "rank" and records and max(len(r.deletion_order) for r in records.values()) <= 1:
            warn("warning: --target rank with runs of at most one step: nearly every token shares the last rank")
    return data


def examples_from_runs(targets: PruneConfig, features: FeaturesConfig, progress: bool = True, log=log_line,
                       warn=None, on_stage=None) -> list[ExampleData]:  # fmt: skip
    """A surrogate's training data from runs: the pruning run ``targets`` (its step 0 gives the targets), then
    the feature extraction ``features`` of the same examples, each run or resumed into its output folder
    (``progress`` and ``log`` go to both), joined by ``load_examples_for_surrogate`` (which ``warn`` goes to).
    ``on_stage``, if given, is called with "targets" and then "features" as each run finishes."""
    pruned = run_pruning(targets, progress=progress, log=log)
    if on_stage is not None:
        on_stage("targets")
    extracted = run_features(features, progress=progress, log=log)
    if on_stage is not None:
        on_stage("features")
    return load_examples_for_surrogate(extracted.out_dir, pruned.out_dir, warn=warn)


def surrogate_from_runs(targets: PruneConfig, features: FeaturesConfig, progress: bool = True, log=log_line,
                        warn=None) -> tuple[Surrogate, list[ExampleData]]:  # fmt: skip
    """The default surrogate (``SurrogateConfig()``) fitted on ``examples_from_runs(targets, features)``,
    recording what the feature store says of its features (``store_meta``); with the examples it saw."""
    data = examples_from_runs(targets, features, progress=progress, log=log, warn=warn)
    return train_surrogate(data, SurrogateConfig(), meta=store_meta(features.output_dir())), data
