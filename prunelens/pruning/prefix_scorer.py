"""Exact fast scorer: prompt and shared-prefix KV reuse, candidate suffixes packed into rows.

A candidate c shares a prefix of length l with the trunk (the current chain). Everything up to
prompt + trunk[:l] is already in the trunk's KV cache, and the log-probs of those tokens are already
known, so only the suffix c[l:] + answer is recomputed, at its true positions. Suffixes are packed
into rows, a long one beside a short one so rows come out nearly equal in length, and the rows are
batched over the shared cache; a 4D mask lets each suffix see cache[0 : P + l] and itself (causally),
nothing else (with sliding-window layers, only what lies inside the window). The trunk is cached across
calls. The best candidate's KV and hidden states are kept from its batch: greedy deletes it, so it is
the next trunk, and nothing is recomputed; any other new trunk has only its tail recomputed. Models
with layers other than full or sliding-window attention are refused (``fast_scorer_refusal``).
"""

from __future__ import annotations

from dataclasses import dataclass

from prunelens.core.errors import PrunelensError
from prunelens.core.objectives import Objective
from prunelens.pruning.scorer import ScorerStats, target_logprobs


def common_prefix(a, b) -> int:
    """Length of the longest common prefix of two sequences."""
    limit = min(len(a), len(b))
    for index in range(limit):
        if a[index] != b[index]:
            return index
    return limit


def sliding_window(config) -> int | None:
    """The attention window of a model whose layers (some or all) use sliding-window attention, else None."""
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        sliding = "sliding_attention" in layer_types
    else:
        sliding = getattr(config, "use_sliding_window", True)
    return window if window and sliding else None


def fast_scorer_refusal(config) -> str | None:
    """Why the fast scorer cannot be exact for a model of ``config``, or None. Its packed rows need full or
    sliding-window attention that obeys explicit 4D masks (the window is built into them): layers of any
    other type (state-space, linear or chunked attention) keep no per-position KV to share."""
    layer_types = getattr(config, "layer_types", None)
    other = sorted(set(layer_types or ()) - {"full_attention", "sliding_attention"})
    if other:
        return f"layers of type {', '.join(other)} (only full or sliding-window attention can share a prefix cache)"
    return None


@dataclass
class _Segment:
    candidate: int  # index into the candidate list
    shared: int  # tokens of the candidate shared with the trunk (its cached prefix)
    tokens: list[int]  # suffix tokens fed to the model (the suffix minus its last token)
    targets: list[int]  # suffix tokens whose log-probs the objective sums
    first_target: int  # index in the suffix of the first summed token
    tail: int  # chain tokens in the suffix (the rest is the answer)


@dataclass
class _Targets:
    """Tokens whose log-probs a forward's final hidden states give, and the candidates they count for."""

    hidden: object  # N × d
    tokens: list[int]
    sinks: list[int]


@dataclass
class _Kept:
    """The best candidate so far, with what its batch computed for its chain tail."""

    sequence: tuple[int, ...]
    shared: int
    score: float
    index: int  # the candidate's index in its score call
    kv: list[tuple]  # per layer (keys, values) of the tail positions
    hidden: object  # final hidden states of the tail positions
    logprobs: object | None  # log-probs of the tail tokens (None: not among the objective's targets)


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
        self._kept: _Kept | None = None
        self._first_logprobs: dict = {}  # candidate → log-prob of its suffix token 0, this score call

    def _check(self) -> None:
        refusal = fast_scorer_refusal(self.model.config)
        if refusal:
            model_type = getattr(self.model.config, "model_type", "?")
            raise PrunelensError(f"the fast scorer cannot be exact for model type {model_type!r}: {refusal}; "
                                 "use --scorer naive")  # fmt: skip

    # -- model calls ---------------------------------------------------------------------------------
    def _forward(self, tokens, positions, mask=None, cache_len=None, padding=0):
        """Run rows of tokens (B × L) over the cached prompt + trunk (its first ``cache_len`` positions,
        shared by every row); returns final hidden states B × L × d and the cache, which holds the
        rows' KV after the shared positions. ``padding`` of the B × L tokens are padding: counted apart
        from the real tokens."""
        import torch
        from transformers import DynamicCache

        rows = len(tokens)
        # a sliding-window cache drops old positions; the masks apply the window, so keep every position
        cache = DynamicCache() if sliding_window(self.model.config) else DynamicCache(config=self.model.config)
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
        return output.last_hidden_state, cache

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
        self._prompt, self._kv, self._trunk, self._kept = tuple(prompt_ids), [], [], None
        hidden, cache = self._forward([list(prompt_ids)], [list(range(len(prompt_ids)))])
        self._kv = [(layer.keys, layer.values) for layer in cache.layers]
        self._hidden = hidden[0, -1:].clone()
        self._trunk_logprobs = torch.empty(0, dtype=torch.float64, device=hidden.device)

    def _set_trunk(self, trunk) -> None:
        import torch

        trunk = list(trunk)
        kept, self._kept = self._kept, None
        if kept is not None and kept.sequence == tuple(trunk):
            shared, tail_kv, tail_hidden, tail_logprobs = kept.shared, kept.kv, kept.hidden, kept.logprobs
        else:
            shared = common_prefix(self._trunk, trunk)
            tail_kv, tail_hidden, tail_logprobs = None, None, None
        prompt_len = len(self._prompt)
        self._crop(prompt_len + shared)
        hidden = self._hidden[: shared + 1]
        logprobs = self._trunk_logprobs[:shared]
        if shared < len(trunk):
            if tail_hidden is None:
                positions = list(range(prompt_len + shared, prompt_len + len(trunk)))
                tail, cache = self._forward([trunk[shared:]], [positions], cache_len=prompt_len + shared)
                tail_hidden = tail[0]
                tail_kv = [(layer.keys[..., prompt_len + shared :, :], layer.values[..., prompt_len + shared :, :])
                           for layer in cache.layers]  # fmt: skip
            self._kv = [(torch.cat([k, tk], dim=2), torch.cat([v, tv], dim=2))
                        for (k, v), (tk, tv) in zip(self._kv, tail_kv)]  # fmt: skip
            hidden = torch.cat([hidden, tail_hidden])
            if tail_logprobs is None:
                targets = torch.tensor(trunk[shared:], device=hidden.device)
                tail_logprobs = target_logprobs(self.model, hidden[shared:-1], targets).double()
            logprobs = torch.cat([logprobs, tail_logprobs])
        self._trunk, self._hidden, self._trunk_logprobs = trunk, hidden, logprobs

    # -- scoring -------------------------------------------------------------------------------------
    def score(self, prompt_ids, candidates, answer_ids, objective, trunk=None):
        import torch

        objective = Objective.parse(objective)
        self._check()
        with torch.inference_mode():
            self._set_prompt(prompt_ids)
            self._set_trunk(candidates[0] if trunk is None else trunk)
            prefix_sums = torch.cat([self._trunk_logprobs.new_zeros(1), self._trunk_logprobs.cumsum(0)])
            scores = torch.zeros(len(candidates), dtype=torch.float64, device=self._hidden.device)
            segments = [self._segment(i, c, answer_ids, objective) for i, c in enumerate(candidates)]
            if objective is Objective.JOINT:
                scores += prefix_sums[[s.shared for s in segments]]
            first = self._first_targets(segments)
            for batch in self._batches(segments):
                self._score_batch(batch, scores, first)
                first = None
            if first is not None:  # no suffix had tokens to feed
                self._score_rows(first, scores)
        return scores.cpu().numpy()

    def _segment(self, index, candidate, answer_ids, objective) -> _Segment:
        shared = common_prefix(candidate, self._trunk)
        suffix = list(candidate[shared:]) + list(answer_ids)
        first = 0 if objective is Objective.JOINT else len(candidate) - shared
        return _Segment(index, shared, suffix[:-1], suffix, first, len(candidate) - shared)

    def _first_targets(self, segments) -> _Targets:
        """Suffix token 0 is predicted by the trunk's hidden state at the end of the shared prefix."""
        chosen = [s for s in segments if s.first_target == 0 and s.targets]
        return _Targets(self._hidden[[s.shared for s in chosen]], [s.targets[0] for s in chosen],
                        [s.candidate for s in chosen])  # fmt: skip

    def _score_rows(self, targets: _Targets, scores):
        """Add the log-probs of ``targets`` to their candidates' scores; returns the log-probs."""
        import torch

        device = scores.device
        tokens = torch.tensor(targets.tokens, device=device, dtype=torch.long)
        logprobs = target_logprobs(self.model, targets.hidden, tokens).double()
        scores.index_add_(0, torch.tensor(targets.sinks, device=device, dtype=torch.long), logprobs)
        return logprobs

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

    def _score_batch(self, batch: list[list[_Segment]], scores, first: _Targets | None) -> None:
        """One forward over rows of packed suffixes and the shared cache; add target log-probs to
        ``scores``. ``first`` (first-target rows) joins this batch's output projection."""
        import torch

        device = self._hidden.device
        prompt_len = len(self._prompt)
        cache_len = prompt_len + max(s.shared for row in batch for s in row)  # nobody looks further
        width = max(sum(len(s.tokens) for s in row) for row in batch)
        tokens, positions, owners, visible, rows, targets, sinks, placed = [], [], [], [], [], [], [], []
        for number, row in enumerate(batch):
            row_tokens, row_positions, row_owner, row_visible = [], [], [], []
            for segment in row:
                placed.append((segment, number, len(row_tokens), len(rows)))
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
        mask = self._batch_mask(owners, visible, cache_len, device, positions)
        hidden, cache = self._forward(tokens, positions, mask, cache_len=cache_len, padding=padding)
        flat = hidden.reshape(-1, hidden.shape[-1])[rows]
        if first is not None:
            self._first_logprobs = {}
            if first.tokens:
                flat = torch.cat([flat, first.hidden])
                targets, sinks = targets + first.tokens, sinks + first.sinks
        logprobs = self._score_rows(_Targets(flat, targets, sinks), scores)
        if first is not None and first.tokens:
            self._first_logprobs = dict(zip(first.sinks, logprobs[-len(first.tokens) :]))
        self._keep_best(placed, scores, hidden, cache, cache_len, logprobs)

    def _keep_best(self, placed, scores, hidden, cache, cache_len: int, logprobs) -> None:
        """Keep the tail KV, hidden states and log-probs of this batch's best candidate if it beats the
        best so far (ties go to the lower candidate index, as greedy's do): it is the likely next trunk."""
        import torch

        values = scores.tolist()
        segment, number, offset, first_row = max(placed, key=lambda p: (values[p[0].candidate], -p[0].candidate))
        score = values[segment.candidate]
        best = self._kept
        if best is not None and (best.score, -best.index) >= (score, -segment.candidate):
            return
        columns = slice(cache_len + offset, cache_len + offset + segment.tail)
        kv = [(layer.keys[number : number + 1, :, columns].clone(), layer.values[number : number + 1, :, columns].clone())
              for layer in cache.layers]  # fmt: skip
        sequence = tuple(self._trunk[: segment.shared]) + tuple(segment.tokens[: segment.tail])
        tail_hidden = hidden[number, offset : offset + segment.tail].clone()
        tail_logprobs = None
        if segment.first_target == 0 and segment.tail:  # the joint objective scored every tail token
            rest = logprobs[first_row : first_row + segment.tail - 1]
            tail_logprobs = torch.cat([self._first_logprobs[segment.candidate].reshape(1), rest])
        self._kept = _Kept(sequence, segment.shared, score, segment.candidate, kv, tail_hidden, tail_logprobs)

    def _batch_mask(self, owners, visible, cache_len: int, device, positions=None):
        """Additive mask (B, 1, W, cache_len + W): a token sees cache[0:visible] and, causally, the
        tokens of its own suffix in its row. Padding (owner -1) sees only padding, and no real token
        sees padding. With sliding-window layers a token at position p also sees only keys at positions
        above p - window: that mask alone for a model whose layers all slide, else one per layer type."""
        import torch

        dtype = next(self.model.parameters()).dtype
        owner = torch.tensor(owners, device=device)  # B × W
        width = owner.shape[1]
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
        own = (owner[:, :, None] == owner[:, None, :]) & causal  # B × W × W
        cached = torch.arange(cache_len, device=device) < torch.tensor(visible, device=device)[..., None]
        allowed = torch.cat([cached, own], dim=2)

        def additive(allowed):
            mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
            mask.masked_fill_(~allowed, torch.finfo(dtype).min)
            return mask[:, None]

        window = sliding_window(self.model.config)
        if window is None or positions is None:
            return additive(allowed)
        query = torch.tensor(positions, device=device)  # B × W
        keys = torch.cat([torch.arange(cache_len, device=device).expand(len(positions), -1), query], dim=1)
        windowed = additive(allowed & (keys[:, None, :] > query[:, :, None] - window))
        layer_types = getattr(self.model.config, "layer_types", None)
        if layer_types is None:
            return windowed
        return {kind: windowed if kind == "sliding_attention" else additive(allowed) for kind in set(layer_types)}
