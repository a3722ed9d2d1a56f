"""The backend protocol: log-probabilities of label words (and of continuations) for a batch of prompts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


class BackendError(RuntimeError):
    """A model backend failed (server unreachable, no logprobs returned, model missing...)."""


@dataclass
class BackendStats:
    """Cost counters. `computed_tokens` counts tokens the model actually ran (after any cache hits)."""

    model_calls: int = 0
    prompts: int = 0
    prompt_tokens: int = 0
    computed_tokens: int = 0

    # Plain attribute arithmetic: the search reads these on every event it emits, and dataclasses.asdict
    # (a recursive deep copy) made that about half of a fast search's own CPU time.
    def as_dict(self) -> dict[str, int]:
        return {"model_calls": self.model_calls, "prompts": self.prompts, "prompt_tokens": self.prompt_tokens,
                "computed_tokens": self.computed_tokens}

    def plus(self, other: BackendStats) -> BackendStats:
        return BackendStats(self.model_calls + other.model_calls, self.prompts + other.prompts,
                            self.prompt_tokens + other.prompt_tokens, self.computed_tokens + other.computed_tokens)

    def minus(self, other: BackendStats) -> BackendStats:
        return BackendStats(self.model_calls - other.model_calls, self.prompts - other.prompts,
                            self.prompt_tokens - other.prompt_tokens, self.computed_tokens - other.computed_tokens)

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> BackendStats:
        """From as_dict's output; checkpoints written before the counter was named model_calls say calls."""
        data = dict(data)
        if "calls" in data:
            data["model_calls"] = data.pop("calls")
        return cls(**data)

    def copy(self) -> BackendStats:
        return BackendStats(self.model_calls, self.prompts, self.prompt_tokens, self.computed_tokens)


@dataclass(frozen=True)
class Capabilities:
    """What a backend offers beyond scoring, declared by each backend (the engine never probes for methods).

    `prefix_sharing`: its scoring calls take `share_prefixes=` and reuse shared prompt prefixes unless told
    not to (the reference mode turns that off to pay the official code's cost). `tokenizer`: it has
    `encode(text) -> token ids`. `prefix_cache`: it keeps a prefix cache between calls that
    `reset_prefix_cache()` empties (a benchmark starts each mode cold)."""

    prefix_sharing: bool = False
    tokenizer: bool = False
    prefix_cache: bool = False


@runtime_checkable
class Backend(Protocol):
    """What the engine needs from a language model.

    `label_logprobs(prompts, label_words)` returns an array of shape (len(prompts), len(label_words)):
    the log-probability of each label word as the next token after each prompt.
    `continuation_logprobs(prefixes, continuations)` returns, for each pair, log P(continuation | prefix)
    summed over the continuation's tokens (the channel readout).
    One call scores a whole batch; implementations batch and cache as they can.
    """

    name: str
    model_name: str
    stats: BackendStats
    capabilities: Capabilities

    def label_logprobs(self, prompts: Sequence[str], label_words: Sequence[str]) -> np.ndarray: ...

    def continuation_logprobs(self, prefixes: Sequence[str], continuations: Sequence[str]) -> np.ndarray: ...

    def describe(self) -> dict: ...
