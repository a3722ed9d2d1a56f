"""The live page's time left: 'estimating' until there is data, then the pace of the latest window (the raw
estimate: smooth_share=0), and what the page shows of it, smoothed."""

from __future__ import annotations

import pytest

from icm_engine.time_left import TimeLeft


def test_estimating_until_a_twentieth_of_the_steps_and_two_seconds():
    clock = TimeLeft(100, smooth_share=0)
    assert clock.update(1, 10.0) is None  # 1 step of 100: too few
    assert clock.update(5, 1.0) is None  # 5 steps but one second
    assert clock.update(5, 2.5) == pytest.approx(2.5 / 5 * 95)


def test_the_recent_pace_not_the_whole_runs_average():
    # Slow early steps (a model call each), fast late ones (the score cache): 10 s per step for 10 steps,
    # then 1 s per step. After 40 s at the new pace the window holds only the fast steps.
    clock = TimeLeft(200, window_s=30.0, smooth_share=0)
    t = 0.0
    for step in range(1, 11):
        t += 10.0
        clock.update(step, t)
    left = None
    for step in range(11, 51):
        t += 1.0
        left = clock.update(step, t)
    assert left == pytest.approx(150 * 1.0)  # the whole run's average would say 150 * 140/50 = 420 s


def test_a_stalled_window_falls_back_to_the_average():
    clock = TimeLeft(10, window_s=30.0, smooth_share=0)
    clock.update(5, 10.0)
    assert clock.update(5, 20.0) == pytest.approx(20.0 / 5 * 5)


def _search(clock: TimeLeft, steps: int, calls_at, first_step: int = 0, t0: float = 0.0, c0: int = 0):
    """Feed `clock` a batch whose model calls after s steps are calls_at(s), each call one second, the steps
    in between free. Returns what it showed after each step, with the true time left."""
    shown, made, t = [], c0, t0
    for s in range(1, steps + 1):
        new = calls_at(s) - (made - c0)
        t += new
        made += new
        shown.append((s, clock.update(first_step + s, t, made), t))
    return shown


def test_icm_counts_the_model_work_still_to_do_not_the_steps():
    # Calls grow like the fourth root of the steps: 40 by the end of 100 steps, 27 after a fifth of them.
    def calls_at(s: int) -> int:
        return round(40 * (s / 100) ** 0.25)

    shown = _search(TimeLeft(100, batch_steps=100, smooth_share=0), 100, calls_at)
    step, left, t = shown[19]
    assert step == 20 and t == 27
    assert left == pytest.approx(40 - 27, abs=1.5)  # the steps' pace would say 27 / 20 * 80 = 108 s
    assert TimeLeft(100, smooth_share=0).update(20, 27.0) == pytest.approx(108.0)


def test_batches_not_begun_count_as_whole_batches():
    def calls_at(s: int) -> int:
        return round(40 * (s / 100) ** 0.25)

    clock = TimeLeft(300, batch_steps=100, smooth_share=0)
    first = _search(clock, 100, calls_at)
    assert first[49][1] == pytest.approx((40 - 34) + 2 * 40, abs=3)  # half of batch 0: its rest and two more
    second = _search(clock, 50, calls_at, first_step=100, t0=first[-1][2], c0=40)
    # Half of batch 1: its rest and one whole batch, timed from batch 1 alone.
    assert second[49][1] == pytest.approx((40 - 34) + 40, abs=3)


def test_the_time_left_shown_does_not_swing_with_a_noisy_window():
    """A batch whose calls cost 1 s and 3 s by turns, 20 s at a time: the 30 s window's raw estimate swings
    by about 2x within a minute, as the issue saw (291, 852, 344 s); what is shown moves by a fraction of it."""
    shown_clock, raw_clock = TimeLeft(1000, window_s=30.0), TimeLeft(1000, window_s=30.0, smooth_share=0)
    raw, shown, t = [], [], 0.0
    for step in range(1, 1001):
        t += 1.0 if (step // 20) % 2 else 3.0
        shown.append(shown_clock.update(step, t))
        raw.append(raw_clock.update(step, t))

    def swing(values: list, start: int, end: int) -> float:
        window = [v for v in values[start:end] if v is not None]
        return max(window) / min(window)

    # Over a minute's worth of steps mid-run (about 30 steps a minute at 2 s a step on average).
    assert swing(raw, 300, 330) > 1.5
    assert swing(shown, 300, 330) < 1.15
    # And it stays true: the mean pace is 2 s a step, so with 500 steps left about 1000 s are left.
    assert shown[499] == pytest.approx(1000.0, rel=0.25)  # (the window's own bias: a slow stretch counts longer)


def test_a_true_estimate_is_shown_unchanged_and_a_new_pace_is_followed():
    """At an even pace the smoothed time left equals the raw one. After the pace halves for good, what is
    shown follows: the time constant is a quarter of the time spent, so by the time the run's age has doubled
    all but about (1/2)**4 of the change is followed."""
    clock = TimeLeft(4000, window_s=30.0)
    t, left = 0.0, None
    for step in range(1, 501):
        t += 2.0
        left = clock.update(step, t)
    assert left == pytest.approx(3500 * 2.0)
    for step in range(501, 1501):
        t += 1.0
        left = clock.update(step, t)
    assert t == 2000.0
    change = 3500 * 2.0 - 3500 * 1.0  # the finishing time the new pace moved
    assert 2500 <= left <= 2500 + change / 16 * 1.2
