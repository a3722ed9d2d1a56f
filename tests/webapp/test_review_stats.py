"""The review statistics against values computed independently, by hand formulas, on fixed data."""

from __future__ import annotations

import math

import pytest

from webapp.review import stats

# 20 items: gold, and two raters.
GOLD = [True] * 12 + [False] * 8
A = [True] * 10 + [False] * 2 + [False] * 6 + [True] * 2      # 16 of 20 right
B = [True] * 7 + [False] * 5 + [False] * 7 + [True] * 1       # 14 of 20 right


def wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_accuracy_and_wilson_interval():
    acc = stats.accuracy(A, GOLD)
    assert acc["n"] == 20 and acc["correct"] == 16 and acc["accuracy"] == pytest.approx(0.8)
    lo, hi = wilson_by_hand(16, 20)
    assert (acc["ci_low"], acc["ci_high"]) == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9))
    assert (round(lo, 4), round(hi, 4)) == (0.5840, 0.9193)  # the textbook value for 16/20
    assert stats.wilson(0, 0) == (None, None)


def test_confusion_matrix_orientation():
    # rows gold True/False, columns label True/False
    assert stats.confusion(A, GOLD) == [[10, 2], [2, 6]]


def test_kappa_and_interval_by_hand():
    n = len(A)
    po = sum(a == b for a, b in zip(A, B, strict=True)) / n
    pa, pb = sum(A) / n, sum(B) / n
    pe = pa * pb + (1 - pa) * (1 - pb)
    kappa = (po - pe) / (1 - pe)
    result = stats.kappa(A, B)
    assert result["kappa"] == pytest.approx(kappa)
    # Fleiss-Cohen-Everitt asymptotic variance, as statsmodels computes it (its default, not the simple one).
    table = [[sum(1 for a, b in zip(A, B, strict=True) if a == x and b == y) / n for y in (True, False)]
             for x in (True, False)]
    rows = [sum(r) for r in table]
    cols = [sum(table[i][j] for i in range(2)) for j in range(2)]
    t1 = sum(table[i][i] * (1 - (rows[i] + cols[i]) * (1 - kappa)) ** 2 for i in range(2))
    t2 = (1 - kappa) ** 2 * sum(table[i][j] * (cols[i] + rows[j]) ** 2 for i in range(2) for j in range(2) if i != j)
    t3 = (kappa - pe * (1 - kappa)) ** 2
    se = math.sqrt((t1 + t2 - t3) / (n * (1 - pe) ** 2))
    assert result["ci_low"] == pytest.approx(kappa - 1.959963984540054 * se, abs=1e-6)
    assert result["ci_high"] == pytest.approx(kappa + 1.959963984540054 * se, abs=1e-6)
    # No variation in either set: undefined, never 1, 0 or NaN, and the same answer in every case.
    for a, b in (([True] * 5, [True] * 5), ([True] * 5, [True, False, True, True, False]),
                 ([False, True, True, False, True], [False] * 5)):
        result = stats.kappa(a, b)
        assert (result["kappa"], result["ci_low"], result["undefined"]) == (None, None, "one_class")
    assert stats.kappa([], [])["undefined"] == "no_items"


def test_mcnemar_exact_by_binomial():
    a_right = [a == g for a, g in zip(A, GOLD, strict=True)]
    b_right = [b == g for b, g in zip(B, GOLD, strict=True)]
    only_a = sum(x and not y for x, y in zip(a_right, b_right, strict=True))
    only_b = sum(y and not x for x, y in zip(a_right, b_right, strict=True))
    m = only_a + only_b
    tail = sum(math.comb(m, k) for k in range(min(only_a, only_b) + 1)) / 2 ** m
    result = stats.mcnemar_exact(a_right, b_right)
    assert (result["only_first_correct"], result["only_second_correct"]) == (only_a, only_b)
    assert result["p_value"] == pytest.approx(min(1.0, 2 * tail))
