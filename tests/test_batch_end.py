"""What happens at the end of an ICM batch and over seeds: completion within the consistency rule, the
orientation that names the two classes, U on one scale whatever the readout's units, and the consensus."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pytest

from icm_engine.consensus import consensus
from icm_engine.consistency import ConsistencyRule
from icm_engine.orientation import agreement, decide, orientation_warnings
from icm_engine.search import ICMConfig, ICMSearch
from icm_engine.search.completion import conflicted, settle

from .fakes import FakeBackend, _sign
from .test_search import TASK, make_examples


def test_completion_labels_every_example_within_the_rule():
    examples, _gold = make_examples(10, per_group=3)
    rule = ConsistencyRule(examples, TASK.consistency)
    # Five iterations label a few examples: the rest come from the completion.
    partial = ICMSearch(examples, TASK, FakeBackend(), ICMConfig(iterations=5, seed=1, complete=False)).run()
    full = ICMSearch(examples, TASK, FakeBackend(), ICMConfig(iterations=5, seed=1)).run()
    searched = sum(y is not None for y in partial.labels)
    assert 0 < searched < len(examples)
    assert all(y is not None for y in full.labels) and rule.count(full.labels) == 0
    assert full.completed == len(examples) - searched
    # The searched labels stay (none was in conflict here); each score is the log-odds its label was chosen by.
    assert full.settled == 0
    assert all(full.labels[p] == partial.labels[p] for p in range(len(examples)) if partial.labels[p] is not None)
    # Every example has the score its label was chosen by (the unlabeled ones too, with --no-complete).
    assert all(s is not None for s in full.scores) and full.scores == partial.scores


def test_settle_keeps_fixed_labels_and_obeys_the_rule_against_the_scores():
    examples, _ = make_examples(2, per_group=3)  # keys a0, a1, a2 in each group: no two may both be True
    rule = ConsistencyRule(examples, TASK.consistency)
    labels: list[bool | None] = [True, None, None, None, None, None]
    scores = [0.5, 3.0, 2.0, 1.0, 4.0, -1.0]
    out = settle(rule, labels, scores, open_={1, 2, 3, 4, 5})
    # Group 0: position 0 stays True, so its mates are False however high their scores.
    assert out[:3] == [True, False, False]
    # Group 1: the best consistent assignment for the scores: only the highest True.
    assert out[3:] == [False, True, False]
    assert rule.count(out) == 0
    # A group left in conflict is settled whole by its scores.
    both = [True, True, False, False, True, False]
    assert conflicted(rule, both) == {0, 1, 2}
    assert settle(rule, both, [1.0, 2.0, -1.0, 0.0, 0.0, 0.0], conflicted(rule, both))[:3] == [False, True, False]


class _CopyBackend(FakeBackend):
    """In context, a target's log-odds is how far the demonstrations with its marker are labeled True minus
    how far those with the other marker are: a global flip of the labels negates every score, so a labeling
    and its mirror image have the same U. Its claims' likelihood still knows the markers (FakeBackend)."""

    def _odds(self, prompt: str) -> float:
        parts = prompt.split("\n\n")
        mine = _sign(parts[-1])
        votes = []
        for d in parts[:-1]:
            m = re.match(r"Item: (.*)\nLabel: ([TF])$", d, re.S)
            if m:
                votes.append((1 if m.group(2) == "T" else -1) * (1 if _sign(m.group(1)) == mine else -1))
        return float(np.mean(votes)) if votes else 0.0


def test_a_labeling_and_its_mirror_tie_on_u_and_the_signal_names_them():
    examples, gold = make_examples(8)
    mirror = [not g for g in gold]
    search = ICMSearch(examples, TASK, _CopyBackend(noise=0.0), ICMConfig(iterations=0, seed=0, orient="likelihood"))
    search.setup_batch()
    assert search.evaluate(mirror)[0] == pytest.approx(search.evaluate(list(gold))[0])
    search.state.labels = list(mirror)
    search.state.initialized = True
    result = search.run()
    assert result.labels == gold and result.flipped_batches == [0]
    (where,) = result.orientation
    assert where["signal"] == "likelihood" and where["flipped"] and where["decided"]
    assert where["signals"]["likelihood"]["r"] == pytest.approx(1.0)
    assert orientation_warnings(result.orientation) == []


def test_orientation_weighs_its_signals_and_says_when_they_cannot_decide():
    labels = [True, False] * 10
    truth = [1.0 if y else -1.0 for y in labels]
    noise = [0.3, -0.1, 0.2, 0.1, -0.4, 0.0, 0.1, 0.2, -0.2, -0.3] * 2
    # Backed by one signal, the other silent: kept, and decided.
    kept = decide(labels, {"likelihood": truth, "zero-shot": noise}, "likelihood+zero-shot")
    assert not kept.flipped and kept.decided and kept.signals["likelihood"]["r"] == 1.0
    # Both for the mirror image: flipped, and the agreements are reported for the labels as returned.
    turned = decide(labels, {"likelihood": [-v for v in truth], "zero-shot": [-v for v in truth]}, "auto")
    assert turned.flipped and turned.decided and turned.signals["zero-shot"]["r"] == 1.0
    # Signals that disagree decisively: undecided, and the run is warned.
    split = decide(labels, {"likelihood": truth, "zero-shot": [-v for v in truth]}, "auto")
    assert not split.decided
    assert orientation_warnings([split.as_dict()]) == ["classes_not_named"]
    # A weak lean toward the mirror image turns nothing over: the search's naming stays, reported as undecided
    # with the lean (z below zero, the signals' agreement with the labels as returned negative).
    weak = [-0.3 if y else 0.3 for y in labels[:4]] + noise[4:]
    leaning = decide(labels, {"likelihood": weak, "zero-shot": noise}, "auto")
    assert not leaning.decided and not leaning.flipped
    assert leaning.z < 0 and leaning.signals["likelihood"]["r"] < 0
    assert orientation_warnings([leaning.as_dict()]) == ["classes_not_named"]
    # Where the two cannot decide, the fallback (the split readout's zero-shot) decides alone when significant.
    named = decide(labels, {"likelihood": noise, "zero-shot": noise}, "auto", fallback=[-v for v in truth])
    assert named.flipped and named.decided and named.signal == "auto, then split-zero-shot"
    assert named.signals["split-zero-shot"]["r"] == 1.0 and named.signals["likelihood"]["r"] == -agreement(
        noise, labels).r
    # Not when a signal is significant against it, nor when it is weak itself: then it is only reported.
    blocked = decide(labels, {"likelihood": truth, "zero-shot": [-v for v in truth]}, "auto",
                     fallback=[-v for v in truth])
    assert not blocked.decided and not blocked.flipped and blocked.signals["split-zero-shot"]["r"] == -1.0
    faint = decide(labels, {"likelihood": noise, "zero-shot": noise}, "auto", fallback=weak)
    assert not faint.decided and not faint.flipped and "split-zero-shot" in faint.signals
    # A decided naming it backs stays as it was; one it is significant against is vetoed: undecided, kept.
    backed = decide(labels, {"likelihood": truth, "zero-shot": noise}, "likelihood+zero-shot", fallback=truth)
    assert (backed.flipped, backed.decided, backed.z, backed.p) == (kept.flipped, kept.decided, kept.z, kept.p)
    vetoed = decide(labels, {"likelihood": truth, "zero-shot": noise}, "likelihood+zero-shot",
                    fallback=[-v for v in truth])
    assert not vetoed.decided and not vetoed.flipped and vetoed.signals["split-zero-shot"]["r"] == -1.0
    assert orientation_warnings([vetoed.as_dict()]) == ["classes_not_named"]
    # Agreement is 2 AUROC - 1 with the Mann-Whitney p-value.
    found = agreement(truth, labels)
    assert found.r == 1.0 and found.p < 1e-4 and found.n_true == found.n_false == 10
    assert agreement([0.0] * 20, labels).r == 0.0


class _Scaled(FakeBackend):
    """The fake's log-odds times a constant: the same model in other units (a power of two, so exactly)."""

    def __init__(self, factor: float, **kw):
        super().__init__(**kw)
        self.factor = factor

    def label_logprobs(self, prompts: Sequence[str], label_words: Sequence[str]) -> np.ndarray:
        lp = super().label_logprobs(prompts, label_words)
        return np.stack([self.factor * (lp[:, 0] - lp[:, 1]), np.zeros(len(lp))], axis=1)


def test_scaling_every_score_leaves_the_normalized_searchs_decisions_unchanged():
    examples, _ = make_examples(10)
    cfg = ICMConfig(iterations=120, seed=4, calibrate=True)
    runs = {f: ICMSearch(examples, TASK, _Scaled(f), cfg).run() for f in (1.0, 4.0, 0.25)}
    base = runs[1.0]
    assert base.accepted > 0 and base.rejected > 0
    for f, other in runs.items():
        assert (other.labels, other.accepted, other.rejected) == (base.labels, base.accepted, base.rejected)
        assert other.scores == pytest.approx([f * s for s in base.scores])
    # Unnormalized (the official code's U), the same scaling changes what the search accepts.
    raw = {f: ICMSearch(examples, TASK, _Scaled(f), ICMConfig(iterations=120, seed=4, calibrate=True,
                                                                normalize=False)).run() for f in (0.25, 4.0)}
    assert (raw[0.25].accepted, raw[0.25].rejected) != (raw[4.0].accepted, raw[4.0].rejected)


def test_the_consensus_outvotes_a_mirrored_seed_and_says_how_far_seeds_agree():
    gold = [True, False, True, False, True, False]
    near = [True, False, True, False, True, True]  # one label off
    mirror = [not g for g in gold]
    result = consensus([gold, near, mirror], names=["s0", "s1", "s2"])
    # The mirrored seed is outvoted wherever the other two agree; where the near seed sides with it, the vote
    # goes their way. Each label is given by two seeds of three.
    assert result.labels == [*gold[:5], True]
    assert result.confidence == pytest.approx([2 / 3] * 6)
    by_pair = {(p["a"], p["b"]): p["agreement"] for p in result.pairs}
    assert by_pair == pytest.approx({("s0", "s1"): 5 / 6, ("s0", "s2"): 0.0, ("s1", "s2"): 1 / 6}, abs=1e-4)
    assert result.agreement == pytest.approx(1 / 3, abs=1e-4)
    assert result.kappa is not None and result.kappa < 0
    # Seeds that agree: every label at full confidence.
    same = consensus([gold, list(gold)])
    assert same.labels == gold and same.confidence == [1.0] * 6 and same.agreement == 1.0 and same.kappa == 1.0
    # Ties (two seeds) go to the pick's label; an example no seed labeled stays unlabeled.
    tied = consensus([[True, None], [False, None]], pick=1)
    assert tied.labels == [False, None] and tied.confidence == [0.5, None]
    with pytest.raises(ValueError, match="same examples"):
        consensus([[True], [True, False]])
