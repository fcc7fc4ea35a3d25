"""What a benchmark run measured, per chain and mode, saved beside its report so that the tables, the verdicts and
the Pareto plot can be rebuilt (``prunelens bench --from-data FILE``) or judged by another criterion without
pruning again."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prunelens.bench.run import ModeResult
from prunelens.core.chain import TokenizedChain
from prunelens.core.errors import PrunelensError
from prunelens.core.jsonl import write_atomic


@dataclass
class BenchData:
    """One benchmark run: its settings, the machine (torch threads, measured matmul rate), the model's parameter
    count, the chains' token ids, the keep grid, every mode's ``ModeResult`` (by mode name, in run order), the
    surrogate note and the synthetic long chain's measurement (if any), and the run's wall time."""

    settings: dict
    threads: int
    flops: float
    params: int
    grid: list[float]
    chains: list[dict]
    results: dict[str, ModeResult]
    surrogate_note: list[str] = field(default_factory=list)
    synthetic: ModeResult | None = None
    seconds: float = 0.0

    @classmethod
    def of(cls, settings: dict, threads: int, flops: float, params: int, grid, chains: list[TokenizedChain],
           results: dict[str, ModeResult], **rest) -> BenchData:  # fmt: skip
        """From the chains and results of a run."""
        kept = [{"id": c.id, "prompt_ids": list(c.prompt_ids), "reasoning_ids": list(c.reasoning_ids),
                 "answer_ids": list(c.answer_ids)} for c in chains]  # fmt: skip
        return cls(settings, threads, flops, params, list(grid), kept, results, **rest)

    def tokenized_chains(self) -> list[TokenizedChain]:
        """The chains as the report's tables read them (ids only; no text)."""
        return [TokenizedChain(c["id"], c["prompt_ids"], c["reasoning_ids"], c["answer_ids"], "", "", [], [])
                for c in self.chains]  # fmt: skip

    def save(self, path: Path) -> Path:
        """Write the data as one JSON file (atomically)."""
        record = asdict(self)
        write_atomic(Path(path), json.dumps(record) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> BenchData:
        """Read a file ``save`` wrote; a one-line error for a missing or foreign file."""
        try:
            record = json.loads(Path(path).read_text())
            record["results"] = {name: ModeResult(**values) for name, values in record["results"].items()}
            if record.get("synthetic") is not None:
                record["synthetic"] = ModeResult(**record["synthetic"])
            return cls(**record)
        except OSError as error:
            raise PrunelensError(f"{path}: cannot read benchmark data ({error.strerror or error})") from None
        except (ValueError, KeyError, TypeError) as error:
            raise PrunelensError(f"{path}: not a benchmark data file ({error})") from None
