"""A run's time left: pure logic, shared by the web app's live page and the benchmark that measures how true
it is (bench/time_left.py, docs/trust.md).

An ICM search's cost is not spread evenly over its steps. Its model calls score label sets it has not seen;
early on nearly every proposal is new, later most re-propose a state whose score is cached. On development
traces (bench/results/time_left_dev.json) the model calls of a batch grew like the fourth root of its steps
done: a fifth of the steps had made about two thirds of the calls. So the time left is the model work still
to do: the calls a batch has yet to make at that rate, at the recent seconds per call, plus the batches not
begun. Work that is even over its steps (a baseline's batches) is timed by the recent pace of its steps.

What is shown is smoothed: the finishing time the estimate implies (elapsed + left) moves towards each new
one by 1 - exp(-dt / tau) over the dt seconds since the last, with tau a quarter of the time spent so far
(SMOOTH_SHARE). The recent pace of a 30 s window swings with whichever proposals it happened to hold (291, 852,
then 344 s within a minute, issue 38), while the model work left changes slowly; a true estimate's finishing
time stands still, so smoothing it costs nothing when the estimate is right. Early on, when little is known
and the first estimates are the worst, tau is short and what is shown follows them closely; a fixed 120 s
tau held a run of a few minutes to its first, low estimates (bench/time_left.py --replay, docs/trust.md).
"""

from __future__ import annotations

import math

# The recent pace is that of the last WINDOW_S seconds; nothing is shown before a twentieth of the steps
# and MIN_S seconds of work ("estimating").
WINDOW_S = 30.0
MIN_S = 2.0
MIN_SHARE = 1 / 20
# A batch's model calls after a share f of its steps, as a share of its whole: f ** CALLS_EXPONENT.
CALLS_EXPONENT = 0.25
# How fast the shown finishing time follows a new estimate: two thirds of a change after this share of the
# time spent so far.
SMOOTH_SHARE = 0.25


class TimeLeft:
    """Seconds left, or None while estimating. `batch_steps` (ICM: its iterations) and the calls given to
    `update` make it count model work; without them it times the steps."""

    def __init__(self, total_steps: int, batch_steps: int | None = None, window_s: float = WINDOW_S,
                 min_s: float = MIN_S, smooth_share: float = SMOOTH_SHARE):
        self.total_steps = max(total_steps, 1)
        self.smooth_share = smooth_share  # 0: the raw estimate of each update
        self.finish: tuple[float, float] | None = None  # (the shown finishing time, when it was last moved)
        self.batch_steps = batch_steps if batch_steps and batch_steps > 0 else None
        self.window_s = window_s
        self.min_s = min_s
        self.pace: list[tuple[float, int, int | None]] = []
        self.batch_start: tuple[int, float, int] | None = None  # (batch, elapsed, calls) where it began

    def update(self, step: int, elapsed: float, calls: int | None = None) -> float | None:
        """Record that `step` steps (and `calls` model calls) are done after `elapsed` seconds; return the
        seconds left (smoothed)."""
        left = self.estimate(step, elapsed, calls)
        if left is None:
            return None
        if self.finish is None or self.smooth_share <= 0:
            self.finish = (elapsed + left, elapsed)
        else:
            shown, since = self.finish
            weight = 1.0 - math.exp(-max(0.0, elapsed - since) / (self.smooth_share * elapsed))
            self.finish = (shown + (elapsed + left - shown) * weight, elapsed)
        return max(0.0, self.finish[0] - elapsed)

    def estimate(self, step: int, elapsed: float, calls: int | None = None) -> float | None:
        """The raw seconds left from this report and the recent pace (what `update` smooths)."""
        self.pace.append((elapsed, step, calls))
        while len(self.pace) > 2 and elapsed - self.pace[1][0] >= self.window_s:
            self.pace.pop(0)
        if self.batch_steps is not None and calls is not None:
            batch = min(step // self.batch_steps, (self.total_steps - 1) // self.batch_steps)
            if self.batch_start is None and batch == 0:
                self.batch_start = (0, 0.0, 0)  # the first report comes after the first batch's first calls
            elif self.batch_start is None or self.batch_start[0] != batch:
                self.batch_start = (batch, elapsed, calls)
        if step < max(1, self.total_steps * MIN_SHARE) or elapsed < self.min_s:
            return None
        if self.batch_start is not None and calls is not None:
            left = self._by_calls(step, elapsed, calls)
            if left is not None:
                return left
        return self._by_steps(step, elapsed)

    def _by_steps(self, step: int, elapsed: float) -> float:
        (t0, s0, _), (t1, s1, _) = self.pace[0], self.pace[-1]
        if s1 <= s0 or t1 <= t0:
            return elapsed / step * (self.total_steps - step)
        return (t1 - t0) / (s1 - s0) * (self.total_steps - step)

    def _by_calls(self, step: int, elapsed: float, calls: int) -> float | None:
        assert self.batch_steps is not None and self.batch_start is not None
        batch, start_s, start_calls = self.batch_start
        share = (step - batch * self.batch_steps) / self.batch_steps
        made, spent = calls - start_calls, elapsed - start_s
        if share < MIN_SHARE or made <= 0 or spent <= 0:
            return None  # a batch just begun: its steps' pace until it has made calls
        left_calls = made / share**CALLS_EXPONENT - made
        window = [(t, c) for t, _, c in self.pace if c is not None]
        (t0, c0), (t1, c1) = window[0], window[-1]
        per_call = (t1 - t0) / (c1 - c0) if c1 > c0 and t1 > t0 and t0 >= start_s else spent / made
        this_batch = left_calls * per_call
        batches_left = (self.total_steps - 1) // self.batch_steps - batch
        return this_batch + batches_left * (spent + this_batch)
