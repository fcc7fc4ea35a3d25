"""Exact fast scorer: prompt and shared-prefix KV reuse, candidate suffixes packed into one forward.

A candidate c shares a prefix of length l with the trunk (the current chain). Everything up to
prompt + trunk[:l] is already in the trunk's KV cache, and the log-probs of those tokens are already
known, so only the suffix c[l:] + answer is recomputed, at its true positions. Many suffixes are packed
into one row; a 4D mask lets each suffix see cache[0 : P + l] and itself (causally), nothing else.
The trunk is cached across calls: when it changes (the chosen deletion), only its tail is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prunelens.pruning.objectives import Objective
from prunelens.pruning.scorer import ScorerStats, target_logprobs


def common_prefix(a, b) -> int:
    """Length of the longest common prefix of two sequences."""
    limit = min(len(a), len(b))
    for index in range(limit):
        if a[index] != b[index]:
            return index
    return limit


@dataclass
class _Segment:
    candidate: int  # index into the candidate list
    shared: int  # tokens of the candidate shared with the trunk (its cached prefix)
    tokens: list[int]  # suffix tokens fed to the model (the suffix minus its last token)
    targets: list[int]  # suffix tokens whose log-probs the objective sums
    first_target: int  # index in the suffix of the first summed token


class PrefixCacheScorer:
    """Exact scores equal to HFScorer's (to float rounding), computing only what a deletion changes.

    ``token_budget`` caps the packed suffix tokens per forward; memory is O(budget · (P + n + budget)).
    """

    def __init__(self, model, token_budget: int = 1024):
        self.model = model
        self.token_budget = token_budget
        self.stats = ScorerStats()
        self._prompt: tuple[int, ...] | None = None
        self._trunk: list[int] = []
        self._kv: list[tuple] = []  # per layer (keys, values) for prompt + trunk
        self._hidden = None  # final hidden states at positions P-1 .. P+T-1 (row r predicts trunk[r])
        self._trunk_logprobs = None  # log p(trunk[r] | prompt, trunk[:r])

    # -- model calls ---------------------------------------------------------------------------------
    def _forward(self, tokens, positions, mask=None, keep_kv: bool = False):
        """Run tokens over the cached prompt + trunk; returns final hidden states (and the new KV)."""
        import torch
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for layer, (keys, values) in enumerate(self._kv):
            cache.update(keys, values, layer)
        device = self.device
        past = self._kv[0][0].shape[-2] if self._kv else 0
        ids = torch.tensor([tokens], device=device)
        output = self.model.base_model(
            input_ids=ids,
            position_ids=torch.tensor([positions], device=device),
            cache_position=torch.arange(past, past + len(tokens), device=device),
            attention_mask=mask,
            cache=cache,
            use_cache=True,
        )
        self.stats.forward_calls += 1
        self.stats.tokens_computed += len(tokens)
        hidden = output.last_hidden_state[0]
        if keep_kv:
            self._kv = [(layer.keys, layer.values) for layer in cache.layers]
        return hidden

    @property
    def device(self):
        return next(self.model.parameters()).device

    def _crop(self, length: int) -> None:
        self._kv = [(k[..., :length, :], v[..., :length, :]) for k, v in self._kv]

    # -- trunk state ---------------------------------------------------------------------------------
    def _set_prompt(self, prompt_ids) -> None:
        import torch

        if self._prompt == tuple(prompt_ids):
            return
        self._prompt, self._kv, self._trunk = tuple(prompt_ids), [], []
        hidden = self._forward(list(prompt_ids), list(range(len(prompt_ids))), keep_kv=True)
        self._hidden = hidden[-1:].clone()
        self._trunk_logprobs = torch.empty(0, dtype=torch.float64, device=hidden.device)

    def _set_trunk(self, trunk) -> None:
        import torch

        trunk = list(trunk)
        shared = common_prefix(self._trunk, trunk)
        prompt_len = len(self._prompt)
        self._crop(prompt_len + shared)
        hidden = self._hidden[: shared + 1]
        logprobs = self._trunk_logprobs[:shared]
        if shared < len(trunk):
            positions = list(range(prompt_len + shared, prompt_len + len(trunk)))
            tail = self._forward(trunk[shared:], positions, keep_kv=True)
            hidden = torch.cat([hidden, tail])
            targets = torch.tensor(trunk[shared:], device=hidden.device)
            logprobs = torch.cat([logprobs, target_logprobs(self.model, hidden[shared:-1], targets).double()])
        self._trunk, self._hidden, self._trunk_logprobs = trunk, hidden, logprobs

    # -- scoring -------------------------------------------------------------------------------------
    def score(self, prompt_ids, candidates, answer_ids, objective, trunk=None):
        import torch

        objective = Objective.parse(objective)
        with torch.inference_mode():
            self._set_prompt(prompt_ids)
            self._set_trunk(candidates[0] if trunk is None else trunk)
            prefix_sums = torch.cat([self._trunk_logprobs.new_zeros(1), self._trunk_logprobs.cumsum(0)])
            scores = torch.zeros(len(candidates), dtype=torch.float64, device=self._hidden.device)
            segments = [self._segment(i, c, answer_ids, objective) for i, c in enumerate(candidates)]
            if objective is Objective.JOINT:
                scores += prefix_sums[[s.shared for s in segments]]
            self._score_first_targets(segments, scores)
            pack: list[_Segment] = []
            for segment in sorted((s for s in segments if s.tokens), key=lambda s: -len(s.tokens)):
                if pack and sum(len(s.tokens) for s in pack) + len(segment.tokens) > self.token_budget:
                    self._score_pack(pack, scores)
                    pack = []
                pack.append(segment)
            if pack:
                self._score_pack(pack, scores)
        return scores.cpu().numpy()

    def _segment(self, index, candidate, answer_ids, objective) -> _Segment:
        shared = common_prefix(candidate, self._trunk)
        suffix = list(candidate[shared:]) + list(answer_ids)
        first = 0 if objective is Objective.JOINT else len(candidate) - shared
        return _Segment(index, shared, suffix[:-1], suffix, first)

    def _score_first_targets(self, segments, scores) -> None:
        """Suffix token 0 is predicted by the trunk's hidden state at the end of the shared prefix."""
        import torch

        chosen = [s for s in segments if s.first_target == 0]
        if not chosen:
            return
        rows = self._hidden[[s.shared for s in chosen]]
        targets = torch.tensor([s.targets[0] for s in chosen], device=rows.device)
        logprobs = target_logprobs(self.model, rows, targets).double()
        scores.index_add_(0, torch.tensor([s.candidate for s in chosen], device=rows.device), logprobs)

    def _score_pack(self, pack: list[_Segment], scores) -> None:
        """One forward over several suffixes; sum each one's target log-probs into ``scores``."""
        import torch

        device = self._hidden.device
        prompt_len, cache_len = len(self._prompt), len(self._prompt) + len(self._trunk)
        tokens, positions, owner, visible, rows, targets, sinks = [], [], [], [], [], [], []
        for number, segment in enumerate(pack):
            start = len(tokens)
            tokens += segment.tokens
            positions += range(prompt_len + segment.shared, prompt_len + segment.shared + len(segment.tokens))
            owner += [number] * len(segment.tokens)
            visible += [prompt_len + segment.shared] * len(segment.tokens)
            # hidden row start + k predicts suffix token k + 1
            for k in range(max(segment.first_target, 1), len(segment.targets)):
                rows.append(start + k - 1)
                targets.append(segment.targets[k])
                sinks.append(segment.candidate)
        mask = self._pack_mask(owner, visible, cache_len, device)
        hidden = self._forward(tokens, positions, mask)
        logprobs = target_logprobs(self.model, hidden[rows], torch.tensor(targets, device=device)).double()
        scores.index_add_(0, torch.tensor(sinks, device=device), logprobs)

    def _pack_mask(self, owner, visible, cache_len, device):
        """Additive 4D mask (1, 1, L, cache_len + L): cache[0:visible) and the own suffix, causally."""
        import torch

        dtype = next(self.model.parameters()).dtype
        owner_t = torch.tensor(owner, device=device)
        length = len(owner)
        index = torch.arange(length, device=device)
        own = (owner_t[:, None] == owner_t[None, :]) & (index[None, :] <= index[:, None])
        cached = torch.arange(cache_len, device=device)[None, :] < torch.tensor(visible, device=device)[:, None]
        allowed = torch.cat([cached, own], dim=1)
        mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        return mask[None, None]
