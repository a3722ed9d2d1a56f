"""Padded KV caches gathered from stored prefixes hold each row's prefix, left-padded with zeros, and only the
window in sliding layers, whatever the rows' lengths and the paths' depth, with one KV head or several."""

from __future__ import annotations

import pytest

from icm_engine.backends.hf.kv_cache import CacheLayout
from icm_engine.backends.prefix_store import Node

WINDOW = 16


@pytest.mark.parametrize("kv_heads", [1, 2])
def test_a_padded_cache_holds_each_rows_prefix_left_padded_and_windowed(kv_heads):
    import torch
    from transformers import Gemma3TextConfig

    config = Gemma3TextConfig(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                              num_attention_heads=2 * kv_heads, num_key_value_heads=kv_heads, head_dim=8,
                              sliding_window=WINDOW, layer_types=["sliding_attention"] * 3 + ["full_attention"])
    layout = CacheLayout(config)
    if layout.sliding is None:
        pytest.skip("this transformers cannot keep sliding layers window-only")
    torch.manual_seed(0)

    def node(length: int) -> Node:
        return Node(list(range(length)), [(torch.randn(1, kv_heads, length, 8), torch.randn(1, kv_heads, length, 8))
                                         for _ in range(4)])

    # A deep path (many small segments), a short one, and one longer than the window by a single node.
    paths = [[node(5), node(3), node(7), node(2), node(9)], [node(4)], [node(30)]]
    starts = [sum(len(n.tokens) for n in p) for p in paths]
    past = max(starts)
    cache = layout.padded(paths, starts)
    for li, layer in enumerate(cache.layers):
        kept = min(past, WINDOW - 1) if layout.sliding[li] else past
        for which, got in ((0, layer.keys), (1, layer.values)):
            assert tuple(got.shape) == (3, kv_heads, kept, 8)
            for r, path in enumerate(paths):
                whole = torch.cat([n.kv[li][which] for n in path], dim=2)[0]
                padded = torch.cat([torch.zeros(kv_heads, past - starts[r], 8), whole], dim=1)
                torch.testing.assert_close(got[r], padded[:, past - kept:], rtol=0, atol=0)
