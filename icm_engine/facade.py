"""The engine as its clients see it: the one module the web app imports.

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
from .time_left import TimeLeft

__all__ = [
    "BACKENDS",
    "BASELINE_METHODS",
    "BASELINE_SETTINGS",
    "DEFAULT_MODEL",
    "ICM_SETTINGS",
    "MAX_JSON_DEPTH",
    "MAX_PROBLEMS",
    "PRESETS",
    "RUN_SETTINGS",
    "WARNINGS",
    "Backend",
    "BaselineConfig",
    "Consensus",
    "ConsistencyRule",
    "DataError",
    "EngineExample",
    "Estimate",
    "ICMConfig",
    "JobPlan",
    "JobResult",
    "LoadedData",
    "Measured",
    "Problem",
    "SearchEvent",
    "Setting",
    "Task",
    "TimeLeft",
    "api_help",
    "backend_names",
    "choice_for",
    "consensus",
    "estimate",
    "get_backend",
    "get_task",
    "gold_comparison",
    "json_depth",
    "label_metrics",
    "limit_examples",
    "load_dataset",
    "load_plugins",
    "make_batches",
    "model_kind",
    "orientation_warnings",
    "parse_label",
    "plan_job",
    "read_rows",
    "run_baseline",
    "run_icm_job",
    "settings_for",
    "total",
    "unknown_model",
    "wilson",
    "work",
]
