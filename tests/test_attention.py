"""The grouped attention (backends/attention.py) against PyTorch's own attention on the same tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from icm_engine.backends import attention


class _Module:
    """What transformers' SDPA fallback reads from an attention layer."""

    num_key_value_groups = 4
    is_causal = True


def _inputs(batch: int, q_len: int, kv_len: int, dtype: torch.dtype, pads: int = 3):
    gen = torch.Generator().manual_seed(batch * 1000 + q_len)
    # transformers hands over queries as a transposed view [B, H, q, d], not contiguous.
    query = torch.randn(batch, q_len, 4, 32, generator=gen).to(dtype).transpose(1, 2)
    key = torch.randn(batch, 1, kv_len, 32, generator=gen).to(dtype)
    value = torch.randn(batch, 1, kv_len, 32, generator=gen).to(dtype)
    past = kv_len - q_len
    causal = torch.arange(kv_len)[None, :] <= torch.arange(q_len)[:, None] + past
    mask = causal[None, None].repeat(batch, 1, 1, 1)
    for r in range(batch):
        mask[r, :, :, : (r * pads) % max(past, 1)] = False  # left-padded prefixes of different lengths
    return query, key, value, mask


def _expected(query, key, value, mask, scale):
    group = query.shape[1] // key.shape[1]
    out = F.scaled_dot_product_attention(query.float(), key.float().repeat_interleave(group, 1),
                                         value.float().repeat_interleave(group, 1), attn_mask=mask, scale=scale)
    return out.transpose(1, 2)


@pytest.mark.parametrize("slices", ["none", "rows", "queries"])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_grouped_attention_is_pytorchs_attention(monkeypatch, slices, dtype, tol):
    query, key, value, mask = _inputs(5, 7, 40, dtype)
    one_query = 4 * 40 * 4  # float32 scores of one query position, all heads
    if slices != "none":  # one row at a time, or 3 of a row's 7 queries at a time
        monkeypatch.setattr(attention, "SCORE_BYTES", one_query * (7 if slices == "rows" else 3))
    got, weights = attention.grouped_attention(_Module(), query, key, value, mask, scaling=0.3)
    assert weights is None and got.shape == (5, 7, 4, 32) and got.dtype == dtype and got.is_contiguous()
    torch.testing.assert_close(got.float(), _expected(query, key, value, mask, 0.3), atol=tol, rtol=tol)


def test_a_query_that_sees_nothing_gets_finite_values():
    """A pad row whose mask is all False: PyTorch's kernels disagree on what it gives, but it must not
    be NaN, which would reach the cache and, through zero weights, every later row that reads it."""
    query, key, value, mask = _inputs(2, 3, 10, torch.float32)
    mask[1, :, 2, :] = False
    got, _ = attention.grouped_attention(_Module(), query, key, value, mask, scaling=0.5)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got[0], _expected(query, key, value, mask, 0.5)[0])


def test_without_a_boolean_mask_it_is_transformers_sdpa():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    query, key, value, _ = _inputs(2, 6, 6, torch.float32)
    got, _ = attention.grouped_attention(_Module(), query, key, value, None, scaling=0.2)
    want, _ = sdpa_attention_forward(_Module(), query, key, value, None, scaling=0.2)
    torch.testing.assert_close(got, want, atol=0, rtol=0)


def test_registered_for_transformers_models():
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    name = attention.register()
    assert AttentionInterface._global_mapping[name] is attention.grouped_attention
    assert name in ALL_MASK_ATTENTION_FUNCTIONS
