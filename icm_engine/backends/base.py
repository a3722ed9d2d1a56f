"""The backend protocol: log-probabilities of label words (and of continuations) for a batch of prompts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

import numpy as np


class BackendError(RuntimeError):
    """A model backend failed (server unreachable, no logprobs returned, model missing...)."""


@dataclass
class BackendStats:
    """Cost counters. `computed_tokens` counts tokens the model actually ran (after any cache hits)."""

    calls: int = 0
    prompts: int = 0
    prompt_tokens: int = 0
    computed_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def minus(self, other: BackendStats) -> BackendStats:
        return BackendStats(*(a - b for a, b in zip(asdict(self).values(), asdict(other).values(), strict=True)))

    def copy(self) -> BackendStats:
        return BackendStats(**asdict(self))


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

    def label_logprobs(self, prompts: Sequence[str], label_words: Sequence[str]) -> np.ndarray: ...

    def continuation_logprobs(self, prefixes: Sequence[str], continuations: Sequence[str]) -> np.ndarray: ...

    def describe(self) -> dict: ...
