"""The vocabulary head taken a block at a time (backends/hf/head.py) gives the whole head's log-probs."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from icm_engine.backends.hf.head import chosen_logprobs  # noqa: E402


@pytest.mark.parametrize(("row_block", "vocab_block"), [(512, 4096), (3, 7), (1, 1000), (64, 100)])
@pytest.mark.parametrize("softcap", [None, 2.0])
def test_blocks_of_rows_and_words_give_the_whole_heads_log_probs(row_block, vocab_block, softcap):
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(11, 16, generator=gen)
    weight = torch.randn(1000, 16, generator=gen)  # 1000 words: no block size divides it evenly but 1000
    bias = torch.randn(1000, generator=gen)
    targets = torch.randint(0, 1000, (11, 3), generator=gen)
    targets[0] = torch.tensor([0, 999, 500])  # the first and last words, at the blocks' edges
    logits = torch.nn.functional.linear(h, weight, bias)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    expected = torch.log_softmax(logits, dim=-1).gather(1, targets)
    got = chosen_logprobs(h, weight, targets, bias=bias, softcap=softcap, row_block=row_block, vocab_block=vocab_block)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
