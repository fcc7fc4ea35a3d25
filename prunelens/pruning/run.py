"""`prunelens prune` as a job: greedy pruning of each selected chain into rankings and a score store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from prunelens.core.errors import SettingsError
from prunelens.models import DTYPES
from prunelens.jobs.loop import Job, JobConfig, Processed, RunSummary, run_job
from prunelens.core import progress as terminal  # terminal.interactive() at call time: tests patch it
from prunelens.core.progress import log_line
from prunelens.pruning.eta import APPROXIMATE_MODES, HOUR, StepClock, duration, step_work
from prunelens.pruning.greedy import Approximation, greedy_prune, planned_steps
from prunelens.pruning.scorers import make_scorer, make_screener, scorer_needs_weights
from prunelens.core.objectives import Objective
from prunelens.pruning.store import STORE_NAME, consolidate, part_path, write_part
from prunelens.pruning.surrogate_screen import load_predictor
from prunelens.core.ranking import GreedyRanking
from prunelens.core.registry import SCORERS
from prunelens.core.settings import setting, settle_variant

LONG_CHAIN_SECONDS = 60.0  # chains estimated to take longer log progress lines inside the chain (off a terminal)
PROGRESS_EVERY = 30.0  # seconds between those lines


@dataclass
class PruneConfig(JobConfig):
    """Everything a pruning run needs; the defaults are the main job of `prunelens prune`."""

    job: ClassVar[str] = "prune"

    objective: str = setting("joint", "joint: log p(r_S, a | q); answer: log p(a | q, r_S)", result=True, name="",
                             always=True)  # fmt: skip
    keep: float = setting(0.5, "keep fraction to stop at (0: the full deletion order, every token)", result=True,
                          name="k", always=True, minimum=0.0, maximum=1.0)  # fmt: skip
    steps: int | None = setting(None, "stop after this many deletions", result=True, name="s", minimum=0)
    token_budget: int = setting(1024, "max tokens per forward batch", minimum=1)
    scorer: str = setting("fast", SCORERS.choices(), result=True, name="")  # named in folders unless the default
    scorer_options: Any = setting(None, "the scorer's own settings (its registered options dataclass, e.g. the server "
                                  "scorer's ServerSettings)", cli=False, variant_of=("scorer", SCORERS))  # fmt: skip
    block: float = setting(1, "APPROXIMATE unless 1: deletions per round (k, or fraction < 1)", result=True, name="b",
                           minimum=0.0)  # fmt: skip
    screen: int | None = setting(None, "APPROXIMATE: lazily score the m likeliest candidates", result=True, name="m",
                                 minimum=1)  # fmt: skip
    rescore_every: int = setting(5, "with --screen: score all every R rounds (0: first only)", result=True, name="r",
                                 minimum=0)  # fmt: skip
    neighbors: int = setting(1, "with --screen: also score w survivors each side of a deletion", result=True,
                             name="n", minimum=0)  # fmt: skip
    window: int = setting(0, "with --screen: pick the m by a local w-token cost estimate", result=True, name="w",
                          minimum=0)  # fmt: skip
    surrogate: Path | None = setting(None, "with --screen: pick the m by this trained surrogate's predictions "
                                     "(`prunelens surrogate train`)", result=True, input=True)  # fmt: skip
    anchored: bool = setting(False, "with --window: anchor estimates on exact costs, widen by residuals", result=True,
                             name="anchored", flag="--anchored")  # fmt: skip
    screen_dtype: str | None = setting(None, "APPROXIMATE: score each round on a copy of the model in this dtype "
                                       "(bfloat16), then its --verify best exactly", result=True, name="d")  # fmt: skip
    verify: int = setting(3, "with --screen-dtype: candidates rescored exactly per round", result=True, name="v",
                          minimum=1)  # fmt: skip

    def __post_init__(self):
        """Every check of the prune settings, in field terms (the CLI spells them as flags)."""
        Objective.parse(self.objective)
        settle_variant(self)
        if self.screen_dtype is not None and self.screen_dtype not in DTYPES:
            raise SettingsError("unknown dtype {value!r} for {screen_dtype} (known: {known})", value=self.screen_dtype,
                                known=", ".join(DTYPES))  # fmt: skip
        if self.surrogate is not None and self.screen is None:
            raise SettingsError("{surrogate} picks the candidates of {screen}: give both")
        if not scorer_needs_weights(self.scorer):
            for name in ("screen_dtype", "surrogate"):
                if getattr(self, name) is not None:
                    raise SettingsError("{%s} needs the model's weights here; {scorer} {chosen!r} loads none" % name,
                                        chosen=self.scorer)  # fmt: skip
        try:
            self.approximation()
        except SettingsError as refused:  # the approximation's own names for the same settings
            raise refused.renamed({"rounded": "screen_dtype", "screen_by": "surrogate"}) from None

    def approximation(self) -> Approximation:
        screen_by = "cost" if self.surrogate is None else "surrogate"
        return Approximation(self.block, self.screen, self.rescore_every, self.neighbors, self.window, screen_by,
                             self.screen_dtype, self.verify, self.anchored)  # fmt: skip

    def recorded_settings(self) -> dict:
        """The settings a ranking records: objective, keep, steps and any approximation (with its surrogate)."""
        extra = {"surrogate": str(self.surrogate)} if self.surrogate is not None else {}
        return {"objective": Objective.parse(self.objective).value, "keep": self.keep, "steps": self.steps,
                **self.approximation().describe(), **extra}  # fmt: skip


class PruneJob(Job):
    """Greedy-prune each chain; the ranking is a GreedyRanking, the part its (step, position) scores."""

    config_type = PruneConfig

    def validate(self):
        self.objective = Objective.parse(self.config.objective)  # the config has checked every setting
        self.needs_weights = scorer_needs_weights(self.config.scorer)

    def start(self, loaded):
        self.loaded = loaded
        self.predictor = None
        if self.config.surrogate is not None:
            self.predictor = load_predictor(self.config.surrogate, loaded, self.config.model)
        self.scorer = make_scorer(self.config.scorer, loaded.model, self.config.token_budget,
                                  self.config.scorer_options, loaded.tokenizer)  # fmt: skip
        self.screener = make_screener(self.config.scorer, loaded.model, self.config.token_budget,
                                      self.config.approximation())  # fmt: skip

    def process(self, example, chain):
        from tqdm.auto import tqdm

        config = self.config
        total = planned_steps(len(chain.reasoning_ids), config.keep, config.steps)
        clock, shown = None, [0.0]

        def on_start(base_seconds: float) -> None:
            nonlocal clock
            clock = self.clock(example, chain, total, base_seconds)

        def on_step(count: int) -> None:
            bar.update(count)
            left = clock.step(count)
            if bar.disable and self.progress and clock.total() > LONG_CHAIN_SECONDS and clock.elapsed - shown[0] >= PROGRESS_EVERY:
                shown[0] = clock.elapsed
                self.log(f"{example.id}: step {clock.done}/{total}, {duration(clock.elapsed)} so far, about "
                         f"{duration(left)} left")  # fmt: skip
            elif not bar.disable:
                bar.set_postfix_str(f"about {duration(left)} left", refresh=False)

        with tqdm(total=total, desc=example.id, unit="step", leave=False, disable=not (self.progress and terminal.interactive())) as bar:
            result = greedy_prune(self.scorer, chain.prompt_ids, chain.reasoning_ids, chain.answer_ids, self.objective,
                                  config.keep, config.steps, on_step=on_step, on_start=on_start,
                                  approximation=config.approximation(), predictor=self.predictor,
                                  screener=self.screener)  # fmt: skip
        server = getattr(self.scorer, "describe", dict)()
        if server.get("retokenized"):
            self.log(f"warning: {example.id}: the server split the text of {server['retokenized']} candidates into "
                     "other tokens than theirs (protocol echo-text); their scores are of those other tokens")  # fmt: skip
        ranking = GreedyRanking(
            id=example.id, model=config.model, reasoning=chain.reasoning, reasoning_ids=chain.reasoning_ids,
            reasoning_tokens=chain.pieces, offsets=[list(span) for span in chain.offsets],
            deletion_order=result.deletion_order, question=example.question, answer=example.answer,
            dataset=example.dataset, objective=self.objective.value, step_scores=result.step_scores,
            base_score=result.base_score, prompt_ids=chain.prompt_ids, answer_ids=chain.answer_ids,
            answer_text=chain.answer_text, keep=config.keep, steps=len(result.deletion_order),
            exact=config.approximation().exact, approximation=config.approximation().describe(), scorer=config.scorer,
            settings={**config.recorded_settings(), **server},
        )  # fmt: skip
        attrs = {"objective": self.objective.value}
        return Processed(ranking, lambda out: write_part(out, example.id, result.candidate_scores, chain.pieces, attrs))

    def clock(self, example, chain, steps: int, base_seconds: float) -> StepClock:
        """The chain's cost model, calibrated on greedy's own forward of the whole chain (``base_seconds``); warns
        before an exact run estimated at over an hour."""
        config = self.config
        positions = len(chain.prompt_ids) + len(chain.reasoning_ids) + len(chain.answer_ids)
        work = step_work(len(chain.reasoning_ids), len(chain.prompt_ids), len(chain.answer_ids), steps, config.scorer)
        clock = StepClock(work, base_seconds / max(positions, 1))
        if config.approximation().exact and clock.total() > HOUR:
            self.log(f"warning: {example.id}: {len(chain.reasoning_ids)} reasoning tokens, {steps} exact greedy steps "
                     f"estimated at {duration(clock.total())}; approximate modes are much faster: {APPROXIMATE_MODES}")
        return clock

    @classmethod
    def finish(cls, out_dir, rankings):
        first = rankings[0]
        consolidate(out_dir, [r.id for r in rankings], {"model": first.model, "objective": first.objective})

    @classmethod
    def part_files(cls, out_dir, example_id):
        return [part_path(out_dir, example_id)]

    @classmethod
    def consolidated_files(cls, out_dir):
        return [Path(out_dir) / STORE_NAME]


def run_pruning(config: PruneConfig, progress: bool = True, log=log_line) -> RunSummary:
    """Greedy-prune every selected example (see ``prunelens.jobs.loop.run_job``)."""
    return run_job(PruneJob(config), progress=progress, log=log)
