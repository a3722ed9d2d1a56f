"""The `transformers` backend: next-token label log-probs and continuation log-probs from a local causal LM
(torch on the CPU by default)."""

from __future__ import annotations

import contextlib
import gc
import inspect
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...util import rss_bytes
from ..attention import register as register_grouped_attention
from ..base import BackendError, BackendStats, Capabilities
from ..prefix_store import PrefixStore
from .batching import padded_batches
from .head import chosen_logprobs
from .kv_cache import CacheLayout
from .memory import keep_freed_memory_within_calls, release_freed_memory
from .model_files import check_converted_tokenizer, converted_here, resolve_model_dir
from .prefix_sharing import PrefixSharer
from .strategy import auto_dtype, batch_tokens_within, pick_strategy, sharing_pays

log = logging.getLogger(__name__)


class TransformersBackend:
    """Next-token label log-probs and continuation log-probs from a local causal LM.

    Two ways to run a call's prompts, with the same results up to float rounding:

    - `share_prefixes=True` (the default; ICM's `fast` mode): every prompt resumes from the longest
      prefix in the prefix store (prefix_store.py: KV states of earlier prompts, this call's and
      earlier calls', bounded by ICM_PREFIX_CACHE_GB) and only the rest is computed, many prompts in
      one batch. ICM's leave-one-out prompts share long prefixes within an evaluation and across
      evaluations (demonstrations in a fixed order; under `--context other-groups`, whole contexts).
    - `share_prefixes=False` (the `reference` mode's cost): prompts sorted by length run in
      right-padded micro-batches, every token computed.

    Only the positions that are read go through the vocabulary projection. How a call is cut into passes
    is the device's strategy (strategy.py): on the CPU many small exact passes over the prefix store, on
    an accelerator few wide ones, sharing prefixes only where that computes less.
    """

    name = "transformers"
    capabilities = Capabilities(prefix_sharing=True, tokenizer=True, prefix_cache=True)

    def __init__(
        self,
        model: str = "gemma3-270m",
        *,
        dtype: str = "auto",
        threads: int | None = None,
        max_batch_tokens: int | None = None,
        share_prefixes: bool = True,
        share_continuations: bool = True,
        prefix_cache_gb: float | None = None,
        device: str | None = None,
        strategy: str | None = None,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        # Our own progress bar owns stderr; transformers' weight-loading bar would interleave with it.
        hf_logging.disable_progress_bar()
        self.device = device or os.environ.get("ICM_DEVICE", "cpu")
        try:
            place = torch.device(self.device)
        except RuntimeError as exc:
            raise BackendError(f"device {self.device!r}: {exc}") from None
        if place.type == "cuda" and (index := place.index or 0) >= torch.cuda.device_count():
            raise BackendError(f"device {self.device!r}: this torch sees {torch.cuda.device_count()} CUDA "
                               f"device(s), so no device {index}")
        if dtype == "auto":
            dtype = auto_dtype(place.type)
        if dtype not in ("bfloat16", "float32"):
            raise BackendError(f"dtype must be auto, bfloat16 or float32, not {dtype!r}")
        self.model_name = model
        self.dtype = dtype
        # ICM_ATTENTION=sdpa keeps transformers' default kernel where the strategy would pick another.
        self.strategy = pick_strategy(strategy or os.environ.get("ICM_STRATEGY", "auto"), place.type, dtype,
                                      os.environ.get("ICM_ATTENTION", "auto"), max_batch_tokens)
        self.limits = self.strategy.limits
        self.attention = self.strategy.attention
        self.stats = BackendStats()
        torch.set_num_threads(threads or int(os.environ.get("ICM_THREADS", "0")) or (os.cpu_count() or 1))
        folder = resolve_model_dir(model)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        if converted_here(folder):
            # Converted from a GGUF file here, perhaps by an earlier transformers that got it wrong.
            check_converted_tokenizer(self.tokenizer, Path(model), cached=folder)
        implementation = register_grouped_attention() if self.attention == "grouped" else "sdpa"
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype),
                                                          attn_implementation=implementation).to(place)
        self.model.eval()
        if place.type == "cuda" and max_batch_tokens is None:
            # As wide as the device's free memory allows, up to the strategy's width.
            free, _ = torch.cuda.mem_get_info(place)
            config = self.model.config
            self.limits.max_batch_tokens = batch_tokens_within(
                free, config.hidden_size, config.intermediate_size, 2 if dtype == "bfloat16" else 4,
                self.limits.max_batch_tokens)
        keep_freed_memory_within_calls()
        # On an accelerator, every tensor the backend makes is made there. On the CPU no device mode is
        # entered: a torch function mode adds Python work to every operation of the model.
        self._place = (lambda: torch.device(place)) if place.type != "cpu" else contextlib.nullcontext
        self._torch = torch
        self._body = getattr(self.model, self.model.base_model_prefix)
        self._head = self.model.get_output_embeddings()
        self._softcap = getattr(self.model.config, "final_logit_softcapping", None)
        self._pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self._label_ids: dict[str, int] = {}
        self.share_prefixes = share_prefixes
        # Continuation readouts (split, channel) resume their contexts from the store and run every
        # continuation over its context in a few wide passes (PrefixSharer.resume); False runs them in padded
        # batches, every token computed (docs/engine.md compares the two).
        self.share_continuations = share_continuations
        # transformers 5.x renamed the forward's `past_key_values` argument to `cache`.
        params = inspect.signature(self._body.forward).parameters
        cache_arg = "cache" if "cache" in params else "past_key_values"
        # KV states of earlier prompts' prefixes, kept between calls (ICM_PREFIX_CACHE_GB; smaller in
        # bfloat16, where a token's KV takes half the bytes). A smaller store costs recomputation
        # (bench/engine_log.md has the measurements behind both defaults).
        default = "1.75" if dtype == "float32" else "1.0"
        gb = float(os.environ.get("ICM_PREFIX_CACHE_GB", default)) if prefix_cache_gb is None else prefix_cache_gb
        self._store_capacity = int(gb * 2**30)
        self._store = PrefixStore(self._store_capacity)
        # The process's resident memory the store may fill up to (ICM_MEMORY_GB; unset: the store's budget
        # alone). Opt-in: in float32 it shrinks the store, and a smaller store recomputes (docs/engine.md).
        setting = os.environ.get("ICM_MEMORY_GB")
        self._memory_target = int(float(setting) * 2**30) if setting else None
        self._warned_memory = False
        self.sharer = PrefixSharer(self._body, cache_arg, CacheLayout(self.model.config), self._store,
                                   self.limits, self._pad)

    def describe(self) -> dict[str, Any]:
        info = {"backend": self.name, "model": self.model_name, "dtype": self.dtype}
        if self.device != "cpu":
            info["device"] = self.device
        if not self.share_continuations:
            info["share_continuations"] = False
        if self.attention != "sdpa":
            info["attention"] = self.attention
        if self.strategy.name != "store":
            info["strategy"] = self.strategy.name
        return info

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
    def _label_logprobs(self, h, label_ids: Sequence[int]):
        """Log-probs of label_ids from hidden states [rows, dim], through the head a block of rows and a block
        of the vocabulary at a time (head.py)."""
        torch = self._torch
        targets = torch.tensor([list(label_ids)] * len(h), dtype=torch.long, device=h.device)
        return self._chosen(h, targets)

    def _chosen(self, h, targets):
        return chosen_logprobs(h, self._head.weight, targets, bias=self._head.bias, softcap=self._softcap,
                               row_block=self.limits.head_rows, vocab_block=self.limits.vocab_block)

    def _shares(self, seqs: Sequence[list[int]], first_read: Sequence[int], share: bool) -> bool:
        """Whether this call resumes from stored prefixes: when asked to and, under a strategy that weighs
        it, when that computes less than padded batches (each pass counted at its fixed cost)."""
        if not share or self.strategy.always_share:
            return share
        tokens, passes = self.sharer.estimate(seqs, first_read)
        return sharing_pays([len(s) for s in seqs], tokens, passes, self.limits)

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

    def reset_prefix_cache(self) -> None:
        """Forget every stored prefix and give the freed pages back, so the next run starts from the
        memory a fresh process would have (the bench measures each mode's peak from there)."""
        self._store.clear()
        gc.collect()
        release_freed_memory()

    def _fit_store(self) -> None:
        """Before a call: freed heap pages go back to the OS and, under a memory target, the store gets
        what it leaves beside everything else resident (the weights, the runtime, what the heap still
        holds), up to its own budget."""
        release_freed_memory()
        if self._memory_target is None:
            return
        rss = rss_bytes()
        if not rss:  # no /proc here: nothing to measure against
            return
        others = rss - self._store.bytes
        room = self._memory_target - others
        if room < 2**26 and not self._warned_memory:
            log.warning("the prefix store has almost no room under ICM_MEMORY_GB=%.1f (%.1f GB resident besides "
                        "it): prompts are recomputed; raise ICM_MEMORY_GB", self._memory_target / 2**30,
                        others / 2**30)
            self._warned_memory = True
        self._store.resize(min(self._store_capacity, max(2**26, room)))

    def _count(self, seqs: Sequence[list[int]], computed: int) -> None:
        self.stats.model_calls += 1
        self.stats.prompts += len(seqs)
        self.stats.prompt_tokens += sum(len(s) for s in seqs)
        self.stats.computed_tokens += computed

    def score_token_seqs(
        self, seqs: Sequence[list[int]], label_ids: Sequence[int], share_prefixes: bool | None = None
    ) -> np.ndarray:
        """Log-probs of `label_ids` after each token sequence; the exact primitive under label_logprobs."""
        torch = self._torch
        out = np.zeros((len(seqs), len(label_ids)), dtype=np.float64)
        share = self.share_prefixes if share_prefixes is None else share_prefixes
        if self._shares(seqs, [len(s) - 1 for s in seqs], share):
            with torch.inference_mode(), self._place():
                self._fit_store()
                hidden, computed = self.sharer.hidden(seqs, [len(s) - 1 for s in seqs])
                out[:] = self._label_logprobs(torch.stack([x[-1] for x in hidden]), label_ids).double().cpu().numpy()
            self._count(seqs, computed)
            return out
        with torch.inference_mode(), self._place():
            for batch in padded_batches([len(s) for s in seqs], self.limits):
                sub = [seqs[k] for k in batch]
                hidden = self._hidden(sub)
                last = torch.tensor([len(s) - 1 for s in sub])
                h = hidden[torch.arange(len(sub)), last]
                out[batch] = self._label_logprobs(h, label_ids).double().cpu().numpy()
        release_freed_memory()
        self._count(seqs, sum(len(s) for s in seqs))
        return out

    def label_logprobs(
        self, prompts: Sequence[str], label_words: Sequence[str], share_prefixes: bool | None = None
    ) -> np.ndarray:
        if not prompts:
            return np.zeros((0, len(label_words)))
        ids = [self.label_token_id(w) for w in label_words]
        return self.score_token_seqs([self.encode(p) for p in prompts], ids, share_prefixes)

    def continuation_logprobs(
        self, prefixes: Sequence[str], continuations: Sequence[str], share_prefixes: bool | None = None
    ) -> np.ndarray:
        torch = self._torch
        pairs = [self.encode_pair(p, c) for p, c in zip(prefixes, continuations, strict=True)]
        out = np.zeros(len(pairs), dtype=np.float64)
        if not pairs:
            return out
        share = (self.share_prefixes and self.share_continuations) if share_prefixes is None else share_prefixes
        if self._shares([s for s, _ in pairs], [start - 1 for _, start in pairs], share):
            seqs = [s for s, _ in pairs]
            with torch.inference_mode(), self._place():
                self._fit_store()
                # The contexts first (what they share computed once), then every continuation over its stored
                # context, all rows together: continuations of one context share their first words too (the
                # claims of one category), but sharing those took a pass each.
                contexts = {tuple(seq[:start - 1]) for seq, start in pairs}
                computed = self.sharer.store_prefixes([list(c) for c in sorted(contexts)])
                hidden, more = self.sharer.resume(seqs, [start - 1 for _, start in pairs])
                computed += more
                # h holds positions start-1 .. len-1; position t predicts token t+1.
                out[:] = self._sum_logprobs([h[:-1] for h in hidden], [seq[start:] for seq, start in pairs])
            self._count(seqs, computed)
            return out
        with torch.inference_mode(), self._place():
            for batch in padded_batches([len(s) for s, _ in pairs], self.limits):
                sub = [pairs[k] for k in batch]
                hidden = self._hidden([s for s, _ in sub])
                # Position t predicts token t+1: read positions start-1 .. len-2.
                reads = [hidden[r, start - 1: len(seq) - 1] for r, (seq, start) in enumerate(sub)]
                out[batch] = self._sum_logprobs(reads, [seq[start:] for seq, start in sub])
        release_freed_memory()
        self._count([s for s, _ in pairs], sum(len(s) for s, _ in pairs))
        return out

    def _sum_logprobs(self, reads: Sequence[Any], targets: Sequence[list[int]]) -> np.ndarray:
        """For each k, the sum of log P(targets[k][i]) over the rows of reads[k] (hidden states [len, dim]).

        The rows of all sequences go through the vocabulary head together: a continuation reads only a dozen
        or so tokens, and the head costs much more a row in small batches."""
        torch = self._torch
        h = torch.cat(list(reads))
        target = torch.tensor([t for ts in targets for t in ts], dtype=torch.long, device=h.device)
        owner = torch.tensor([k for k, ts in enumerate(targets) for _ in ts], dtype=torch.long, device=h.device)
        picked = self._chosen(h, target[:, None])[:, 0].double()
        sums = torch.zeros(len(targets), dtype=torch.float64, device=h.device).index_add_(0, owner, picked)
        return sums.cpu().numpy()
