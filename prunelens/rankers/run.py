"""`prunelens rank --method NAME` as a job: any registered ranker over any selection, into rankings.jsonl."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from prunelens.jobs.loop import Job, JobConfig, Processed, RunSummary, run_job
from prunelens.core.progress import log_line
from prunelens.core.ranked import make_ranking
from prunelens.core.ranking import Ranking
from prunelens.core.registry import RANKERS
from prunelens.core.settings import setting, settle_variant


@dataclass
class RankConfig(JobConfig):
    """The selection, the method, and the method's own settings (``options``: the dataclass registered with the
    ranker, e.g. ``UniformOptions(seed=1)``)."""

    job: ClassVar[str] = "rank"

    method: str = setting("uniform", RANKERS.choices(), result=True, name="", always=True)
    options: Any = setting(None, "the method's own settings (its registered options dataclass; default: its defaults)",
                           cli=False, variant_of=("method", RANKERS))  # fmt: skip

    def __post_init__(self):
        settle_variant(self)


class RankJob(Job):
    """Rank each chain with the configured ranker."""

    config_type = RankConfig

    def validate(self):
        self.ranker = RANKERS.load(self.config.method)(self.config)
        self.ranker.validate()
        self.needs_weights = self.ranker.needs_weights

    def start(self, loaded):
        self.ranker.start(loaded)

    def process(self, example, chain):
        ranked = self.ranker.rank(example, chain)
        if isinstance(ranked, Ranking):  # a ranker that reads finished rankings (greedy) passes them on
            return Processed(ranked)
        return Processed(make_ranking(example, chain, method=self.config.method, model=self.config.model,
                                      ranked=ranked, settings=self.ranker.settings(),
                                      score_meaning=self.ranker.score_meaning))  # fmt: skip


def run_rank(config: RankConfig, progress: bool = True, log=log_line) -> RunSummary:
    """Write ``config.method``'s ranking of every selected example (see ``prunelens.jobs.loop.run_job``)."""
    return run_job(RankJob(config), progress=progress, log=log)
