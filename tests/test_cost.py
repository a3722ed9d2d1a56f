"""The run form's cost estimate: the work count of each method, priced at the pace of measured runs."""

from __future__ import annotations

import pytest

from icm_engine.cost import HOUR_S, Measured, batch_sizes, estimate, total, work


def test_batches_and_work_counts():
    assert batch_sizes(10, 4) == [4, 4, 2] and batch_sizes(0, 4) == [] and batch_sizes(3, 256) == [3]
    passes = (16 + 16 + 4) * 5.0  # b^2 x characters, summed over the batches
    assert work("random-icl", 10, 5.0, 4) == passes == work("gold-icl", 10, 5.0, 4)
    assert work("icm", 10, 5.0, 4, iterations=12) == 12 * passes
    assert work("bootstrap", 10, 5.0, 4, rounds=3) == 4 * passes
    assert work("zero-shot", 10, 5.0, 4) == 50.0 == work("likelihood", 10, 5.0, 4)
    # ICM's cost grows with the square of the batch: one batch of 20 is four times two of 10.
    assert work("icm", 20, 1.0, 20, iterations=5) == 2 * work("icm", 20, 1.0, 10, iterations=5)


def test_an_estimate_is_priced_at_the_median_pace_with_its_range():
    runs = [Measured(work=100.0, seconds=10.0, tokens=1000, model_calls=10),
            Measured(work=200.0, seconds=60.0, tokens=4000, model_calls=10),
            Measured(work=100.0, seconds=20.0, tokens=1500, model_calls=30)]
    e = estimate(1000.0, runs)
    assert e is not None and e.basis == 3
    assert e.seconds == pytest.approx(200.0) and e.seconds_low == pytest.approx(100.0)
    assert e.seconds_high == pytest.approx(300.0)
    assert e.tokens == 15000 and e.model_calls == 100  # median tokens and calls per unit of work
    assert not e.over_an_hour


def test_no_measured_run_means_no_estimate_and_totals_add_up():
    assert estimate(10.0, []) is None
    assert estimate(10.0, [Measured(work=0.0, seconds=5.0, tokens=1, model_calls=1)]) is None
    assert total([]) is None
    a = estimate(HOUR_S, [Measured(work=1.0, seconds=0.75, tokens=1, model_calls=1)])
    b = estimate(HOUR_S, [Measured(work=1.0, seconds=0.5, tokens=2, model_calls=1)])
    assert a is not None and b is not None and not a.over_an_hour and not b.over_an_hour
    both = total([a, b])
    assert both is not None and both.over_an_hour and both.seconds == pytest.approx(1.25 * HOUR_S)
    assert both.tokens == 3 * int(HOUR_S) and both.basis == 1
