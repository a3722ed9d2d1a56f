"""A run's execution: claim and lease (lease), progress (recorder), outcome (outcome) and the runner."""

from .lease import claim
from .outcome import settle_parent
from .recorder import set_phase
from .runner import dataset_examples, execute_run

__all__ = ["claim", "dataset_examples", "execute_run", "set_phase", "settle_parent"]
