"""Where a search stands. The fields of `SearchState` are what a checkpoint saves beside the settings, the
random stream, the score cache and the counters; `checkpoint()` and `restore()` name no field by hand."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..examples import Example
from ..presets import Task

CHECKPOINT_VERSION = 1


@dataclass
class SearchState:
    labels: list[bool | None]
    scores: list[float | None]
    # The likelihood anchor of each example (computed once per batch, kept for the final orientation).
    anchor: list[float | None]
    batch_index: int = 0
    iteration: int = 0  # in the current batch
    total_iterations: int = 0
    accepted: int = 0
    rejected: int = 0
    flips_in_batch: int = 0
    initialized: bool = False  # whether the current batch has its seed labels
    U: float = 0.0
    # Batches whose labels the anchor's orientation flipped.
    flipped_batches: list[int] = field(default_factory=list)
    # Examples in the order they were first labeled (demo_order "labeled" orders prompts by it).
    labeled_order: list[int] = field(default_factory=list)
    # The current batch's unit of mutual predictability (config.normalize; 1 in nats).
    scale: float = 1.0
    # What multiplies the anchor's term in U for the current batch (besides anchor_weight): anchor "likelihood"
    # 1; "agreeing": 0 until a third of the way through the batch, then its agreement with the labels found.
    anchor_factor: float = 0.0
    # Examples labeled by the completion after the search, and searched labels it changed to settle a conflict.
    completed: list[int] = field(default_factory=list)
    settled: list[int] = field(default_factory=list)
    # Each finished batch's orientation (orientation.Orientation.as_dict(), with its batch index).
    orientation: list[dict] = field(default_factory=list)

    @classmethod
    def start(cls, n: int, batch_index: int) -> SearchState:
        return cls(labels=[None] * n, scores=[None] * n, anchor=[None] * n, batch_index=batch_index)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any], n: int) -> SearchState:
        """The state saved in `ck`; fields a checkpoint from before them lacks start empty."""
        empty = cls.start(n, ck["batch_index"])
        values = {f.name: ck[f.name] if ck.get(f.name) is not None else getattr(empty, f.name)
                  for f in fields(cls)}
        return cls(**{k: list(v) if isinstance(v, list) else v for k, v in values.items()})

    def next_batch(self) -> None:
        self.batch_index += 1
        self.iteration = 0
        self.flips_in_batch = 0
        self.initialized = False
        self.U = 0.0
        self.scale = 1.0
        self.anchor_factor = 0.0


def fingerprint(examples: Sequence[Example], task: Task) -> str:
    blob = json.dumps([[str(ex.id), ex.group, ex.key] for ex in examples] + [task.describe()], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """The search state saved at `path`, or None where there is none yet."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a search checkpoint ({exc})") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a search checkpoint")
    return state
