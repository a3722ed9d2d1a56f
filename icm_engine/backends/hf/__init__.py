"""The `transformers` backend, cut along its seams: where model files come from (model_files), glibc memory
(memory), padded batches (batching), KV caches (kv_cache), prefix sharing (prefix_sharing) and the backend.

Importing the package does not import torch; `TransformersBackend` is loaded on first use.
"""

from __future__ import annotations

import os
from typing import Any

# Set before torch starts its thread pool: with a busy neighbour process on a few cores, spinning OpenMP
# threads made each forward pass many times slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from .batching import BatchLimits, padded_batches, width_groups
from .memory import keep_freed_memory_within_calls, release_freed_memory
from .model_files import (
    PACKAGED_MODELS,
    TOKENIZER_PROBE,
    check_converted_tokenizer,
    model_kind,
    resolve_model_dir,
    unknown_model,
)


def __getattr__(name: str) -> Any:
    if name == "TransformersBackend":
        from .backend import TransformersBackend

        return TransformersBackend
    raise AttributeError(name)


__all__ = ["PACKAGED_MODELS", "TOKENIZER_PROBE", "BatchLimits", "TransformersBackend", "check_converted_tokenizer",
           "keep_freed_memory_within_calls", "model_kind", "padded_batches", "release_freed_memory",
           "resolve_model_dir", "unknown_model", "width_groups"]
