"""Shared pieces of the run tests: a dataset the fake backend can label, and waiting for a run."""

from __future__ import annotations

import time

from webapp.datasets.services import create_dataset
from webapp.runs.models import Run

from .conftest import jsonl

FAKE = "slow-fake"  # registered by tests.fakes
TEMPLATE = "Item: {text}\\nLabel:"


def fake_rows(n: int = 24) -> list[dict]:
    # Pairs (one pos, one neg) per group; gold follows the marker, which the fake backend "knows".
    return [{"id": f"e{i}", "text": f"{'pos' if i % 2 == 0 else 'neg'} item {i} " + "x" * (i % 5),
             "label": i % 2 == 0, "consistency_id": f"g{i // 2}"} for i in range(n)]


def fake_dataset(owner, n: int = 24, name: str = "Fake"):
    return create_dataset(owner=owner, filename="fake.jsonl", data=jsonl(fake_rows(n)), task="claims", name=name,
                          template=TEMPLATE, consistency="none")


ICM_FAST = {"iterations": 80, "batch_size": 64, "num_seed": 4, "fix_steps": 2}


def wait_for(run_id: int, statuses: set[str], timeout: float = 60.0, predicate=None) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.status in statuses and (predicate is None or predicate(run)):
            return run
        time.sleep(0.1)
    run = Run.objects.get(pk=run_id)
    raise AssertionError(f"run {run_id} is {run.status} after {timeout} s (wanted {statuses}); error: {run.error}")


def advance(gate, run_id: int, predicate, timeout: float = 60.0) -> Run:
    """Let a gated run's model calls through one at a time until `predicate(run)` holds; the run then waits
    at the gate, so the state the test acts on stays put."""
    deadline = time.monotonic() + timeout
    if not gate.wait_arrival(timeout):
        raise AssertionError(f"run {run_id} made no model call in {timeout} s: {Run.objects.get(pk=run_id).error}")
    while True:
        run = Run.objects.get(pk=run_id)
        if predicate(run):
            return run
        gate.release(1)
        if not gate.wait_arrival(max(0.0, deadline - time.monotonic())):
            run = Run.objects.get(pk=run_id)
            raise AssertionError(f"run {run_id} is {run.status} and made no further model call; error: {run.error}")


def release_until(gate, run_id: int, statuses: set[str], timeout: float = 60.0) -> tuple[Run, int]:
    """Let a gated run's model calls through one at a time until it reaches one of `statuses`: the run, and how
    many calls it was let make."""
    deadline, released = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.status in statuses:
            return run, released
        gate.release(1)
        released += 1
        gate.wait_arrival(5.0)  # its next call, or the run ended (the status says which)
    raise AssertionError(f"run {run_id} is {Run.objects.get(pk=run_id).status} after {timeout} s (wanted {statuses})")


def labels_of(run: Run) -> dict[str, bool]:
    return {lab.example.external_id: lab.value for lab in run.label_set.labels.select_related("example")}
