"""Exact fast scorer: prompt and shared-prefix KV reuse, candidate suffixes packed into rows.

A candidate c shares a prefix of length l with the trunk (the current chain). Everything up to
prompt + trunk[:l] is already in the trunk's KV cache, and the log-probs of those tokens are already
known, so only the suffix c[l:] + answer is recomputed, at its true positions. Suffixes are packed
into rows, a long one beside a short one so rows come out nearly equal in length, and the rows are
batched over the shared cache; a 4D mask lets each suffix see cache[0 : P + l] and itself (causally),
nothing else. The trunk is cached across calls: when it changes (the chosen deletion), only its tail is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    ``token_budget`` caps the row tokens per forward, and 8 × budget the cache positions replicated
    across a batch's rows, so memory is bounded by the budget, not by n².
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
    def _forward(self, tokens, positions, mask=None, keep_kv=False, cache_len=None, padding=0):
        """Run rows of tokens (B × L) over the cached prompt + trunk (its first ``cache_len`` positions,
        shared by every row); returns final hidden states B × L × d and, with ``keep_kv``, keeps the KV.
        ``padding`` of the B × L tokens are padding: counted apart from the real tokens."""
        import torch
        from transformers import DynamicCache

        rows = len(tokens)
        cache = DynamicCache(config=self.model.config)
        for layer, (keys, values) in enumerate(self._kv):
            keys, values = keys[..., :cache_len, :], values[..., :cache_len, :]
            cache.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1), layer)
        device = self.device
        past = cache.get_seq_length()
        output = self.model.base_model(
            input_ids=torch.tensor(tokens, device=device),
            position_ids=torch.tensor(positions, device=device),
            cache_position=torch.arange(past, past + len(tokens[0]), device=device),
            attention_mask=mask,
            cache=cache,
            use_cache=True,
        )
        self.stats.forward_calls += 1
        self.stats.tokens_computed += sum(len(row) for row in tokens) - padding
        self.stats.padding_tokens += padding
        if keep_kv:
            self._kv = [(layer.keys, layer.values) for layer in cache.layers]
        return output.last_hidden_state

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
        hidden = self._forward([list(prompt_ids)], [list(range(len(prompt_ids)))], keep_kv=True)[0]
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
            tail = self._forward([trunk[shared:]], [positions], keep_kv=True)[0]
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
            for batch in self._batches(segments):
                self._score_batch(batch, scores)
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

    def _rows(self, segments: list[_Segment]) -> list[list[_Segment]]:
        """Pack suffixes into rows of one width by first-fit decreasing. Suffix lengths fall evenly from
        n + |a| to |a|, so a width of longest + shortest pairs a long suffix with a short one and leaves
        almost no padding."""
        ordered = sorted((s for s in segments if s.tokens), key=lambda s: -len(s.tokens))
        if not ordered:
            return []
        width = len(ordered[0].tokens) + len(ordered[-1].tokens)
        rows: list[list[_Segment]] = []
        room: list[int] = []
        for segment in ordered:
            size = len(segment.tokens)
            slot = next((r for r, free in enumerate(room) if free >= size), None)
            if slot is None:
                rows.append([segment])
                room.append(width - size)
            else:
                rows[slot].append(segment)
                room[slot] -= size
        return rows

    def _batches(self, segments: list[_Segment]):
        """Rows grouped into forwards of at most ``token_budget`` row tokens, and at most
        8 × token_budget cache + row positions in all (the cache is replicated per row)."""
        rows = self._rows(segments)
        cache_len = len(self._prompt) + len(self._trunk)
        batch: list[list[_Segment]] = []
        for row in rows:
            width = max(sum(len(s.tokens) for s in r) for r in batch + [row])
            count = len(batch) + 1
            if batch and (count * width > self.token_budget or count * (cache_len + width) > 8 * self.token_budget):
                yield batch
                batch = []
            batch.append(row)
        if batch:
            yield batch

    def _score_batch(self, batch: list[list[_Segment]], scores) -> None:
        """One forward over rows of packed suffixes and the shared cache; add target log-probs to ``scores``."""
        import torch

        device = self._hidden.device
        prompt_len = len(self._prompt)
        cache_len = prompt_len + max(s.shared for row in batch for s in row)  # nobody looks further
        width = max(sum(len(s.tokens) for s in row) for row in batch)
        tokens, positions, owners, visible, rows, targets, sinks = [], [], [], [], [], [], []
        for number, row in enumerate(batch):
            row_tokens, row_positions, row_owner, row_visible = [], [], [], []
            for segment in row:
                start = number * width + len(row_tokens)
                first_position = prompt_len + segment.shared
                row_tokens += segment.tokens
                row_positions += range(first_position, first_position + len(segment.tokens))
                row_owner += [segment.candidate] * len(segment.tokens)
                row_visible += [first_position] * len(segment.tokens)
                # hidden state k of a suffix predicts its token k + 1
                for k in range(max(segment.first_target, 1), len(segment.targets)):
                    rows.append(start + k - 1)
                    targets.append(segment.targets[k])
                    sinks.append(segment.candidate)
            pad = width - len(row_tokens)
            tokens.append(row_tokens + [row_tokens[-1]] * pad)
            positions.append(row_positions + [row_positions[-1]] * pad)
            owners.append(row_owner + [-1] * pad)
            visible.append(row_visible + [0] * pad)
        padding = len(batch) * width - sum(len(s.tokens) for row in batch for s in row)
        mask = self._batch_mask(owners, visible, cache_len, device)
        hidden = self._forward(tokens, positions, mask, cache_len=cache_len, padding=padding)
        flat = hidden.reshape(-1, hidden.shape[-1])[rows]
        logprobs = target_logprobs(self.model, flat, torch.tensor(targets, device=device)).double()
        scores.index_add_(0, torch.tensor(sinks, device=device), logprobs)

    def _batch_mask(self, owners, visible, cache_len: int, device):
        """Additive mask (B, 1, W, cache_len + W): a token sees cache[0:visible] and, causally, the
        tokens of its own suffix in its row. Padding (owner -1) sees only padding, and no real token
        sees padding."""
        import torch

        dtype = next(self.model.parameters()).dtype
        owner = torch.tensor(owners, device=device)  # B × W
        width = owner.shape[1]
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
        own = (owner[:, :, None] == owner[:, None, :]) & causal  # B × W × W
        cached = torch.arange(cache_len, device=device) < torch.tensor(visible, device=device)[..., None]
        allowed = torch.cat([cached, own], dim=2)
        mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        return mask[:, None]
