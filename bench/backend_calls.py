"""Record the transformers backend's shared-prefix scoring calls (the `fast` mode's) during an `icm`
command, and replay them alone.

Usage:
  python bench/backend_calls.py record CALLS.json.gz -- label INPUT --task truthfulqa --limit 64 ...
  python bench/backend_calls.py replay CALLS.json.gz [--limit N] [--dtype float32] [--scores OUT.json.gz] [--pads]
                                       [--model M] [--strategy store|wide] [--device D]
  python bench/backend_calls.py narrow FOLDER

A replay runs the same token sequences through a fresh backend in the same order, without the search, and
prints one JSON line a call (computed tokens, wall, resident and peak memory, store size) and a total:
the way to compare two versions of the backend on one run's exact workload (docs/engine.md). `--scores`
writes the log-probs of " True" and " False" after each prompt (the truthfulqa preset's label words),
so two versions' scores can be compared for exactness. `--pads` adds the model's forward passes, the
positions they computed, how many were pads, and their time to the total.

`narrow FOLDER` saves the packaged model's architecture (its 18 layers, their sliding windows, heads and
vocabulary) at a width of 64 with random weights: a forward pass then costs about what its dispatch costs,
the regime of a small model on a GPU, so replays on it (`--model FOLDER`) compare what the strategies
spend around the model: passes, positions, and the host's bookkeeping.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time


def record(path: str, argv: list[str]) -> int:
    from icm_engine import cli
    from icm_engine.backends.hf.prefix_sharing import PrefixSharer

    calls: list[dict] = []
    shared_hidden = PrefixSharer.hidden

    def recording(self, seqs, first_read):
        calls.append({"seqs": [list(s) for s in seqs], "first_read": list(first_read)})
        return shared_hidden(self, seqs, first_read)

    PrefixSharer.hidden = recording
    try:
        return cli.main(argv)
    finally:
        with gzip.open(path, "wt") as handle:
            json.dump(calls, handle)
        print(f"{len(calls)} calls recorded in {path}", file=sys.stderr)


def count_pads(backend) -> dict[str, float]:
    """Wrap the model's forward to count the positions it computes, the pad positions among them, and its
    time: where padded batches waste work."""
    body, pad = backend._body, backend._pad
    counts = {"forward_passes": 0, "forward_positions": 0, "pad_positions": 0, "forward_s": 0.0}

    def counted(**kwargs):
        ids = kwargs["input_ids"]
        counts["forward_passes"] += 1
        counts["forward_positions"] += ids.numel()
        counts["pad_positions"] += int((ids == pad).sum())
        start = time.perf_counter()
        out = body(**kwargs)
        counts["forward_s"] += time.perf_counter() - start
        return out

    backend._body = backend.sharer.body = counted
    return counts


def narrow(folder: str) -> int:
    import shutil
    from pathlib import Path

    import torch
    from transformers import AutoConfig, Gemma3ForCausalLM

    from icm_engine.backends.hf import resolve_model_dir

    source = resolve_model_dir("gemma3-270m")
    config = AutoConfig.from_pretrained(source)
    config.hidden_size, config.intermediate_size, config.head_dim = 64, 128, 16
    Path(folder).mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    Gemma3ForCausalLM(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, Path(folder) / name)
    print(f"narrow model: {folder} ({config.num_hidden_layers} layers, width {config.hidden_size})", file=sys.stderr)
    return 0


def count_assembly_ops() -> dict[str, int]:
    """Count the tensor operations (by ATen name) that assembling padded caches from stored prefixes runs:
    on a GPU each one that writes memory (copy_, cat, zero_) is a kernel launch."""
    import collections

    from torch.utils._python_dispatch import TorchDispatchMode

    from icm_engine.backends.hf.kv_cache import CacheLayout

    counts: collections.Counter = collections.Counter()

    class Counting(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            counts[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    padded = CacheLayout.padded

    def counted(self, paths, starts):
        with Counting():
            return padded(self, paths, starts)

    CacheLayout.padded = counted
    return counts


def replay(path: str, limit: int | None, dtype: str, scores_path: str | None, pads: bool = False,
           model: str = "gemma3-270m", strategy: str | None = None, device: str | None = None,
           assembly_ops: bool = False) -> int:
    from icm_engine.backends.hf import TransformersBackend
    from icm_engine.bench import PeakMemory
    from icm_engine.util import rss_bytes

    with gzip.open(path, "rt") as handle:
        calls = json.load(handle)[:limit]
    backend = TransformersBackend(model=model, dtype=dtype, strategy=strategy, device=device)
    counts = count_pads(backend) if pads else {}
    ops = count_assembly_ops() if assembly_ops else None
    ids = [backend.label_token_id(" True"), backend.label_token_id(" False")]
    scores = []
    start = time.perf_counter()
    with PeakMemory(0.02) as peak:
        for i, call in enumerate(calls):
            before, t = backend.stats.computed_tokens, time.perf_counter()
            scores.append(backend.score_token_seqs(call["seqs"], ids).tolist())
            computed = backend.stats.computed_tokens - before
            print(json.dumps({"call": i, "prompts": len(call["seqs"]), "computed": computed,
                              "wall_s": round(time.perf_counter() - t, 2), "rss_mb": rss_bytes() >> 20,
                              "peak_mb": peak.peak >> 20, "store_mb": backend._store.bytes >> 20}), flush=True)
    print(json.dumps({**backend.describe(), "strategy": backend.strategy.name,
                      "calls": len(calls), "prompt_tokens": backend.stats.prompt_tokens,
                      "computed_tokens": backend.stats.computed_tokens,
                      "wall_s": round(time.perf_counter() - start, 1), "peak_rss_mb": peak.peak >> 20,
                      **{k: round(v, 1) for k, v in counts.items()},
                      **({"assembly_ops": sum(ops.values()), "assembly_ops_by_name": dict(ops.most_common())}
                         if ops is not None else {})}))
    if scores_path:
        with gzip.open(scores_path, "wt") as handle:
            json.dump(scores, handle)
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "narrow":
        return narrow(sys.argv[2])
    if len(sys.argv) > 2 and sys.argv[1] == "record":
        if "--" not in sys.argv:
            sys.exit("usage: backend_calls.py record CALLS.json.gz -- <icm arguments>")
        return record(sys.argv[2], sys.argv[sys.argv.index("--") + 1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["replay"])
    parser.add_argument("calls")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--scores")
    parser.add_argument("--pads", action="store_true",
                        help="also count the model's forward passes, positions, pad positions and time")
    parser.add_argument("--model", default="gemma3-270m", help="packaged name, folder or .gguf (a narrow folder)")
    parser.add_argument("--strategy", choices=["auto", "store", "wide"])
    parser.add_argument("--device")
    parser.add_argument("--assembly-ops", action="store_true",
                        help="also count the tensor operations that assemble padded caches from stored prefixes")
    args = parser.parse_args()
    return replay(args.calls, args.limit, args.dtype, args.scores, args.pads, args.model, args.strategy,
                  args.device, args.assembly_ops)


if __name__ == "__main__":
    sys.exit(main())
