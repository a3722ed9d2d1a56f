"""KV caches built from stored prefixes: which layers keep only a sliding window, and caches made of
(keys, values) pairs, padded rows and repeated rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..prefix_store import Node


def recording_returns_window(layer: Any) -> bool:
    """Whether a sliding layer that records its past returns only the states its mask covers, as
    `CacheLayout.new_cache` needs when a prompt runs in several forward passes. transformers 5.17 returned
    every recorded state, which the masks do not cover (a shape error in attention); there every layer
    keeps all its positions instead, which is exact too."""
    import torch

    window = layer.sliding_window
    layer.activate_past_recording()
    layer.cumulative_length = window + 8
    past = torch.zeros(1, 1, window - 1, 1)
    layer.lazy_initialization(past, past)
    layer.keys, layer.values = past, past
    new = torch.zeros(1, 1, 2, 1)
    layer.update(new, new)
    keys, _ = layer.update(new, new)
    return keys.shape[2] == window - 1 + 2


class CacheLayout:
    """Which of a model's layers attend only to a sliding window (Gemma 3: 15 of 18, window 512), and the
    caches that fit them: a sliding layer keeps only its window, which the model's masks already confine
    attention to, so long prefixes cost those layers neither the copy nor the attention over what they
    cannot see. `sliding` is None where every layer keeps all its positions (an older cache API, or one
    whose recording layers do not behave as needed), which is exact too."""

    def __init__(self, config: Any):
        self.config = config
        self.sliding, self.window = self._sliding_layers(config)

    @staticmethod
    def _sliding_layers(config: Any) -> tuple[list[bool] | None, int]:
        try:
            from transformers import DynamicCache

            layers = DynamicCache(config=config).layers
        except Exception:  # an older cache API: keep full copies, which are exact too
            return None, 0
        sliding = [bool(getattr(layer, "is_sliding", False)) for layer in layers]
        windows = {getattr(layer, "sliding_window", None) for layer, s in zip(layers, sliding, strict=True) if s}
        usable = len(windows) == 1 and None not in windows and all(
            hasattr(layer, "activate_past_recording") and hasattr(layer, "cumulative_length")
            for layer, s in zip(layers, sliding, strict=True) if s)
        if not (any(sliding) and usable and recording_returns_window(
                next(layer for layer, s in zip(layers, sliding, strict=True) if s))):
            return None, 0
        return sliding, int(windows.pop())

    def kept(self, li: int, past: int) -> int:
        """How many of `past` positions layer li's cache holds."""
        if self.sliding is not None and self.sliding[li]:
            return min(past, self.window - 1)
        return past

    def new_cache(self, kv: Sequence[tuple[Any, Any]], past: int) -> Any:
        """A KV cache for `past` positions from one (keys, values) pair per layer, each covering the last
        positions of [0, past) (all of them, or at least the window for a sliding layer).

        A sliding layer records what the next forward adds (rather than dropping all but the window) so the
        new tokens of every layer can be stored."""
        from transformers import DynamicCache

        if self.sliding is None:
            cache = DynamicCache()
            for li, (keys, values) in enumerate(kv):
                cache.update(keys, values, li)
            return cache
        cache = DynamicCache(config=self.config)
        for layer, sliding, (keys, values) in zip(cache.layers, self.sliding, kv, strict=True):
            if sliding:
                layer.activate_past_recording()
                layer.cumulative_length = past
            if past:
                if sliding:
                    keys, values = keys[:, :, -(self.window - 1):], values[:, :, -(self.window - 1):]
                layer.lazy_initialization(keys, values)
                layer.keys, layer.values = keys, values
        return cache

    def empty_cache(self) -> Any:
        return self.new_cache([(None, None)] * len(self.sliding or []), 0)

    def padded(self, paths: Sequence[Sequence[Node]], starts: Sequence[int]) -> Any:
        """A fresh KV cache holding each row's stored prefix (its path, `starts[r]` tokens), left-padded to
        the longest. Sliding layers get only the window before the first new token.

        Each layer's keys (and values) of every row are gathered by one concatenation of the nodes' slices:
        a path grows a node per evaluation under the labeled order, and copying slice by slice (rows x
        nodes x layers copies a call, each a kernel launch on a GPU) cost more than the model there."""
        import torch

        past = max(starts)
        template = next((n.kv for p in paths for n in p), None) if past else None
        if template is None:
            return self.empty_cache()
        rows = len(paths)
        kv = []
        for li, (k0, v0) in enumerate(template):
            n = self.kept(li, past)
            lo = past - n  # padded index of the first position this layer keeps
            # A row's left pads are zeros (masked, but uninitialised memory can hold NaN, and a masked
            # weight of 0 times NaN is NaN): slices of one zero block.
            pads = [max(past - st, lo) - lo for st in starts]
            zeros = (k0.new_zeros((1, k0.shape[1], max(pads), k0.shape[3])),
                     v0.new_zeros((1, v0.shape[1], max(pads), v0.shape[3]))) if max(pads) else None
            parts: tuple[list, list] = ([], [])
            for path, st, pad in zip(paths, starts, pads, strict=True):
                for which in (0, 1):
                    if pad:
                        parts[which].append(zeros[which].narrow(2, 0, pad))
                at = past - st
                a = max(at, lo)
                for node in path:
                    keys, values = node.kv[li]
                    m = keys.shape[2]
                    if at + m > a:
                        # Whole nodes as they are, the first one cut with one narrow: no other views.
                        skip = max(a - at, 0)
                        parts[0].append(keys.narrow(2, skip, m - skip) if skip else keys)
                        parts[1].append(values.narrow(2, skip, m - skip) if skip else values)
                    at += m
            pair = []
            for which, first in ((0, k0), (1, v0)):
                heads, dim = first.shape[1], first.shape[3]
                # [1, heads, rows * n, dim]: for each head, row 0's positions, then row 1's...
                joined = torch.cat(parts[which], dim=2).view(heads, rows, n, dim).transpose(0, 1)
                pair.append(joined if heads == 1 else joined.contiguous())
            kv.append(tuple(pair))
        return self.new_cache(kv, past)

    def repeated(self, cache: Any, past: int, rows: int) -> Any:
        """`rows` copies of a one-row cache of `past` positions. A sliding layer that recorded a long
        stretch is cut to its window before it is copied: cut after, each copy would keep the whole
        stretch alive (rows x thousands of positions x most layers)."""
        kv = []
        for li, layer in enumerate(cache.layers):
            lo = layer.keys.shape[2] - self.kept(li, past)
            kv.append((layer.keys[:, :, lo:].repeat_interleave(rows, dim=0),
                       layer.values[:, :, lo:].repeat_interleave(rows, dim=0)))
        return self.new_cache(kv, past)
