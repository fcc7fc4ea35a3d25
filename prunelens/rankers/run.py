"""`prunelens rank --method NAME` as a job: any registered ranker over any selection, into rankings.jsonl."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from prunelens.jobs.loop import Job, JobConfig, Processed, RunSummary, run_job
from prunelens.core.progress import log_line
from prunelens.core.ranked import make_ranking
from prunelens.rankers.tokenskip import DEFAULT_CLASSIFIER
from prunelens.core.ranking import Ranking
from prunelens.core.registry import BACKENDS, RANKERS
from prunelens.core.settings import setting


@dataclass
class RankConfig(JobConfig):
    """The selection, the method, and each method's own settings (unused ones are ignored)."""

    job: ClassVar[str] = "rank"

    method: str = setting("uniform", RANKERS.choices(), result=True, name="", always=True)
    seed: int = setting(0, "uniform: the random seed", result=True, name="seed", only_for=("uniform",))
    pruning: Path | None = setting(None, "greedy: the `prunelens prune` output folder to read", result=True,
                                   only_for=("greedy",), input=True)  # fmt: skip
    features: Path | None = setting(None, "h2o, surrogate: a `prunelens features` output folder", result=True,
                                    only_for=("h2o", "surrogate"), input=True)  # fmt: skip
    surrogate: Path | None = setting(None, "surrogate: a file saved by `prunelens surrogate train`", result=True,
                                     only_for=("surrogate",), input=True)  # fmt: skip
    backend: str = setting("hf", f"h2o without --features: the hook backend ({' | '.join(BACKENDS.names())})",
                           result=True, only_for=("h2o",))  # fmt: skip
    classifier: str = setting(DEFAULT_CLASSIFIER, "tokenskip: the LLMLingua-2 token classifier (HF id or local dir)",
                              result=True, only_for=("tokenskip",))  # fmt: skip


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
