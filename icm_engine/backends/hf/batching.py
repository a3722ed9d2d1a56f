"""How a call's prompts are cut into right-padded batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class BatchLimits:
    """The sizes that bound a forward pass; shared by the padded and the prefix-sharing paths."""

    # The most padded positions one batch computes.
    max_batch_tokens: int = 8192
    # The most positions one forward pass over a cache computes: attention's scores grow with the square of
    # a pass's length, and causal attention gives each position the same result either way.
    chunk_tokens: int = 1024
    # What one more forward pass costs besides its tokens, in tokens (Python and launch overhead): batches
    # are split by width where that saves more padding than this.
    overhead_tokens: int = 64
    # Rows that go through the vocabulary head together: each pass reads the whole head.
    head_rows: int = 512
    # Words of the vocabulary whose logits are made at once (head.py): a block small enough to stay in the
    # processor's cache while its log-sum-exp is taken.
    vocab_block: int = 4096


def width_groups(widths: Sequence[int], overhead: int) -> list[list[int]]:
    """Split rows of these widths into batches, each padded to its widest row, at the least cost: the padded
    positions computed plus `overhead` per batch. Rows are taken in width order (dynamic programming over
    the cut points). Pads are computed like real tokens, and prefixes that diverge at different points
    leave tails of very different lengths: one padded batch spent a third of its positions on pads."""
    order = sorted(range(len(widths)), key=lambda r: (widths[r], r))
    w = [widths[r] for r in order]
    best = [0] * (len(w) + 1)  # best[j]: the least cost of the j narrowest rows
    cut = [0] * (len(w) + 1)
    for j in range(1, len(w) + 1):
        # order[i:j] in one batch costs (j - i) rows of width w[j - 1].
        best[j], cut[j] = min((best[i] + (j - i) * w[j - 1] + overhead, i) for i in range(j))
    groups = []
    j = len(w)
    while j > 0:
        groups.append(order[cut[j]:j])
        j = cut[j]
    return groups[::-1]


def padded_batches(lengths: Sequence[int], limits: BatchLimits) -> list[list[int]]:
    """Right-padded batches for prompts of these lengths: split by width where that saves more pads than a
    pass costs (width_groups), then cut to at most max_batch_tokens padded positions each."""
    batches: list[list[int]] = []
    order = sorted(range(len(lengths)), key=lambda k: (lengths[k], k))
    # width_groups is quadratic in its rows, so a call of thousands of prompts (a zero-shot pass over a
    # large dataset) is split in width order first: 512 rows a stretch.
    stretches = [order[a:a + 512] for a in range(0, len(order), 512)]
    groups = [[part[r] for r in g] for part in stretches
              for g in width_groups([lengths[k] for k in part], limits.overhead_tokens)]
    for group in groups:
        current: list[int] = []
        for k in group:  # narrowest first
            if current and lengths[k] * (len(current) + 1) > limits.max_batch_tokens:
                batches.append(current)
                current = []
            current.append(k)
        if current:
            batches.append(current)
    return batches
