"""Attention for bfloat16 models on the CPU as two matrix products, instead of PyTorch's fused kernel.

ICM's fast scorer extends stored prompts a few dozen tokens at a time over contexts of thousands, so
most of its attention is a short block of queries against a long cache. There PyTorch's fused CPU kernel
(scaled_dot_product_attention in bfloat16) was slow, and transformers copies each key/value head once
per query head before calling it whenever a mask is given. Here the query heads that share a key/value
head are stacked into one matrix and meet the keys, then the values, in two bfloat16 products; the
softmax is taken in float32. These are the numerics of transformers' own eager attention in bfloat16
(scores rounded to bfloat16 before the softmax), as close to the float32 model's log-odds as the fused
kernel's and faster on a recorded fast run (bench/engine_log.md has the figures).

Rows, or a long row's queries, run in slices whose float32 scores fit in SCORE_BYTES. Anything else (no
boolean mask, dropout, a softcap) goes to transformers' SDPA path.
"""

from __future__ import annotations

from typing import Any

NAME = "icm_grouped"
# The most float32 score bytes one slice of rows or queries may hold at once.
SCORE_BYTES = 2**25


def grouped_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                      scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    """transformers' attention-function signature: query [B, H, q, d], key/value [B, Hkv, kv, d], a
    boolean mask [B or 1, 1, q, kv] (True: attend). Returns [B, q, H, d] and no weights."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, heads, q_len, dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    if (attention_mask is None or attention_mask.dtype != torch.bool or attention_mask.dim() != 4
            or attention_mask.shape[1] != 1 or dropout or kwargs.get("softcap") is not None or heads % kv_heads):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    group = heads // kv_heads
    scale = dim ** -0.5 if scaling is None else scaling
    # A finite floor, not -inf: a row with nothing to attend to (a pad) gets finite weights, not NaN.
    floor = torch.finfo(torch.float32).min
    # Slices of rows, or of one row's queries, whose float32 scores fit in SCORE_BYTES.
    per_query = heads * kv_len * 4
    queries = max(1, min(q_len, SCORE_BYTES // per_query))
    rows = max(1, SCORE_BYTES // (per_query * q_len)) if queries == q_len else 1
    out = torch.empty(batch, heads, q_len, dim, dtype=value.dtype, device=value.device)
    for a in range(0, batch, rows):
        b = min(batch, a + rows)
        n = b - a
        mask = attention_mask[a:b] if attention_mask.shape[0] == batch else attention_mask
        for qa in range(0, q_len, queries):
            qb = min(q_len, qa + queries)
            m = qb - qa
            # Query heads h*group .. h*group+group-1 read key/value head h (transformers' repeat_kv).
            stacked = query[a:b, :, qa:qb].reshape(n, kv_heads, group * m, dim)
            scores = torch.matmul(stacked, key[a:b].transpose(-1, -2)).float().mul_(scale)
            scores = scores.view(n, kv_heads, group, m, kv_len).masked_fill_(~mask[:, :, None, qa:qb], floor)
            weights = torch.softmax(scores, dim=-1).to(value.dtype).view(n, kv_heads, group * m, kv_len)
            out[a:b, :, qa:qb] = torch.matmul(weights, value[a:b]).view(n, heads, m, dim)
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Make NAME an attention implementation transformers models can be loaded with; returns NAME."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, grouped_attention)
    if NAME not in ALL_MASK_ATTENTION_FUNCTIONS:
        # The same boolean masks as SDPA (and None where SDPA's causal flag does it alone).
        AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME
