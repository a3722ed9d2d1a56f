"""The readout settings ICM and the baselines share, described once (setting.py): how the model's answer is
read, which demonstrations a target sees, and calibration."""

from __future__ import annotations

from typing import Any

from .scoring import CONTEXTS, DEFAULT_FOLDS, READOUTS, SCOPES
from .setting import setting

PRESET = "the task preset's choice for the packaged model (docs/defaults.md)"


def readout(default: str) -> Any:
    return setting(default, "How the model's answer is read. verdict: the next token's label words; channel: the "
                   "likelihood of the claim after each label's verbalizer; split: the likelihood of the claim given "
                   "each label's examples", choices=READOUTS, empty=PRESET)


def context(default: str) -> Any:
    return setting(default, "The demonstrations a target sees: every other labeled example (the paper's all), only "
                   "other consistency groups, or the labeled examples of the other folds", choices=CONTEXTS,
                   empty=PRESET, advanced=True)


def calibrate(default: bool) -> Any:
    return setting(default, "Contextual calibration: subtract the mean log-odds from every score (uncalibrated, the "
                   "label words' bias can make one class the most predictable)", empty=PRESET)


def centre(default: str) -> Any:
    return setting(default, "What calibration subtracts. batch: the labeled examples' mean log-odds; group: each "
                   "consistency group's, so a claim counts by how it compares with its group mates", choices=SCOPES,
                   empty=PRESET, advanced=True, label="Calibration subtracts")


def folds() -> Any:
    return setting(DEFAULT_FOLDS, "With the other-folds context: the batch's consistency groups are dealt into this "
                   "many folds, and each example sees the labeled examples of the other folds", low=2, high=64,
                   advanced=True)
