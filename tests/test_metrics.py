"""Accuracy against gold with what keeps it honest: the warnings on hand-made label sets, and every figure
against statsmodels, computed independently of the scipy calls the engine makes."""

from __future__ import annotations

import json

import pytest
from statsmodels.stats.proportion import binom_test, proportion_confint

from icm_engine.metrics import WARNINGS, gold_comparison, label_metrics, warning_lines

# The case: 24 claims, gold 19 False and 5 True (majority 0.792).
GOLD = [True] * 5 + [False] * 19


def test_all_one_class_is_flagged_as_one_class_and_no_better_than_majority():
    c = gold_comparison([False] * 24, GOLD)
    assert c["n"] == 24 and c["accuracy"] == pytest.approx(19 / 24)
    assert c["majority_accuracy"] == pytest.approx(19 / 24) and c["balance"] == 0.0
    assert c["warnings"] == ["one_class", "no_better_than_majority"]


def test_the_exact_mirror_of_gold_is_below_chance():
    c = gold_comparison([not g for g in GOLD], GOLD)
    assert c["accuracy"] == pytest.approx(0.0) and c["balance"] == pytest.approx(19 / 24)
    assert c["warnings"] == ["below_chance", "no_better_than_majority"]
    # All True is one class and the mirror of the majority: 5 of 24 right.
    assert gold_comparison([True] * 24, GOLD)["warnings"] == ["one_class", "below_chance", "no_better_than_majority"]


def test_a_fair_labeling_has_no_warning():
    gold = [True, False] * 20
    labels = [not gold[0], gold[1], gold[2], not gold[3], *gold[4:]]
    c = gold_comparison(labels, gold)
    assert c["accuracy"] == pytest.approx(38 / 40) and c["warnings"] == []


def test_figures_match_statsmodels():
    gold = [True] * 30 + [False] * 20
    labels = [True] * 26 + [False] * 4 + [False] * 15 + [True] * 5   # 41 of 50 right, 31 True
    scores = [float(i % 7) - 3 + (2 if g else 0) for i, g in enumerate(gold)]
    c = gold_comparison(labels, gold, scores)
    lo, hi = proportion_confint(41, 50, alpha=0.05, method="wilson")
    assert (c["ci_low"], c["ci_high"]) == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9))
    assert c["majority_accuracy"] == pytest.approx(0.6) and c["balance"] == pytest.approx(31 / 50)
    assert c["p_vs_majority"] == pytest.approx(binom_test(41, 50, prop=0.6, alternative="larger"), rel=1e-9)
    assert c["p_vs_majority"] < 0.05 and c["warnings"] == []
    from sklearn.metrics import roc_auc_score

    assert c["auroc"] == pytest.approx(roc_auc_score(gold, scores))


@pytest.mark.parametrize(("correct", "n", "majority_share"), [(14, 20, 12), (15, 20, 12), (16, 20, 12), (9, 20, 10)])
def test_no_better_than_majority_is_the_one_sided_exact_test(correct, n, majority_share):
    gold = [True] * majority_share + [False] * (n - majority_share)
    labels = [g if i < correct else not g for i, g in enumerate(gold)]
    p = binom_test(correct, n, prop=max(majority_share, n - majority_share) / n, alternative="larger")
    assert ("no_better_than_majority" in gold_comparison(labels, gold)["warnings"]) == (p >= 0.05)
    below = proportion_confint(correct, n, alpha=0.05, method="wilson")[1] < 0.5
    assert ("below_chance" in gold_comparison(labels, gold)["warnings"]) == below


def test_label_metrics_pairs_labels_with_gold_and_reads_every_score():
    labels = [True, None, False, False, True]
    gold = [True, False, None, False, False]
    m = label_metrics(labels, gold, [2.0, -1.0, 0.0, -2.0, 1.0])
    assert (m["n_gold"], m["n_compared"], m["n"], m["correct"]) == (4, 3, 3, 2)
    assert m["balance"] == pytest.approx(2 / 3) and m["majority_accuracy"] == pytest.approx(2 / 3)
    assert m["auroc"] == pytest.approx(1.0)  # the unlabeled example's score counts too
    assert label_metrics([None, None], [True, False])["accuracy"] is None


def test_warning_lines_name_each_warning_with_its_figures():
    lines = warning_lines(gold_comparison([False] * 24, GOLD))
    assert len(lines) == 2 and lines[0].startswith("warning: one_class: " + WARNINGS["one_class"])
    assert "accuracy 0.792 on 24, majority class 0.792, share True 0.000" in lines[0]
    json.dumps(gold_comparison([False] * 24, GOLD))  # plain data: it goes into reports and the API as it is
