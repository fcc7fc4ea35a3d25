"""Named entries for every pluggable part: scorers, hook backends, rankers, benchmarks, generators.

An entry names its implementation as ``"module:attribute"`` and is imported only when used, so the
CLI can list every choice without loading torch, TransformerLens or a classifier. Registering a name
twice is refused. The built-in entries are registered at the bottom of this file: a new ranker (or
scorer, backend, benchmark) is one module plus one line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from prunelens.core.errors import PrunelensError


@dataclass(frozen=True)
class Entry:
    """One registered implementation: its name, where it lives, and one line of help."""

    name: str
    target: str  # "package.module:attribute"
    help: str
    options: str | None = None  # "package.module:Class": the dataclass of its own settings, if it has any

    def load(self) -> Any:
        """Import and return the registered object."""
        return _resolve(self.target)

    def options_type(self) -> type | None:
        """The dataclass of the entry's own settings (None when it has none)."""
        return None if self.options is None else _resolve(self.options)


def _resolve(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


class Registry:
    """Entries of one kind (e.g. "ranker"), in registration order."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: str, help: str, options: str | None = None) -> Entry:
        """Add an entry, with the dataclass of its own settings where it has some (``options``, as
        "module:Class"); a name already taken raises ValueError (a programming error, not user input)."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered (by {self._entries[name].target})")
        entry = self._entries[name] = Entry(name, target, help, options)
        return entry

    def names(self) -> list[str]:
        return list(self._entries)

    def get(self, name: str) -> Entry:
        """The entry called ``name``; a one-line PrunelensError listing the known names otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            raise PrunelensError(f"unknown {self.kind} {name!r} (known: {', '.join(self._entries)})") from None

    def load(self, name: str) -> Any:
        return self.get(name).load()

    def options_type(self, name: str) -> type | None:
        """The settings dataclass registered with ``name`` (None if it has none); unknown names are one line."""
        return self.get(name).options_type()

    def choices(self) -> str:
        """CLI help: every name with its line of help."""
        return "; ".join(f"{e.name}: {e.help}" for e in self._entries.values())


SCORERS = Registry("scorer")
SCORERS.register("fast", "prunelens.pruning.prefix_scorer:PrefixCacheScorer", "exact, prefix KV reuse (default)")
SCORERS.register("naive", "prunelens.pruning.scorer:HFScorer", "exact, one full forward per candidate")
SCORERS.register("vllm", "prunelens.pruning.vllm_scorer:VLLMScorer", "full forwards in vLLM (GPU, optional extra)")
SCORERS.register("server", "prunelens.pruning.server_scorer:ServerScorer",
                 "prompt log-probs from a running OpenAI-compatible server (--base-url): vLLM, llama.cpp",
                 options="prunelens.pruning.server_scorer:ServerSettings")  # fmt: skip

BACKENDS = Registry("hook backend")
BACKENDS.register("hf", "prunelens.probes.backends:HFEagerBackend", "eager attention, hooks reduce each layer")
BACKENDS.register("hf_blockwise", "prunelens.probes.backends:HFBlockwiseBackend",
                  "SDPA forward, attention recomputed in row blocks (long sequences)")  # fmt: skip
BACKENDS.register("transformer_lens", "prunelens.probes.backends:TransformerLensBackend",
                  "TransformerBridge, blocks.{l}.attn.hook_pattern")  # fmt: skip
BACKENDS.register("nnsight", "prunelens.probes.backends:NNsightBackend", "nnsight trace, self_attn.output[1]")

RANKERS = Registry("ranker")
RANKERS.register("greedy", "prunelens.rankers.greedy:GreedyRanker", "greedy pruning records of --pruning DIR",
                 options="prunelens.rankers.greedy:GreedyOptions")  # fmt: skip
RANKERS.register("h2o", "prunelens.rankers.h2o:H2ORanker",
                 "least received attention first (--features DIR, else computed with --backend)",
                 options="prunelens.rankers.h2o:H2OOptions")  # fmt: skip
RANKERS.register("surprisal", "prunelens.rankers.surprisal:SurprisalRanker",
                 "least surprising first: -log p(token | prompt, earlier reasoning) under --model (--highest-first "
                 "reverses it)", options="prunelens.rankers.surprisal:SurprisalOptions")  # fmt: skip
RANKERS.register("uniform", "prunelens.rankers.uniform:UniformRanker", "seeded random order (--seed)",
                 options="prunelens.rankers.uniform:UniformOptions")  # fmt: skip
RANKERS.register("truncation", "prunelens.rankers.truncation:TruncationRanker", "from the end: keeps the first ρ")
RANKERS.register("tokenskip", "prunelens.rankers.tokenskip:TokenSkipRanker",
                 "LLMLingua-2 keep probability, least likely kept first (--classifier)",
                 options="prunelens.rankers.tokenskip:TokenSkipOptions")  # fmt: skip
RANKERS.register("surrogate", "prunelens.rankers.surrogate:SurrogateRanker",
                 "a trained attention surrogate's predicted greedy order (--surrogate FILE, --features DIR)",
                 options="prunelens.rankers.surrogate:SurrogateOptions")  # fmt: skip

BENCHMARKS = Registry("dataset")
BENCHMARKS.register("gsm8k", "prunelens.datasets.gsm8k:GSM8K", "grade-school math word problems")
BENCHMARKS.register("math500", "prunelens.datasets.math500:Math500", "500 MATH competition problems")
BENCHMARKS.register("mmlu_pro", "prunelens.datasets.mmlu_pro:MMLUPro", "multiple-choice questions, 10 options")
BENCHMARKS.register("arith", "prunelens.datasets.arith:Arith", "seeded procedural multi-step arithmetic word problems")

JOBS = Registry("job")
JOBS.register("prune", "prunelens.pruning.run:PruneJob", "greedy pruning: rankings + candidate scores (scores.nc)")
JOBS.register("features", "prunelens.probes.run:FeaturesJob", "attention features (features.nc) + H2O rankings")
JOBS.register("rank", "prunelens.rankers.run:RankJob", "rankings of any registered ranker")

GENERATORS = Registry("generator")
GENERATORS.register("hf", "prunelens.distill.generate:HFGenerator", "Hugging Face generate, batched (default)")
GENERATORS.register("vllm", "prunelens.distill.vllm_generate:VLLMGenerator", "vLLM (GPU, optional extra)")
GENERATORS.register("server", "prunelens.distill.server_generate:ServerGenerator",
                    "a running OpenAI-compatible server (--base-url): vLLM, llama.cpp",
                    options="prunelens.core.openai_http:ServerConnection")  # fmt: skip

ANNOTATORS = Registry("annotator")
ANNOTATORS.register("offline", "prunelens.annotate.rules:RuleAnnotator",
                    "deterministic lexicons and patterns; an approximation of the LLM labels")  # fmt: skip
ANNOTATORS.register("llm", "prunelens.annotate.llm:LLMAnnotator",
                    "an LLM through the openai client (--llm-model, --base-url, OPENAI_API_KEY)",
                    options="prunelens.annotate.client:LLMSettings")  # fmt: skip

VIEWERS = Registry("viewer")  # what Ranking.show() calls, so that the core needs no import of the viewer
VIEWERS.register("page", "prunelens.viewer.page:show_rankings", "the self-contained HTML page (`prunelens view`)")
