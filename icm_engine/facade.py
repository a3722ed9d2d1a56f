"""The engine as its clients see it: the one module the web app imports.

Everything here is defined in the engine's own modules; this names what a client may rely on, so the
engine's inside can move without the web app following it.
"""

from __future__ import annotations

from .anchor import ANCHORS
from .backends import BACKENDS, DEFAULT_MODEL, Backend, backend_names, get_backend, load_plugins
from .backends.hf import model_kind, unknown_model
from .baselines import METHODS as BASELINE_METHODS
from .baselines import BaselineConfig, run_baseline
from .consensus import Consensus, consensus
from .consistency import ConsistencyRule
from .cost import Estimate, Measured, estimate, total, work
from .defaults import choice_for
from .defaults import resolve as resolve_defaults
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
from .metrics import WARNINGS, gold_comparison, label_metrics, wilson
from .orientation import CHOICES as ORIENTATIONS
from .orientation import orientation_warnings
from .presets import PRESETS, Task, get_task, load_dataset
from .scoring import CONTEXTS, DEMO_ORDERS, READOUTS, SCOPES
from .search import (
    INITS,
    ITERATIONS_PER_EXAMPLE,
    MODES,
    PAPER_BATCH_SIZE,
    PAPER_ITERATIONS,
    SCHEDULES,
    SEMANTICS,
    ICMConfig,
    ICMSearch,
    SearchEvent,
    make_batches,
    sized_to,
)
from .time_left import TimeLeft

__all__ = [
    "ANCHORS",
    "BACKENDS",
    "BASELINE_METHODS",
    "CONTEXTS",
    "DEFAULT_MODEL",
    "DEMO_ORDERS",
    "INITS",
    "ITERATIONS_PER_EXAMPLE",
    "MAX_JSON_DEPTH",
    "MAX_PROBLEMS",
    "MODES",
    "ORIENTATIONS",
    "PAPER_BATCH_SIZE",
    "PAPER_ITERATIONS",
    "PRESETS",
    "READOUTS",
    "SCHEDULES",
    "SCOPES",
    "SEMANTICS",
    "WARNINGS",
    "Backend",
    "BaselineConfig",
    "Consensus",
    "ConsistencyRule",
    "DataError",
    "EngineExample",
    "Estimate",
    "ICMConfig",
    "ICMSearch",
    "LoadedData",
    "Measured",
    "Problem",
    "SearchEvent",
    "Task",
    "TimeLeft",
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
    "read_rows",
    "resolve_defaults",
    "run_baseline",
    "sized_to",
    "total",
    "unknown_model",
    "wilson",
    "work",
]
