"""`prunelens features` as a job: per-head attention features into an xarray store, H2O rankings alongside."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from prunelens.core.progress import log_line
from prunelens.core.ranked import make_ranking, ranked_by
from prunelens.core.registry import BACKENDS
from prunelens.core.settings import setting
from prunelens.jobs.loop import Job, JobConfig, Processed, RunSummary, run_job
from prunelens.probes.backends import make_backend
from prunelens.probes.features import H2O_DEFINITION, chain_features
from prunelens.probes.store import STORE_NAME, consolidate, part_path, write_part


@dataclass
class FeaturesConfig(JobConfig):
    """What `prunelens features` needs."""

    job: ClassVar[str] = "features"

    backend: str = setting("hf", BACKENDS.choices(), result=True, name="", always=True)
    float16: bool = setting(False, "store features as float16", result=True, name="f16", flag="--float16")


class FeaturesJob(Job):
    """One hook pass per chain: the part is the chain's features, the ranking its H2O order."""

    config_type = FeaturesConfig
    attn_implementation = "eager"

    def validate(self):
        BACKENDS.get(self.config.backend)

    def start(self, loaded):
        self.backend = make_backend(self.config.backend, loaded)

    def process(self, example, chain):
        features = chain_features(self.backend, chain)
        attrs = {"model": self.config.model, "backend": self.config.backend}
        ranking = make_ranking(example, chain, method="h2o", model=self.config.model, ranked=ranked_by(features.h2o),
                               score_meaning=H2O_DEFINITION)  # fmt: skip
        return Processed(ranking, lambda out: write_part(out, features, attrs, self.config.float16))

    @classmethod
    def finish(cls, out_dir, rankings):
        consolidate(out_dir, [r.id for r in rankings])

    @classmethod
    def part_files(cls, out_dir, example_id):
        return [part_path(out_dir, example_id)]

    @classmethod
    def consolidated_files(cls, out_dir):
        return [Path(out_dir) / STORE_NAME]


def run_features(config: FeaturesConfig, progress: bool = True, log=log_line) -> RunSummary:
    """Extract features for every selected example not yet in the output folder (see ``run_job``)."""
    return run_job(FeaturesJob(config), progress=progress, log=log)
