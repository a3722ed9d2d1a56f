"""The engine as its clients see it: the one module the web app imports.

What a client does with the engine, in the order a run does it: read a file into examples, name the task,
settle the run's settings (`settings_for`), label (`run_icm_job` for ICM over a range of batches, resumable
from a checkpoint and reporting as it goes; `run_baseline` beside it), and measure the labels honestly
(`label_metrics`, `gold_comparison`), pricing the work before and timing it during (`estimate`, `TimeLeft`).
Everything here is defined in the engine's own modules; this names what a client may rely on, so the
engine's inside can move without the web app following it.
"""

from __future__ import annotations

from .backends import BACKENDS, DEFAULT_MODEL, Backend, backend_names, get_backend, load_plugins
from .backends.hf import model_kind, unknown_model
from .baselines import METHODS as BASELINE_METHODS
from .baselines import BaselineConfig, run_baseline
from .consensus import Consensus, consensus
from .consistency import ConsistencyRule
from .cost import Estimate, Measured, estimate, total, work
from .defaults import choice_for
from .examples import (
    MAX_JSON_DEPTH,
    MAX_PROBLEMS,
    DataError,
    LoadedData,
    Problem,
    json_depth,
    limit_examples,
    parse_label,
    read_rows,
)
from .examples import Example as EngineExample
from .job import JobPlan, JobResult, plan_job, run_icm_job
from .metrics import WARNINGS, gold_comparison, label_metrics, wilson
from .orientation import orientation_warnings
from .presets import PRESETS, Task, get_task, load_dataset
from .run_settings import BASELINE_SETTINGS, ICM_SETTINGS, RUN_SETTINGS, api_help, settings_for
from .search import ICMConfig, SearchEvent, make_batches
from .setting import Setting
from .tables import TableLimits
from .time_left import TimeLeft

__all__ = [
    # Data in: reading a file's rows into examples, with errors that name the row and field
    "read_rows",
    "TableLimits",
    "load_dataset",
    "parse_label",
    "limit_examples",
    "json_depth",
    "MAX_JSON_DEPTH",
    "MAX_PROBLEMS",
    "DataError",
    "Problem",
    "LoadedData",
    "EngineExample",
    # Tasks: the presets' prompts and consistency rules, and each preset's readout choice
    "PRESETS",
    "Task",
    "get_task",
    "choice_for",
    "ConsistencyRule",
    # Run settings: described once, merged once (run_settings.py)
    "RUN_SETTINGS",
    "ICM_SETTINGS",
    "BASELINE_SETTINGS",
    "Setting",
    "settings_for",
    "api_help",
    "ICMConfig",
    "BaselineConfig",
    # Labeling: an ICM job over a range of batches, resumable, and the baselines beside it
    "plan_job",
    "run_icm_job",
    "JobPlan",
    "JobResult",
    "SearchEvent",
    "make_batches",
    "orientation_warnings",
    "run_baseline",
    "BASELINE_METHODS",
    "consensus",
    "Consensus",
    # Backends: the model servers and files a run may name, and plugins
    "BACKENDS",
    "DEFAULT_MODEL",
    "Backend",
    "backend_names",
    "get_backend",
    "load_plugins",
    "model_kind",
    "unknown_model",
    # Honest figures: accuracy with its interval, majority rate and warnings
    "label_metrics",
    "gold_comparison",
    "wilson",
    "WARNINGS",
    # Cost and time: estimates before a run, time left during it
    "Estimate",
    "Measured",
    "estimate",
    "total",
    "work",
    "TimeLeft",
]
