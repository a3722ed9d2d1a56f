"""Each task preset's default readout, context and calibration for the packaged model.

Chosen on development data only (the paper's train/dev files and the sanity set's dev half, never the
evaluation halves) by `bench/choose_defaults.py`; docs/defaults.md holds the table that chose them. An
option the user gives always wins; the report and the run form say which settings came from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .presets import PRESETS, Task

DOC = "docs/defaults.md"


@dataclass(frozen=True)
class ReadoutChoice:
    readout: str
    context: str
    # Calibration is on for every preset: uncalibrated, a readout's label-word bias makes one class the most
    # "predictable" labeling and the search ends one-class (docs/trust.md).
    calibrate: bool = True
    centre: str = "batch"
    # The likelihood anchor (search/config.py); None: the search semantics' own (agreeing). A preset's prompts
    # read every field the anchor's prompt needs, so choosing it never asks a dataset for more fields.
    anchor: str | None = None
    why: str = ""

    def settings(self) -> dict[str, Any]:
        return {"readout": self.readout, "context": self.context, "calibrate": self.calibrate, "centre": self.centre,
                "anchor": self.anchor}


PRESET_CHOICES: dict[str, ReadoutChoice] = {
    "truthfulqa": ReadoutChoice("split", "other-folds", centre="group", anchor="likelihood"),
    "gsm8k": ReadoutChoice("verdict", "other-folds", centre="group"),
    "alpaca": ReadoutChoice("verdict", "other-folds", centre="group"),
    "claims": ReadoutChoice("split", "other-folds", centre="group", anchor="likelihood"),
}
# A task whose prompts the user changed was not measured: the paper's readout, calibrated.
CUSTOM = ReadoutChoice("verdict", "all", why="custom prompts: the paper's readout, calibrated")
SETTINGS = ("readout", "context", "calibrate", "centre", "anchor")
# What a choice was measured with: a task whose described prompts differ from its preset's is custom. Not the
# likelihood's prefix: no readout reads it, and a dataset stored before a preset's prefix changed keeps its
# preset's choice.
PROMPT_KEYS = ("template", "label_words", "channel_prefix", "channel_target", "verbalizers", "split_header")


def choice_for(task: Task | dict[str, Any]) -> ReadoutChoice:
    """The readout choice for a task (or its `describe()`): its preset's, unless its prompts were changed."""
    described = task if isinstance(task, dict) else task.describe()
    name = described["task"]
    preset = PRESETS[name].describe()
    if any(described.get(k) != preset[k] for k in PROMPT_KEYS):
        return CUSTOM
    return PRESET_CHOICES[name]


def resolve(task: Task | dict[str, Any], given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The readout settings to use: each one given (not None) as given, the rest from the task's choice.
    Returns them and the names of those that came from the choice."""
    choice = choice_for(task).settings()
    if given.get("init") not in (None, "random"):  # seeds from zero-shot: the anchor must not label them too
        choice["anchor"] = None
    settings = {k: choice[k] if given.get(k) is None else given[k] for k in SETTINGS}
    # An anchor the choice leaves to the search semantics supplies nothing.
    return settings, [k for k in SETTINGS if given.get(k) is None and (k != "anchor" or choice[k] is not None)]


def describe(task: Task | dict[str, Any], from_choice: list[str]) -> dict[str, Any]:
    """What a report says of the defaults: the choice, which settings it supplied, where it was chosen."""
    return {**asdict(choice_for(task)), "applied": list(from_choice), "chosen_in": DOC}
