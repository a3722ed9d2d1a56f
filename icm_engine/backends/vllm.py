"""The `vllm` backend: an in-process `vllm.LLM` with prefix caching (optional extra `icm-studio[vllm]`).

Label words: the next token's log-probabilities restricted to the label tokens (vLLM's
`allowed_token_ids` would renormalise, so we ask for top-k logprobs and read the label ids).
Continuations: `prompt_logprobs` over the joined prefix + continuation tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import BackendError, BackendStats
from .hf import PACKAGED_MODELS, resolve_model_dir

LOG_FLOOR = math.log(1e-5)


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str, top_logprobs: int = 20, **llm_options: Any):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise BackendError("the vllm backend needs the optional extra: pip install 'icm-studio[vllm]'") from exc
        self.model_name = model
        path = str(resolve_model_dir(model)) if model in PACKAGED_MODELS or "/" in model else model
        llm_options.setdefault("enable_prefix_caching", True)
        self.llm = LLM(model=path, **llm_options)
        self.tokenizer = self.llm.get_tokenizer()
        self._params = SamplingParams
        self.top_logprobs = top_logprobs
        self.stats = BackendStats()

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_name}

    def _label_id(self, word: str) -> int:
        ids = self.tokenizer.encode(word, add_special_tokens=False)
        if len(ids) != 1:
            raise BackendError(f"label word {word!r} is {len(ids)} tokens for this model; it must be one")
        return ids[0]

    def label_logprobs(self, prompts: Sequence[str], label_words: Sequence[str]) -> np.ndarray:
        ids = [self._label_id(w) for w in label_words]
        params = self._params(max_tokens=1, temperature=0.0, logprobs=self.top_logprobs)
        outputs = self.llm.generate(list(prompts), params, use_tqdm=False)
        out = np.full((len(prompts), len(ids)), LOG_FLOOR)
        for i, o in enumerate(outputs):
            top = o.outputs[0].logprobs[0]
            for k, tid in enumerate(ids):
                if tid in top:
                    out[i, k] = top[tid].logprob
            self._count(o)
        self.stats.calls += 1
        return out

    def continuation_logprobs(self, prefixes: Sequence[str], continuations: Sequence[str]) -> np.ndarray:
        seqs, starts = [], []
        for p, c in zip(prefixes, continuations, strict=True):
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
        self.stats.calls += 1
        return out

    def _count(self, output: Any) -> None:
        n = len(output.prompt_token_ids)
        cached = getattr(output, "num_cached_tokens", 0) or 0
        self.stats.prompts += 1
        self.stats.prompt_tokens += n
        self.stats.computed_tokens += n - cached
