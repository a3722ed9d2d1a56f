"""What every labeler returns, ICM's search and the baselines alike."""

from __future__ import annotations

from dataclasses import dataclass

from .backends.base import BackendStats


@dataclass
class LabelingResult:
    """A label and its score per example, in the examples' order (None: not labeled), what the labeling cost
    the backend and how long it took."""

    labels: list[bool | None]
    scores: list[float | None]
    stats: BackendStats
    wall_s: float

    @property
    def labeled(self) -> int:
        return sum(y is not None for y in self.labels)
