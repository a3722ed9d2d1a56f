"""Hidden states of many prompts, computing only what the prefix store does not hold (the `fast` scorer's
exact saving).

Every prompt resumes from the longest prefix in the store (prefix_store.py: KV states of earlier prompts,
this call's and earlier calls') and only the rest is computed, many prompts in one batch. ICM's
leave-one-out prompts share long prefixes within an evaluation and across evaluations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..prefix_store import Node, PrefixStore
from .batching import BatchLimits, width_groups
from .kv_cache import CacheLayout
from .memory import release_freed_memory


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PrefixSharer:
    """Runs the model body over token sequences, reusing and filling a prefix store."""

    def __init__(self, body: Callable[..., Any], cache_arg: str, layout: CacheLayout, store: PrefixStore,
                 limits: BatchLimits, pad: int):
        import torch

        self.body = body  # the model without its vocabulary head; called with a cache under `cache_arg`
        self.cache_arg = cache_arg
        self.layout = layout
        self.store = store
        self.limits = limits
        self.pad = pad
        self._torch = torch

    def keep(self, seq: list[int], cache: Any, row: int = 0, shift: int = 0) -> None:
        """Store whatever part of `seq` the store lacks, from a cache that holds all of seq (position p of
        seq at index p + shift of row `row`; a sliding layer holds only the end of that range)."""
        path, have = self.store.match(seq)
        if have >= len(seq):
            return
        total = max(layer.keys.shape[2] for layer in cache.layers)
        a, b = have + shift, len(seq) + shift
        views = []
        for layer in cache.layers:
            off = total - layer.keys.shape[2]
            views.append((layer.keys[row:row + 1, :, a - off:b - off],
                          layer.values[row:row + 1, :, a - off:b - off]))
        parent = path[-1] if path else None
        self.store.make_room(sum(k.nbytes + v.nbytes for k, v in views), keep=parent)
        self.store.insert(parent, seq[have:], [(k.clone(), v.clone()) for k, v in views])

    def extend(self, seqs: Sequence[list[int]], starts: Sequence[int], paths: Sequence[Sequence[Node]]):
        """Run seq[start:] of each sequence over its stored prefix (the path), all in one batch.

        Prefixes of different lengths are left-padded to the longest, their pads masked: distances between
        real tokens stay as they are, so each layer's sliding window sees what it would unpadded.
        Returns the hidden states [rows, width], the cache, and the padded prefix length `past` (row r's
        position p is at cache index p + past - starts[r]).
        """
        torch = self._torch
        rows = len(seqs)
        past = max(starts)
        width = max(len(s) - st for s, st in zip(seqs, starts, strict=True))
        ids = torch.full((rows, width), self.pad, dtype=torch.long)
        mask = torch.zeros((rows, past + width), dtype=torch.long)
        positions = torch.zeros((rows, width), dtype=torch.long)
        for r, (seq, st) in enumerate(zip(seqs, starts, strict=True)):
            tail = seq[st:]
            ids[r, : len(tail)] = torch.tensor(tail, dtype=torch.long)
            mask[r, past - st: past + len(tail)] = 1
            positions[r] = torch.arange(st, st + width)
        cache = self.layout.padded(paths, starts)
        hidden = self.body(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                           **{self.cache_arg: cache}).last_hidden_state
        return hidden, cache, past

    def forward(self, ids: Any, start: int, cache: Any) -> Any:
        """Run ids (right-padded rows) over the cache, at most `chunk_tokens` positions per pass: attention's
        scores grow with the square of a pass's length, and causal attention gives each position the same
        result either way."""
        torch = self._torch
        width = ids.shape[1]
        chunk = self.limits.chunk_tokens
        hidden = []
        for a in range(0, width, chunk):
            part = ids[:, a:a + chunk]
            positions = torch.arange(start + a, start + a + part.shape[1], dtype=torch.long)
            hidden.append(self.body(
                input_ids=part, use_cache=True, **{self.cache_arg: cache},
                position_ids=positions[None].expand(ids.shape[0], -1),
            ).last_hidden_state)
        return hidden[0] if len(hidden) == 1 else torch.cat(hidden, dim=1)

    def estimate(self, seqs: Sequence[list[int]], first_read: Sequence[int]) -> tuple[int, int]:
        """About the tokens and forward passes hidden() would take for these sequences now (the wide
        strategy weighs them against padded batches; the store is matched, not filled). In token order each
        sequence computes what neither the store nor the sequence before it holds. Passes: one for the rows
        that resume from the store, one more for each prefix that sequences resume from after an earlier one
        of this call computed it (the call must run and store it first), and at least one for every
        max_batch_tokens // 4 tokens computed."""
        tokens, prev = 0, None
        fresh: set[tuple[int, ...]] = set()  # prefixes this call computes and then resumes from
        for k in sorted(range(len(seqs)), key=lambda k: seqs[k]):
            seq = seqs[k]
            stored = min(self.store.match(seq)[1], first_read[k])
            shared = min(common_prefix(prev, seq), first_read[k]) if prev is not None else 0
            if shared > stored:
                fresh.add(tuple(seq[:shared]))
            tokens += len(seq) - max(stored, shared)
            prev = seq
        return tokens, max(1 + len(fresh), -(-tokens // max(1, self.limits.max_batch_tokens // 4)))

    def store_prefixes(self, prefixes: Sequence[list[int]]) -> int:
        """Put these token sequences in the store (what it lacks of them is computed, sharing what they share
        with each other); returns the tokens computed."""
        missing = [p for p in prefixes if p and self.store.match(p)[1] < len(p)]
        if not missing:
            return 0
        call = _SharedCall(self, missing, [len(p) - 1 for p in missing])
        call.run()
        return call.computed

    def resume(self, seqs: Sequence[list[int]], starts: Sequence[int]) -> tuple[list, int]:
        """Hidden states of positions starts[k] .. len-1 of every sequence, each resumed from what the store
        holds of seq[:starts[k]] (all of it, after store_prefixes), the rows run together in batches of
        similar width. Unlike hidden(), rows that share tokens past their start compute them each and nothing
        is stored: for many short continuations of a few stored contexts, a few wide passes cost less than
        the many narrow ones that sharing every token takes (a pass of a few dozen tokens runs at about a
        quarter of a wide pass's rate on a CPU). Returns the per-sequence tensors and the tokens computed."""
        out: list = [None] * len(seqs)
        computed = 0
        have = []
        for seq, start in zip(seqs, starts, strict=True):
            have.append(self.store.match(seq, start)[1])
        for group in width_groups([len(s) - h for s, h in zip(seqs, have, strict=True)], self.limits.overhead_tokens):
            batch: list[int] = []
            for k in [*group, None]:
                if k is not None and (not batch or (len(batch) + 1) * max(len(seqs[q]) for q in [*batch, k])
                                      <= self.limits.max_batch_tokens):
                    batch.append(k)
                    continue
                rows = [(q, *self.store.match(seqs[q], have[q])) for q in batch]
                hidden, cache, _ = self.extend([seqs[q] for q, _, _ in rows], [h for _, _, h in rows],
                                               [p for _, p, _ in rows])
                for r, (q, _, h) in enumerate(rows):
                    out[q] = hidden[r, starts[q] - h: len(seqs[q]) - h]
                    computed += len(seqs[q]) - h
                del cache, hidden
                release_freed_memory()
                batch = [k] if k is not None else []
        return out, computed

    def hidden(self, seqs: Sequence[list[int]], first_read: Sequence[int]) -> tuple[list, int]:
        """Hidden states of positions first_read[k] .. len-1 of every sequence, computing only what the
        prefix store does not hold. Returns the per-sequence tensors and the number of tokens computed."""
        call = _SharedCall(self, seqs, first_read)
        call.run()
        return call.out, call.computed


class _SharedCall:
    """One call's sequences, visited in token order so each finds its longest shared prefix in the store
    (put there by an earlier call or by the sequence before it). Siblings that branch off the same prefix
    (consecutive sequences with equal pairwise common prefixes, e.g. targets that share a whole context) run
    as one batch over that prefix; the others wait in `pending` and run in batches of similar width."""

    def __init__(self, sharer: PrefixSharer, seqs: Sequence[list[int]], first_read: Sequence[int]):
        self.sharer = sharer
        self.store = sharer.store
        self.limits = sharer.limits
        self.seqs = seqs
        self.first_read = first_read
        self.out: list = [None] * len(seqs)
        self.computed = 0
        self.pending: list[tuple[int, int]] = []  # (sequence, position to compute from), not yet run

    def run(self) -> None:
        seqs = self.seqs
        order = sorted(range(len(seqs)), key=lambda k: seqs[k])
        i = 0
        while i < len(order):
            j = i + 1
            c = common_prefix(seqs[order[i]], seqs[order[j]]) if j < len(order) else -1
            while j < len(order) and common_prefix(seqs[order[j - 1]], seqs[order[j]]) == c:
                j += 1
            run = order[i:j]
            shared = max(0, min([c, *(self.first_read[k] for k in run)]))
            # Everything before the first position read may come from the store.
            starts = {k: self.stored(k) for k in run}
            if len(run) == 1 or shared < 1 or max(starts.values()) > shared:
                self.queue(run, starts)  # alone, or each holds more in the store than the run shares
            else:
                self.flush()
                self.branch(run, shared)
            i = j
        self.flush()

    def stored(self, k: int) -> int:
        """Where sequence k's computation starts: the end of its stored prefix, at most its first read."""
        return min(self.store.match(self.seqs[k])[1], self.first_read[k])

    def prefix_cache(self, seq: list[int], length: int) -> Any:
        """A cache holding seq[:length], computing (and storing) what the store lacks."""
        torch = self.sharer._torch
        path, have = self.store.match(seq, length)
        cache = self.sharer.layout.padded([path], [have])
        if have < length:
            self.sharer.forward(torch.tensor([seq[have:length]], dtype=torch.long), have, cache)
            self.computed += length - have
            self.sharer.keep(seq[:length], cache)
        return cache

    def queue(self, run: Sequence[int], starts: dict[int, int]) -> None:
        seqs = self.seqs
        for k in run:
            if self.pending and common_prefix(seqs[self.pending[-1][0]], seqs[k]) > starts[k]:
                # The sequence before it (not stored yet) shares more: store that first.
                self.flush()
                starts[k] = self.stored(k)
            if self.first_read[k] - starts[k] > self.limits.chunk_tokens:
                # A long new stretch runs alone, in chunks, and is stored; the batch computes the rest.
                self.flush()
                self.prefix_cache(seqs[k], self.first_read[k])
                release_freed_memory()
                starts[k] = self.stored(k)
            self.pending.append((k, starts[k]))
            # Bounded by the padded prefixes' memory and by the tokens to compute.
            longest = max(len(seqs[q]) for q, _ in self.pending)
            if len(self.pending) * longest > self.limits.max_batch_tokens or \
                    sum(len(seqs[q]) - st for q, st in self.pending) > self.limits.max_batch_tokens // 4:
                self.flush()

    def flush(self) -> None:
        """Run the pending sequences, each over its own stored prefix, in batches of similar width."""
        seqs, pending = self.seqs, self.pending
        for group in width_groups([len(seqs[k]) - start for k, start in pending], self.limits.overhead_tokens):
            part = []
            paths = []
            for k, start in (pending[r] for r in group):
                path, have = self.store.match(seqs[k], start)
                paths.append(path)
                part.append((k, have))  # `have` < start only if the store dropped part of it meanwhile
            hidden, cache, past = self.sharer.extend([seqs[k] for k, _ in part], [st for _, st in part], paths)
            for r, (k, start) in enumerate(part):
                self.out[k] = hidden[r, self.first_read[k] - start: len(seqs[k]) - start]
                self.computed += len(seqs[k]) - start
            for r, (k, start) in enumerate(part):
                self.sharer.keep(seqs[k], cache, r, past - start)
            del cache, hidden
            release_freed_memory()
        pending.clear()

    def branch(self, run: Sequence[int], shared: int) -> None:
        """Run sequences that share their first `shared` tokens as batches over one copy of that prefix."""
        torch, sharer, seqs = self.sharer._torch, self.sharer, self.seqs
        # Its own copy of the windows, so a long stretch just recorded is freed before the branches run.
        base = sharer.layout.repeated(self.prefix_cache(seqs[run[0]], shared), shared, 1)
        width = max(len(seqs[k]) - shared for k in run)
        rows = max(1, self.limits.max_batch_tokens // (shared + width))
        for b in range(0, len(run), rows):
            part = run[b:b + rows]
            cache = sharer.layout.repeated(base, shared, len(part))
            ids = torch.full((len(part), width), sharer.pad, dtype=torch.long)
            for r, k in enumerate(part):
                tail = seqs[k][shared:]
                ids[r, : len(tail)] = torch.tensor(tail, dtype=torch.long)
            # Right padding: pads follow the real tokens, which causal attention keeps from seeing them.
            hidden = sharer.forward(ids, shared, cache)
            for r, k in enumerate(part):
                self.out[k] = hidden[r, self.first_read[k] - shared: len(seqs[k]) - shared]
                self.computed += len(seqs[k]) - shared
                sharer.keep(seqs[k], cache, r)
            del cache
            release_freed_memory()
