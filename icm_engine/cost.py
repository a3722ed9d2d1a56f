"""What a run will cost before it starts: a work count from its size and settings, priced at the pace that
earlier runs measured on the same server, backend and model. No model call.

The work count is the characters a method's prompts hold, in the units where one scoring pass over a batch of
b examples with every other one in context costs b^2 x the mean characters of an example. ICM re-scores the
batch's labeled targets after each proposal, so a run costs about `iterations` passes: an upper bound, as
its score cache makes late iterations cheaper, which the measured pace already holds for runs of like size.
Estimates are therefore rough (docs/trust.md says how rough); the run page's time left is the truer figure.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

HOUR_S = 3600.0


def batch_sizes(n: int, batch_size: int) -> list[int]:
    """The batches' sizes (the engine keeps groups whole, so its batches differ by a few examples)."""
    if n <= 0:
        return []
    full, rest = divmod(n, batch_size)
    return [batch_size] * full + ([rest] if rest else [])


def work(method: str, n: int, chars_per_example: float, batch_size: int, iterations: int = 0,
         rounds: int = 0) -> float:
    """The work count of one run (see the module's docstring)."""
    passes = sum(b * b for b in batch_sizes(n, batch_size)) * chars_per_example
    if method == "icm":
        return max(iterations, 1) * passes
    if method in ("zero-shot", "likelihood"):
        return n * chars_per_example
    if method == "bootstrap":
        return (rounds + 1) * passes
    return passes


@dataclass(frozen=True)
class Measured:
    """A finished run: its work count and what it cost."""

    work: float
    seconds: float
    tokens: int
    model_calls: int


@dataclass(frozen=True)
class Estimate:
    seconds: float  # at the median pace of the runs measured
    seconds_low: float
    seconds_high: float
    tokens: int
    model_calls: int
    basis: int  # how many earlier runs priced it

    @property
    def over_an_hour(self) -> bool:
        return self.seconds > HOUR_S


def estimate(units: float, measured: Sequence[Measured]) -> Estimate | None:
    """Price `units` of work at the pace of `measured` runs (None when none has been measured)."""
    usable = [m for m in measured if m.work > 0 and m.seconds > 0]
    if not usable:
        return None
    per_second = [m.seconds / m.work for m in usable]
    return Estimate(
        seconds=statistics.median(per_second) * units,
        seconds_low=min(per_second) * units,
        seconds_high=max(per_second) * units,
        tokens=math.ceil(statistics.median(m.tokens / m.work for m in usable) * units),
        model_calls=math.ceil(statistics.median(m.model_calls / m.work for m in usable) * units),
        basis=len(usable),
    )


def total(estimates: Sequence[Estimate]) -> Estimate | None:
    """Runs one after the other (one worker): their sum."""
    if not estimates:
        return None
    return Estimate(
        seconds=sum(e.seconds for e in estimates), seconds_low=sum(e.seconds_low for e in estimates),
        seconds_high=sum(e.seconds_high for e in estimates), tokens=sum(e.tokens for e in estimates),
        model_calls=sum(e.model_calls for e in estimates), basis=min(e.basis for e in estimates),
    )
