"""What the API returns, as typed records. Each keeps the whole answer in `raw`: a field the server adds later
is there before this package names it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Self

ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "failed", "cancelled")


class _Record:
    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """The record of an API answer: the fields this class names (absent ones take their default)."""
        names = {f.name for f in fields(cls) if f.name != "raw"}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names}, raw=dict(data))  # type: ignore[call-arg]


@dataclass(frozen=True)
class Dataset(_Record):
    """A dataset (GET /api/datasets/{id}/)."""

    id: int
    name: str
    task: str
    description: str = ""
    guidelines: str = ""
    template: str = ""
    consistency: str = ""
    source_name: str = ""
    field_names: list[str] = field(default_factory=list)
    owner: str | None = None
    my_role: str | None = None
    example_count: int | None = None
    label_set_count: int | None = None
    created: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class LabelSet(_Record):
    """A label set (GET /api/labelsets/{id}/): gold, human, ICM or a baseline's, with its provenance."""

    id: int
    dataset: int
    kind: str
    name: str
    version: int = 1
    source: str = ""
    source_name: str = ""
    created_by: str | None = None
    annotator: str | None = None
    run: int | None = None
    model: str = ""
    configuration: dict[str, Any] = field(default_factory=dict, repr=False)
    partial: bool = False
    created: str | None = None
    n_labels: int | None = None
    n_true: int | None = None
    n_false: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def column(self) -> str:
        """Its column in `Client.labels`: name and version, as the web app shows it (unique in a dataset)."""
        return f"{self.name} v{self.version}"


@dataclass(frozen=True)
class Run(_Record):
    """A run (GET /api/runs/{id}/): its status, settings and progress record, and its label set once written."""

    id: int
    dataset: int
    method: str
    status: str
    task: str = ""
    backend: str = ""
    model: str = ""
    seed: int = 0
    limit: int | None = None
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    cancel_requested: bool = False
    progress: dict[str, Any] = field(default_factory=dict, repr=False)
    error: str = ""
    error_detail: str = field(default="", repr=False)
    label_set: int | None = None
    attempts: int = 0
    created: str | None = None
    started: str | None = None
    finished: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def active(self) -> bool:
        """Queued or running: not finished yet."""
        return self.status in ACTIVE

    @property
    def step(self) -> int | None:
        return self.progress.get("step")

    @property
    def total_steps(self) -> int | None:
        return self.progress.get("total_steps")

    @property
    def gold(self) -> dict[str, Any] | None:
        """A finished run's labels against the dataset's latest gold (accuracy, n, interval, warnings)."""
        return self.progress.get("gold")


@dataclass(frozen=True)
class AgreementReport(_Record):
    """The agreement report (GET /api/datasets/{id}/agreement/): each label set's accuracy against gold with
    its interval and confusion matrix, per stratum, Cohen's kappa for every pair, McNemar's test of each model
    set against each human set. `frame(part)` makes one part a DataFrame with the sets' names."""

    dataset: int
    gold: dict[str, Any] | None
    label_sets: list[dict[str, Any]]
    stratified_by: str = ""
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    by_stratum: list[dict[str, Any]] = field(default_factory=list)
    kappa: list[dict[str, Any]] = field(default_factory=list)
    mcnemar: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def frame(self, part: str = "accuracy") -> Any:
        """One part (accuracy, by_stratum, kappa or mcnemar) as a pandas DataFrame, the sets named."""
        from .frames import report_frame

        return report_frame(self, part)
