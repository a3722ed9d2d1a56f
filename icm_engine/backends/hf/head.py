"""Log-probabilities of chosen tokens through the vocabulary head, a block of the vocabulary at a time.

A log-prob is the token's logit less its row's log-sum-exp over the whole vocabulary (262k words for the
default model). Made whole, a row's logits are a megabyte in float32, and writing them, converting them and
reading them back for the log-sum-exp cost more than the matrix product that makes them. Taken a block of
the vocabulary at a time, the logits stay in the processor's cache and the running log-sum-exp is combined
block by block (`python bench/attention_bench.py head` measures it). The result is the same up to float
rounding: each logit is the same product, only the order in which the exponentials are summed differs.
"""

from __future__ import annotations

from typing import Any


def chosen_logprobs(h: Any, weight: Any, targets: Any, *, bias: Any = None, softcap: float | None = None,
                    row_block: int = 512, vocab_block: int = 4096) -> Any:
    """log P(targets[r, k] | row r) for hidden states h [rows, dim] under the head (weight [vocab, dim], bias
    [vocab] or None, the logits softcapped as Gemma 2 caps them where `softcap` is set). `targets` is a long
    tensor [rows, k]. Returns float32 [rows, k]."""
    import torch

    rows, k = targets.shape
    out = torch.empty((rows, k), dtype=torch.float32, device=h.device)
    vocab = weight.shape[0]
    for a in range(0, rows, row_block):
        hh = h[a:a + row_block]
        tt = targets[a:a + row_block]
        total = torch.full((len(hh),), float("-inf"), dtype=torch.float32, device=h.device)
        chosen = torch.zeros((len(hh), k), dtype=torch.float32, device=h.device)
        for c in range(0, vocab, vocab_block):
            logits = torch.nn.functional.linear(hh, weight[c:c + vocab_block],
                                                None if bias is None else bias[c:c + vocab_block]).float()
            if softcap:
                logits.div_(softcap).tanh_().mul_(softcap)
            total = torch.logaddexp(total, torch.logsumexp(logits, dim=-1))
            inside = (tt >= c) & (tt < c + logits.shape[1])
            if inside.any():
                r, j = inside.nonzero(as_tuple=True)
                chosen[r, j] = logits[r, tt[r, j] - c]
        out[a:a + row_block] = chosen - total[:, None]
    return out
