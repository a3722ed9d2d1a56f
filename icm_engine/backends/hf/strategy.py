"""How the transformers backend spends its device: the CPU's many exact small passes over a prefix store, or an
accelerator's few wide ones.

- `store` (the CPU's): every prompt of a call resumes from the longest prefix the store holds and only the
  rest is computed, in many small passes (prefix_sharing.py). On a CPU a pass costs little beyond its
  tokens, so computing fewer tokens is what pays.
- `wide` (an accelerator's): a pass's fixed cost (kernel launches, the Python around them) is worth
  thousands of tokens, so a call runs in as few passes as memory allows: prompts sorted by length and cut
  into wide padded batches, PyTorch's scaled-dot-product attention, bfloat16 where the device has it. A
  call still resumes from the prefix store when the estimate says that computes less, passes counted at
  their fixed cost (`sharing_pays`).

`auto` picks by device: `store` on the CPU, `wide` elsewhere. Either runs anywhere, so the wide
strategy's exactness is tested on the CPU (tests/test_hf_strategy.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..base import BackendError
from .batching import BatchLimits, padded_batches
from .memory import cpu_has_fast_bf16

STRATEGIES = ("auto", "store", "wide")


@dataclass(frozen=True)
class Strategy:
    """What a strategy fixes: its batch limits, its attention kernel and when a call shares prefixes."""

    name: str
    limits: BatchLimits
    attention: str  # "grouped" (attention.py, for bfloat16 on the CPU) or "sdpa"
    # True: every call that may share does; False: only where sharing_pays says so.
    always_share: bool


def pick_strategy(choice: str, device_type: str, dtype: str, attention: str = "auto",
                  max_batch_tokens: int | None = None) -> Strategy:
    """The strategy for `choice` (STRATEGIES) on a device of this type ("cpu", "cuda", ...) in `dtype`
    ("bfloat16" or "float32", already resolved). `attention`: auto, sdpa or grouped (ICM_ATTENTION)."""
    if choice not in STRATEGIES:
        raise BackendError(f"strategy must be one of {', '.join(STRATEGIES)}, not {choice!r}")
    if attention not in ("auto", "sdpa", "grouped"):
        raise BackendError(f"ICM_ATTENTION must be auto, sdpa or grouped, not {attention!r}")
    name = choice if choice != "auto" else ("store" if device_type == "cpu" else "wide")
    if name == "store":
        # bfloat16 on the CPU: attention as two products over stacked query heads, faster than PyTorch's
        # fused kernel on the fast scorer's short extensions and on whole prompts alike (attention.py).
        grouped = attention == "grouped" or (attention == "auto" and dtype == "bfloat16" and device_type == "cpu")
        return Strategy(name, BatchLimits(max_batch_tokens=max_batch_tokens or 8192),
                        "grouped" if grouped else "sdpa", always_share=True)
    # A wide pass, long chunks (the fused kernels do not build the square score matrix) and many head rows
    # at once; a pass's fixed cost counted as 4,096 tokens when choosing between sharing and padding.
    limits = BatchLimits(max_batch_tokens=max_batch_tokens or 65536, chunk_tokens=4096, overhead_tokens=4096,
                         head_rows=256, vocab_block=32768)
    return Strategy(name, limits, "grouped" if attention == "grouped" else "sdpa", always_share=False)


def batch_tokens_within(free_bytes: int, hidden: int, intermediate: int, dtype_bytes: int, cap: int) -> int:
    """The most padded positions one pass may hold on a device with `free_bytes` free: a quarter of it (the
    rest stays for the prefix store and the vocabulary head's rows) over what a position's activations
    take in one layer at once (the residual stream and attention's projections, about 8 x hidden, and the
    MLP's three intermediates), doubled for the allocator's slack; at most `cap`, at least 1,024."""
    per_position = 2 * dtype_bytes * (8 * hidden + 3 * intermediate)
    return max(1024, min(cap, free_bytes // 4 // per_position))


def auto_dtype(device_type: str) -> str:
    """What `--dtype auto` means on this device: bfloat16 where it is fast, float32 elsewhere."""
    if device_type == "cpu":
        return "bfloat16" if cpu_has_fast_bf16() else "float32"
    if device_type == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "float32"


def padded_cost(lengths: Sequence[int], limits: BatchLimits) -> int:
    """Positions a call's padded batches compute, plus each pass's fixed cost."""
    batches = padded_batches(lengths, limits)
    return sum(len(b) * max(lengths[k] for k in b) for b in batches) + len(batches) * limits.overhead_tokens


def sharing_pays(lengths: Sequence[int], shared_tokens: int, shared_passes: int, limits: BatchLimits) -> bool:
    """Whether resuming from stored prefixes (`shared_tokens` computed in about `shared_passes` passes) costs
    less than padded batches over every token. The store's own work (matching, assembling the prefixes'
    caches, storing what was computed) is counted as one more pass."""
    return shared_tokens + (shared_passes + 1) * limits.overhead_tokens < padded_cost(lengths, limits)
