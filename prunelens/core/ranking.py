"""Rankings: for one chain and one method, the order in which its reasoning tokens are removed.

Every method (greedy pruning, H2O, Surprisal, Uniform, truncation, TokenSkip, a surrogate) produces a
``Ranking``; greedy pruning's ``GreedyRanking`` adds its step scores, objective and approximation.
A ranking turns into the chain at any keep fraction ρ (``text``, ``ids``, ``marked``). On disk a run
holds one ranking per line in ``rankings.jsonl``; folders written before rankings existed
(``pruning.jsonl`` of prune runs, ``h2o.jsonl`` of feature runs) load too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from prunelens.core.errors import PrunelensError
from prunelens.core.jsonl import read_finished
from prunelens.core.keep import kept_positions, n_keep
from prunelens.core.registry import VIEWERS

RANKINGS_NAME = "rankings.jsonl"
SHOWN_KEEPS = (1.0, 0.9, 0.7, 0.5)  # the keep fractions printed by default
LEGACY_NAMES = ("pruning.jsonl", "h2o.jsonl")  # written by prunelens before rankings.jsonl existed


@dataclass(kw_only=True)
class Ranking:
    """One chain ranked by one method.

    ``reasoning_tokens`` are text pieces that tile ``reasoning`` (joining any subset in order gives
    readable text), one per id in ``reasoning_ids``; ``offsets`` are the tokenizer's character spans.
    ``deletion_order`` lists positions, first removed first: a permutation of all positions, or a
    prefix of one where a run stopped early. ``scores`` are the per-token values the method ranked by
    (``score_meaning`` says what they are), where it has them. ``sources`` holds the digests of the example and
    the inputs it was computed from, which a rerun checks.
    """

    id: str
    method: str
    model: str
    reasoning: str
    reasoning_ids: list[int]
    reasoning_tokens: list[str]
    offsets: list[list[int]]
    deletion_order: list[int]
    settings: dict[str, Any] = field(default_factory=dict)
    scores: list[float] | None = None
    score_meaning: str | None = None
    question: str = ""
    answer: str = ""
    dataset: str = ""
    seconds: float | None = None
    sources: dict[str, str | None] | None = None  # content digests of what it was computed from (provenance.py)

    @property
    def n(self) -> int:
        """Number of reasoning tokens."""
        return len(self.reasoning_ids)

    @property
    def deepest_keep(self) -> float:
        """The smallest keep fraction this ranking reaches (0.0 for a full permutation)."""
        return (self.n - len(self.deletion_order)) / self.n if self.n else 1.0

    def reaches(self, keep: float) -> bool:
        """Whether the ranking goes as far as keep fraction ``keep``, rounded as ``n_keep`` rounds (12 tokens
        at keep 0.8 keep 10: two deletions reach 0.8, though ``deepest_keep`` is then 10/12 > 0.8)."""
        return self.n - n_keep(self.n, keep) <= len(self.deletion_order)

    def shown_keeps(self, final: float | None = None) -> list[float]:
        """SHOWN_KEEPS and ``final``, largest first, as far as the ranking reaches."""
        wanted = set(SHOWN_KEEPS) | ({final} if final is not None else set())
        return sorted((keep for keep in wanted if self.reaches(keep)), reverse=True)

    def kept_positions(self, keep: float) -> list[int]:
        """Positions still present at keep fraction ``keep`` (ValueError where the ranking stops earlier)."""
        return kept_positions(self.deletion_order, self.n, keep)

    def text(self, keep: float) -> str:
        """The reasoning text at keep fraction ``keep``."""
        return "".join(self.reasoning_tokens[i] for i in self.kept_positions(keep))

    def ids(self, keep: float) -> list[int]:
        """The reasoning token ids at keep fraction ``keep``."""
        return [self.reasoning_ids[i] for i in self.kept_positions(keep)]

    def marked(self, keep: float, open_mark: str = "[-", close_mark: str = "-]") -> str:
        """The full reasoning with the tokens removed at ``keep`` wrapped in marks (adjacent ones merged)."""
        kept = set(self.kept_positions(keep))
        out, removing = [], False
        for index, piece in enumerate(self.reasoning_tokens):
            gone = index not in kept
            if gone != removing:
                out.append(open_mark if gone else close_mark)
            out.append(piece)
            removing = gone
        if removing:
            out.append(close_mark)
        return "".join(out)

    def show(self, *others: Ranking, out: Path | None = None) -> Path | None:
        """This chain in the viewer (beside ``others``, rankings of the same chain): displayed in a Jupyter
        kernel, else written to ``out`` (default: a temporary file) and its path printed."""
        return VIEWERS.load("page")([self, *others], out)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(record: dict[str, Any]) -> Ranking:
        """A Ranking (GreedyRanking for greedy records) from a JSONL record, also from the record shapes
        of earlier versions (pruning records without ``method``; H2O records with ``importance``)."""
        record = dict(record)
        record.setdefault("method", "greedy")
        if "importance" in record:
            record.setdefault("scores", record.pop("importance"))
            record.setdefault("score_meaning", record.pop("definition", None))
        cls = GreedyRanking if record["method"] == "greedy" else Ranking
        known = {f.name for f in fields(cls)}
        missing = [f.name for f in fields(cls) if f.name not in record and _required(f)]
        if missing:
            raise PrunelensError(f"record {record.get('id')!r}: not a ranking (missing {', '.join(missing)})")
        return cls(**{k: v for k, v in record.items() if k in known})


@dataclass(kw_only=True)
class GreedyRanking(Ranking):
    """A greedy-pruning ranking: ``step_scores[t]`` is the objective after the t-th deletion,
    ``base_score`` the unpruned chain's; ``exact`` is False for the approximate modes described in
    ``approximation``. ``prompt_ids`` and ``answer_ids`` complete the scored sequence."""

    method: str = "greedy"
    objective: str
    step_scores: list[float]
    base_score: float
    prompt_ids: list[int] = field(default_factory=list)
    answer_ids: list[int] = field(default_factory=list)
    answer_text: str = ""
    keep: float | None = None
    steps: int | None = None
    exact: bool = True
    approximation: dict[str, Any] = field(default_factory=dict)
    scorer: str = "fast"


def keep_grid(rankings: Sequence[Ranking], step: float = 0.1) -> list[float]:
    """1.0, 1 − step, 1 − 2·step, … down to the smallest value every ranking reaches (``Ranking.reaches``)."""
    grid = []
    for k in range(round(1 / step) + 1):
        keep = round(1.0 - k * step, 10)
        if not all(r.reaches(keep) for r in rankings):
            break
        grid.append(keep)
    if len(grid) < 2:
        shallow = next(r for r in rankings if not r.reaches(round(1.0 - step, 10)))
        raise PrunelensError(f"record {shallow.id!r}: pruning stopped at keep {shallow.deepest_keep:.3f}, before "
                             f"{1.0 - step:g}; no transition to analyse (prune deeper)")  # fmt: skip
    return grid


def _required(f) -> bool:
    from dataclasses import MISSING

    return f.default is MISSING and f.default_factory is MISSING


def rankings_file(folder: Path) -> Path:
    """The rankings JSONL of an output folder: rankings.jsonl, or a legacy name where only that exists."""
    folder = Path(folder)
    for name in (RANKINGS_NAME, *LEGACY_NAMES):
        if (folder / name).exists():
            return folder / name
    return folder / RANKINGS_NAME


def load_rankings(path: Path) -> list[Ranking]:
    """All finished rankings of an output folder (or of one JSONL file); a one-line error if there are none."""
    path = Path(path)
    if not path.exists():
        raise PrunelensError(f"{path}: no such rankings folder or file")
    source = rankings_file(path) if path.is_dir() else path
    if not source.exists():
        raise PrunelensError(f"{path}: no rankings ({RANKINGS_NAME}) in this folder")
    return [Ranking.from_dict(record) for record in read_finished(source)]
