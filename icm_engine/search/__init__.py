"""ICM's search: its settings (config), where it stands (state, the checkpoint), the paper's and the official
code's choices (semantics) and the annealing loop (loop)."""

from .config import (
    INITS,
    ITERATIONS_PER_EXAMPLE,
    MODE_ALIASES,
    MODES,
    PAPER_BATCH_SIZE,
    PAPER_ITERATIONS,
    SCHEDULES,
    SEMANTICS,
    ICMConfig,
    make_batches,
    sized_to,
)
from .events import ICMResult, SearchEvent
from .loop import ICMSearch, accept_probability
from .state import CHECKPOINT_VERSION, SearchState, fingerprint, read_checkpoint

__all__ = ["CHECKPOINT_VERSION", "INITS", "ITERATIONS_PER_EXAMPLE", "MODES", "MODE_ALIASES", "PAPER_BATCH_SIZE",
           "PAPER_ITERATIONS", "SCHEDULES", "SEMANTICS", "ICMConfig", "ICMResult", "ICMSearch", "SearchEvent",
           "SearchState", "accept_probability", "fingerprint", "make_batches", "read_checkpoint", "sized_to"]
