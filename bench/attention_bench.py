"""Microbenchmarks behind the attention, batching and vocabulary-head choices (bench/engine_log.md).

Usage:
  python bench/attention_bench.py kernels
      PyTorch's fused attention (what transformers' SDPA path runs: key/value heads repeated per query
      head under a mask) against backends/attention.py on fast-scorer and whole-prompt shapes, bfloat16.
  ICM_ATTENTION=sdpa|auto python bench/attention_bench.py prompts
      The default model's tokens/s through label_logprobs without prefix sharing: 8 prompts of about
      1,930 tokens (48 TruthfulQA demonstrations and a claim) and the bench's 64 short claims.
  python bench/attention_bench.py head
      The vocabulary head's label log-probs for calls of 1 to 97 rows, 16 rows a pass against the
      backend's head_rows (64), in the backend's default dtype.

Each figure is the best of several runs; run one process at a time on otherwise idle cores.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _best_ms(fn, repeats: int = 20, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def kernels() -> None:
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import repeat_kv

    from icm_engine.backends.attention import grouped_attention
    from icm_engine.backends.hf import keep_freed_memory_within_calls

    keep_freed_memory_within_calls()  # as the backend runs: large tensors are reused, not re-faulted

    class Layer:
        num_key_value_groups = 4
        is_causal = True

    torch.manual_seed(0)
    for rows, queries, cached in [(8, 16, 3000), (4, 64, 3000), (16, 16, 530), (8, 100, 1100), (1, 1024, 2048)]:
        query = torch.randn(rows, queries, 4, 256, dtype=torch.bfloat16).transpose(1, 2)
        key = torch.randn(rows, 1, cached, 256, dtype=torch.bfloat16)
        value = torch.randn(rows, 1, cached, 256, dtype=torch.bfloat16)
        causal = torch.arange(cached)[None, :] <= torch.arange(queries)[:, None] + cached - queries
        mask = causal[None, None].repeat(rows, 1, 1, 1)
        mask[:, :, :, :37] = False  # left pads
        args = (query, key, value, mask)
        with torch.inference_mode():
            fused = _best_ms(lambda q=query, k=key, v=value, m=mask: F.scaled_dot_product_attention(
                q, repeat_kv(k, 4), repeat_kv(v, 4), attn_mask=m, scale=0.0625))
            grouped = _best_ms(lambda a=args: grouped_attention(Layer(), *a, scaling=0.0625))
        print(f"{rows} rows x {queries} queries over {cached} positions: fused {fused:.2f} ms, "
              f"grouped {grouped:.2f} ms", flush=True)


def prompts() -> None:
    from icm_engine.backends.hf import TransformersBackend
    from icm_engine.presets import get_task, load_dataset

    task = get_task("truthfulqa")
    data = load_dataset(ROOT / "data" / "paper" / "truthfulqa" / "train_truthfulqa.json", task, limit=64)
    backend = TransformersBackend()
    context = "".join(task.render(ex) + " True\n\n" for ex in data.examples[:48])
    sets = {
        "8 long prompts": [f"{k}. " + context + task.render(ex) for k, ex in enumerate(data.examples[48:56])],
        "64 short claims": [f"{k}. " + task.render(ex) for k, ex in enumerate(data.examples)],
    }
    print(backend.describe(), flush=True)
    for name, texts in sets.items():
        tokens = sum(len(backend.encode(t)) for t in texts)
        ms = _best_ms(lambda texts=texts: backend.label_logprobs(texts, list(task.label_words), share_prefixes=False),
                      repeats=3, warmup=1)
        print(f"{name} ({tokens} tokens): {tokens / ms * 1e3:.0f} tokens/s", flush=True)


def head() -> None:
    import torch

    from icm_engine.backends.hf import TransformersBackend

    backend = TransformersBackend()
    ids = [backend.label_token_id(w) for w in (" True", " False")]
    print(backend.describe(), flush=True)
    torch.manual_seed(0)
    with torch.inference_mode():
        for rows in (1, 16, 44, 64, 97):
            h = torch.randn(rows, backend.model.config.hidden_size, dtype=backend.model.dtype)
            times = {}
            limits = backend.limits
            for per_pass in (16, limits.head_rows):
                limits.head_rows, default = per_pass, limits.head_rows
                times[per_pass] = _best_ms(lambda h=h: backend._label_logprobs(h, ids), repeats=3, warmup=1) / rows
                limits.head_rows = default
            print(f"{rows} rows: " + ", ".join(f"{ms:.2f} ms a row in passes of {n}" for n, ms in times.items()),
                  flush=True)


if __name__ == "__main__":
    commands = {"kernels": kernels, "prompts": prompts, "head": head}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]]()
