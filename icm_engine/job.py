"""One ICM labeling job, as the `icm` command and the web app's runs both run it: the search over a range of
batches (a shard's, or all of them), resumed from a checkpoint, reporting every event with the labels so
far, and handing its state to a checkpoint callback between iterations, where the state is whole."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .backends.base import Backend
from .examples import Example
from .presets import Task
from .search import ICMConfig, ICMResult, ICMSearch, SearchEvent, make_batches


@dataclass(frozen=True)
class JobPlan:
    """Which batches a job searches, and how many steps (iterations) that is."""

    batches: list[list[int]]
    first: int  # the job's batches are [first, end)
    end: int
    iterations: int  # per batch

    @property
    def total_steps(self) -> int:
        return (self.end - self.first) * self.iterations

    @property
    def first_step(self) -> int:
        """The step the job's first batch starts at, counted over every batch."""
        return self.first * self.iterations

    @property
    def positions(self) -> list[int]:
        """The examples of the job's batches (a shard's own; every example for a whole run)."""
        return [u for b in range(self.first, self.end) for u in self.batches[b]]


def plan_job(examples: Sequence[Example], config: ICMConfig, batch_range: tuple[int, int] | None = None) -> JobPlan:
    """The job's batches: `batch_range` [first, end) of the examples' batches, or all of them."""
    batches = make_batches(examples, config.batch_size)
    first, end = batch_range or (0, len(batches))
    return JobPlan(batches=batches, first=first, end=end, iterations=config.iterations)


@dataclass
class JobResult:
    """What a job found: the search's result and its plan; `checkpoint()` is the state it ended in (what a
    stopped job resumes from; a finished job's is whole), made only when asked for (it holds the score cache)."""

    result: ICMResult
    plan: JobPlan
    search: ICMSearch

    def checkpoint(self) -> dict[str, Any]:
        return self.search.checkpoint()

    @property
    def complete(self) -> bool:
        return self.result.complete

    @property
    def labels(self) -> list[bool | None]:
        """The labels of the job's own examples (`plan.positions`), in that order."""
        return [self.result.labels[u] for u in self.plan.positions]

    @property
    def scores(self) -> list[float | None]:
        return [self.result.scores[u] for u in self.plan.positions]

    @property
    def labeled(self) -> int:
        return sum(y is not None for y in self.labels)

    @property
    def searched(self) -> int:
        """Labels of the job's examples that the search chose (the rest came from the completion)."""
        return self.labeled - self.result.completed


def run_icm_job(
    examples: Sequence[Example],
    task: Task,
    backend: Backend,
    config: ICMConfig,
    *,
    batch_range: tuple[int, int] | None = None,
    checkpoint: dict[str, Any] | None = None,
    on_event: Callable[[SearchEvent, Sequence[bool | None]], None] | None = None,
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    checkpoint_every_s: float = 10.0,
    should_stop: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> JobResult:
    """Label `examples` with ICM over the planned batches, resuming from `checkpoint` when given.

    `on_event(event, labels)` hears every search event with the labels so far (every example's; read them,
    do not keep them). `on_checkpoint(state)` gets the search state after an iteration, at most every
    `checkpoint_every_s` seconds by `clock`. `should_stop()`, asked between iterations, stops the job with
    its labels so far and the state to resume from."""
    plan = plan_job(examples, config, batch_range)
    search: ICMSearch
    last_saved = [clock()]

    def heard(event: SearchEvent) -> None:
        if on_event is not None:
            on_event(event, search.state.labels)
        if on_checkpoint is not None and event.kind == "iteration" and clock() - last_saved[0] >= checkpoint_every_s:
            on_checkpoint(search.checkpoint())
            last_saved[0] = clock()

    search = ICMSearch(examples, task, backend, config, on_event=heard, checkpoint=checkpoint,
                       batch_range=(plan.first, plan.end))
    result = search.run(should_stop=should_stop)
    return JobResult(result=result, plan=plan, search=search)
