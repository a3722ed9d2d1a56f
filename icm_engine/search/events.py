"""What the search emits as it goes (SearchEvent, for progress bars and live pages) and what it returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..backends.base import BackendStats
from ..results import LabelingResult


@dataclass
class SearchEvent:
    """One step of the search, for progress bars and live pages."""

    kind: str  # init | iteration | batch_done | done
    batch: int
    batches: int
    iteration: int
    iterations: int
    temperature: float
    score: float
    labeled: int
    size: int
    accepted: bool | None
    accepted_total: int
    rejected_total: int
    conflicts: int
    stats: BackendStats  # what the search has cost so far
    elapsed_s: float
    changed: list[tuple[Any, bool | None]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ICMResult(LabelingResult):
    """The search's labels (a LabelingResult) and how it got them."""

    complete: bool
    iterations: int
    accepted: int
    rejected: int
    cache_hits: int = 0
    flipped_batches: list[int] = field(default_factory=list)
    # Labels the completion gave (examples the search left unlabeled) and searched labels it changed to
    # settle a conflict the search kept; each batch's orientation.
    completed: int = 0
    settled: int = 0
    orientation: list[dict] = field(default_factory=list)
    anchor: str = "none"  # the anchor the search used (its config's, or its semantics' own)
