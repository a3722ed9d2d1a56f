"""A run's progress: one typed record, written by the recorder, stored as JSON in `Run.progress`, shown by
the API (its serializer is made from this class), the websocket and the run page.

Every field is present in what is stored; None means not known (yet), or not applicable to the method.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class RunProgress:
    # What the execution is doing: loading | init | iteration | batch_done | done | baseline | writing, then ended
    # (how it ended is the run's status); a sharded run's: sharded while its shards run, then ended.
    phase: str | None = None
    step: int | None = None
    total_steps: int | None = None
    # ICM's position: the batch, its iteration, the temperature and U there.
    batch: int | None = None
    batches: int | None = None
    iteration: int | None = None
    iterations: int | None = None
    temperature: float | None = None
    score: float | None = field(default=None, metadata={"help": "U = alpha * mutual predictability - conflicts"})
    labeled: int | None = None
    size: int | None = None
    accepted: int | None = None
    rejected: int | None = None
    conflicts: int | None = None
    gold: dict[str, Any] | None = field(
        default=None, metadata={"help": "the labels so far against gold, with what keeps the accuracy honest"})
    gold_agreement: float | None = field(default=None, metadata={"help": "the accuracy alone"})
    gold_n: int | None = None
    gold_version: dict[str, Any] | None = field(
        default=None, metadata={"help": "which gold `gold` is against (id, name, version): once a run has its label "
                                        "set, the dataset's latest gold, as the label set's page and the tables"})
    final_u: float | None = field(
        default=None, metadata={"help": "ICM: the mean over batches of each batch's final U (no gold involved)"})
    batch_u: dict[str, float] = field(
        default_factory=dict, metadata={"help": "ICM: each finished batch's final U, by batch index"})
    flipped_batches: list[int] = field(
        default_factory=list, metadata={"help": "ICM: batches whose labels the orientation turned over"})
    searched: int | None = field(default=None, metadata={"help": "ICM: labels the search chose"})
    anchor: str | None = field(
        default=None, metadata={"help": "ICM: the likelihood anchor the search used (likelihood: the seeds follow it "
                                        "and it is a term of U; agreeing; none)"})
    completed: int | None = field(
        default=None, metadata={"help": "ICM: labels the completion after the search gave (the examples the search "
                                        "left unlabeled: the model's prediction with the searched labels as context, "
                                        "within the consistency rule)"})
    settled: int | None = field(
        default=None, metadata={"help": "ICM: searched labels the completion changed to settle a conflict"})
    orientation: list[dict[str, Any]] = field(
        default_factory=list, metadata={"help": "ICM: for each batch, what named its two classes: the signal, each "
                                                "signal's agreement (r, p) with the labels as returned, whether the "
                                                "search's labels were turned over and whether the naming was decided"})
    warnings: list[str] = field(
        default_factory=list, metadata={"help": "the run's own warnings, found without gold (classes_not_named)"})
    model_calls: int | None = None
    prompts: int | None = None
    prompt_tokens: int | None = None
    computed_tokens: int | None = None
    elapsed_s: float | None = None
    eta_s: float | None = field(default=None, metadata={"help": "seconds left (null: not known yet)"})
    recent_changes: list[dict[str, Any]] = field(default_factory=list)
    updated: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RunProgress:
        """The record stored as `data` (keys it lacks are not known; keys this class lacks are dropped)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known and v is not None})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def known(self) -> dict[str, Any]:
        """The fields this record knows (not None, not empty): what a final record adds to the stored one."""
        return {k: v for k, v in asdict(self).items() if v is not None and v != [] and v != {}}

    def update(self, **values: Any) -> RunProgress:
        for name, value in values.items():
            if not hasattr(self, name):
                raise AttributeError(f"RunProgress has no field {name!r}")
            setattr(self, name, value)
        return self


ENDED = "ended"  # the phase of an execution that has ended
SHARDED = "sharded"  # a sharded run's while its shards run

HELP = {f.name: f.metadata["help"] for f in fields(RunProgress) if "help" in f.metadata}


def stored(data: dict[str, Any] | None, **values: Any) -> dict[str, Any]:
    """`data` as a whole progress record with `values` set, ready to store."""
    return RunProgress.from_dict(data).update(**values).as_dict()
