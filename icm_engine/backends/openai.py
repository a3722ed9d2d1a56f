"""The `openai` backend: any OpenAI-compatible `/v1/completions` server that returns logprobs
(`vllm serve`, llama.cpp's server, ...), as the official ICM code used a vLLM server.

Label words: where the server can tokenize (`/tokenize`) and return log-probabilities for given token
ids (`logprob_token_ids`, vLLM 0.32+), the exact next-token log-probability of each label token, as the
transformers backend computes. Elsewhere (llama.cpp, older vLLM), the top-k log-probabilities of the
first generated token, pooling every returned token that equals a label word once stripped and
lower-cased (the official code pools by substring); a word absent from the top k gets the floor
log(1e-5). A small model often ranks the label words below the top 20, so the exact path matters.
Continuations use `echo` with `max_tokens=0` and the prompt's own token log-probabilities.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .base import BackendError, BackendStats, Capabilities

LOG_FLOOR = math.log(1e-5)


class _NoExactLabels(Exception):
    """The server does not honour `logprob_token_ids`."""


class OpenAIBackend:
    name = "openai"
    capabilities = Capabilities()  # the server caches prefixes itself; nothing to switch from here

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        top_logprobs: int = 20,
        batch_size: int = 32,
        concurrency: int = 4,
        timeout_s: float = 120.0,
        retries: int = 4,
        exact_labels: bool = True,
    ):
        import httpx

        self.model_name = model
        self.base_url = (base_url or os.environ.get("ICM_OPENAI_BASE_URL") or "http://127.0.0.1:8000").rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        key = api_key or os.environ.get("ICM_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.top_logprobs = top_logprobs
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.retries = retries
        # None: not yet known whether the server offers exact label log-probabilities.
        self._exact: bool | None = None if exact_labels else False
        self._token_ids: dict[str, int | None] = {}
        self.stats = BackendStats()
        self._client = httpx.Client(timeout=timeout_s, headers={"Authorization": f"Bearer {key}"})

    def describe(self) -> dict[str, Any]:
        exact = {True: "exact", False: f"top-{self.top_logprobs}", None: "exact where the server offers it"}
        return {"backend": self.name, "model": self.model_name, "base_url": self.base_url,
                "label_logprobs": exact[self._exact]}

    def _label_ids(self, words: Sequence[str]) -> list[int] | None:
        """The label words' token ids from the server's tokenizer, or None where it has none to offer."""
        import httpx

        if self._exact is False:
            return None
        root = self.base_url.removesuffix("/v1")
        for word in words:
            if word in self._token_ids:
                continue
            try:
                response = self._client.post(f"{root}/tokenize", json={"model": self.model_name, "prompt": word,
                                                                       "add_special_tokens": False})
            except httpx.HTTPError:
                return None  # unreachable for now: ask again next call rather than settle on top-k
            try:
                tokens = response.json().get("tokens") if response.status_code == 200 else None
            except (ValueError, AttributeError):
                tokens = None
            ok = isinstance(tokens, list) and len(tokens) == 1 and isinstance(tokens[0], int)
            self._token_ids[word] = tokens[0] if ok else None
        ids = [self._token_ids[w] for w in words]
        if any(i is None for i in ids):
            self._exact = False
            return None
        return ids  # type: ignore[return-value]

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        import httpx

        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                response = self._client.post(f"{self.base_url}/completions", json=payload)
                if response.status_code < 500 and response.status_code != 429:
                    if response.status_code >= 400:
                        raise BackendError(f"server refused the request ({response.status_code}): "
                                           f"{response.text[:300]}")
                    return response.json()
                error = f"server error {response.status_code}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                time.sleep(delay)
                delay *= 2
        raise BackendError(f"{self.base_url} failed after {self.retries + 1} tries: {error}")

    def _chunks(self, n: int) -> list[range]:
        return [range(i, min(n, i + self.batch_size)) for i in range(0, n, self.batch_size)]

    def _run(self, n: int, one) -> None:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            for future in [pool.submit(one, chunk) for chunk in self._chunks(n)]:
                future.result()

    def _count(self, body: dict[str, Any], n: int) -> None:
        usage = body.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        self.stats.model_calls += 1
        self.stats.prompts += n
        self.stats.prompt_tokens += prompt_tokens
        self.stats.computed_tokens += prompt_tokens - cached

    def label_logprobs(self, prompts: Sequence[str], label_words: Sequence[str]) -> np.ndarray:
        ids = self._label_ids(label_words)
        if ids is not None:
            try:
                out = self._label_logprobs(prompts, label_words, ids)
                self._exact = True
                return out
            except _NoExactLabels:
                self._exact = False  # the server ignored or refused logprob_token_ids: top-k from now on
        return self._label_logprobs(prompts, label_words, None)

    def _label_logprobs(self, prompts: Sequence[str], label_words: Sequence[str], ids: list[int] | None) -> np.ndarray:
        out = np.full((len(prompts), len(label_words)), LOG_FLOOR)
        wanted = [w.strip().lower() for w in label_words]
        request: dict[str, Any] = {"model": self.model_name, "max_tokens": 1, "temperature": 0,
                                   "logprobs": self.top_logprobs}
        if ids is not None:
            request.update(logprobs=len(ids), logprob_token_ids=ids)

        def one(chunk: range) -> None:
            try:
                body = self._post({**request, "prompt": [prompts[i] for i in chunk]})
            except BackendError as exc:
                if ids is not None and "logprob_token_ids" in str(exc):
                    raise _NoExactLabels() from exc
                raise
            self._count(body, len(chunk))
            for choice in body.get("choices", []):
                i = chunk[choice.get("index", 0)]
                top = ((choice.get("logprobs") or {}).get("top_logprobs") or [None])[0]
                if not top:
                    raise BackendError("the server returned no logprobs; it must support `logprobs` on completions")
                if ids is not None:
                    if not all(w in top for w in label_words):
                        raise _NoExactLabels()
                    out[i] = [top[w] for w in label_words]
                    continue
                for k, w in enumerate(wanted):
                    mass = sum(math.exp(lp) for tok, lp in top.items() if tok.strip().lower() == w)
                    if mass > 0:
                        out[i, k] = max(math.log(mass), LOG_FLOOR)

        self._run(len(prompts), one)
        return out

    def continuation_logprobs(self, prefixes: Sequence[str], continuations: Sequence[str]) -> np.ndarray:
        out = np.zeros(len(prefixes))
        texts = [p + c for p, c in zip(prefixes, continuations, strict=True)]

        def one(chunk: range) -> None:
            body = self._post({"model": self.model_name, "prompt": [texts[i] for i in chunk], "max_tokens": 0,
                               "echo": True, "logprobs": 0, "temperature": 0})
            self._count(body, len(chunk))
            for choice in body.get("choices", []):
                i = chunk[choice.get("index", 0)]
                lp = choice.get("logprobs") or {}
                offsets, values = lp.get("text_offset"), lp.get("token_logprobs")
                if offsets is None or values is None:
                    raise BackendError("the server returned no prompt logprobs (echo with logprobs)")
                start = len(prefixes[i]) + _special_prefix_chars(lp.get("tokens") or [], texts[i])
                out[i] = sum(v for o, v in zip(offsets, values, strict=False) if o >= start and v is not None)

        self._run(len(prefixes), one)
        return out


def _special_prefix_chars(tokens: list[str], text: str) -> int:
    """vLLM counts text offsets over the echoed tokens' strings, a leading "<bos>" included; llama.cpp
    counts over the prompt. The difference is how far the prompt's own text is shifted."""
    joined = "".join(tokens)
    return len(joined) - len(text) if joined.endswith(text) else 0
