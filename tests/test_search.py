from __future__ import annotations

import json
import math
import random
import re

import pytest

from icm_engine.consistency import ConsistencyRule
from icm_engine.examples import Example
from icm_engine.presets import get_task, load_dataset
from icm_engine.scoring import Scorer, energy, signed_mean
from icm_engine.search import ICMConfig, ICMSearch, accept_probability, make_batches
from icm_engine.search.semantics import PaperSemantics

from .fakes import TEMPLATE, WORDS, FakeBackend, TableBackend

TASK = get_task("claims", template=TEMPLATE, label_words=WORDS, consistency="key:answer", channel_target=" {text}",
                likelihood_prefix="Item:")


def make_examples(n_groups: int = 8, per_group: int = 2, seed: int = 1) -> tuple[list[Example], list[bool]]:
    """Groups of claims with different answers; one per group is 'pos' (true)."""
    rng = random.Random(seed)
    examples, gold = [], []
    for g in range(n_groups):
        truth = rng.randrange(per_group)
        for k in range(per_group):
            uid = len(examples)
            marker = "pos" if k == truth else "neg"
            ex = Example(uid=uid, id=f"e{uid}", fields={"text": f"{marker} item {uid}", "answer": f"a{k}"},
                         group=f"g{g}")
            examples.append(Example(uid, ex.id, ex.fields, ex.group, TASK.consistency_key(ex)))
            gold.append(k == truth)
    return examples, gold


def run(examples, config, backend=None, **kw):
    backend = backend or FakeBackend()
    return ICMSearch(examples, TASK, backend, config, **kw).run(), backend


def test_accept_probability():
    assert accept_probability(0.5, 1.0) == 1.0
    assert accept_probability(-1.0, 2.0) == pytest.approx(math.exp(-0.5))
    assert accept_probability(-1e9, 0.01) == 0.0
    assert accept_probability(1e9, 0.01) == 1.0  # no overflow


def test_acceptance_frequency_matches_exp():
    rng = random.Random(0)
    draws = [rng.random() < accept_probability(-1.0, 1.0) for _ in range(20000)]
    assert abs(sum(draws) / len(draws) - math.exp(-1)) < 0.015


def test_icm_finds_the_coherent_labels_and_is_deterministic():
    examples, gold = make_examples(10)
    cfg = ICMConfig(iterations=120, seed=3)
    result, _backend = run(examples, cfg)
    acc = sum(y == g for y, g in zip(result.labels, gold, strict=True) if y is not None) / len(gold)
    assert all(y is not None for y in result.labels)
    assert acc >= 0.9 or acc <= 0.1  # coherent up to global polarity
    again, _ = run(examples, cfg)
    assert again.labels == result.labels and again.scores == result.scores
    other, _ = run(examples, ICMConfig(iterations=120, seed=4))
    assert other.stats.model_calls > 0


def test_final_labels_are_consistent():
    examples, _ = make_examples(10, per_group=3)
    result, _ = run(examples, ICMConfig(iterations=150, seed=1))
    assert ConsistencyRule(examples, TASK.consistency).count(result.labels) == 0


def test_consistency_fix_removes_conflicts_when_an_option_exists():
    examples, _ = make_examples(6, per_group=3)
    search = ICMSearch(examples, TASK, FakeBackend(), ICMConfig(alpha=0.01, seed=0))
    search.setup_batch()
    labels = [True] * len(examples)  # every group in conflict
    u, scores, conflicts = search.evaluate(labels)
    assert conflicts > 0
    fixed, fixed_u, _ = PaperSemantics().fix(search, labels, u, scores)
    # With a tiny alpha every repair is a strict improvement, so each round adopts one.
    assert search.rule.count(fixed) < conflicts and fixed_u > u
    search.config.fix_steps = 100
    fixed, _, _ = PaperSemantics().fix(search, labels, u, scores)
    assert search.rule.count(fixed) == 0


def test_no_gold_reaches_prompts_keys_or_init(tmp_path):
    """Two files that differ only in their gold labels give identical prompts, keys and labels."""
    examples, gold = make_examples(6)
    for name, labels in (("a.jsonl", gold), ("b.jsonl", [not g for g in gold])):
        rows = [dict(ex.fields, id=ex.id, consistency_id=ex.group, label=y) for ex, y in zip(examples, labels,
                                                                                         strict=True)]
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs = []
    for name in ("a.jsonl", "b.jsonl"):
        data = load_dataset(tmp_path / name, TASK)
        assert all("label" not in ex.fields for ex in data.examples)
        backend = FakeBackend(record=True)
        result = ICMSearch(data.examples, TASK, backend, ICMConfig(iterations=40, seed=0)).run()
        runs.append((data.gold, [ex.key for ex in data.examples], backend.prompts, result.labels))
    assert runs[0][0] != runs[1][0]
    assert runs[0][1:] == runs[1][1:]


def _stopped_and_resumed(examples, cfg, stop_at: int):
    """A run stopped after `stop_at` stop checks, and the run resumed from its checkpoint (as plain data)."""
    count = [0]

    def stop():
        count[0] += 1
        return count[0] > stop_at

    search = ICMSearch(examples, TASK, FakeBackend(), cfg)
    partial = search.run(should_stop=stop)
    checkpoint = json.loads(json.dumps(search.checkpoint()))
    return partial, ICMSearch(examples, TASK, FakeBackend(), cfg, checkpoint=checkpoint).run()


def test_resume_equals_uninterrupted():
    examples, _ = make_examples(12)
    cfg = ICMConfig(iterations=60, seed=5, batch_size=12)
    events: list = []
    full, _ = run(examples, cfg, on_event=events.append)
    for stop_at in (1, 17, 60, 75):
        partial, resumed = _stopped_and_resumed(examples, cfg, stop_at)
        assert not partial.complete
        assert resumed.complete
        assert resumed.labels == full.labels and resumed.scores == full.scores
        assert resumed.accepted == full.accepted and resumed.rejected == full.rejected


def test_shards_of_the_batches_give_the_labels_of_one_whole_run():
    examples, _ = make_examples(12)
    cfg = ICMConfig(iterations=30, seed=4, batch_size=6)
    whole, _ = run(examples, cfg)
    n_batches = len(make_batches(examples, cfg.batch_size))
    assert n_batches == 4
    merged: list = [None] * len(examples)
    # Shards in reverse order: nothing carries over from one batch to the next.
    for lo, hi in ((3, 4), (1, 3), (0, 1)):
        part, _ = run(examples, cfg, batch_range=(lo, hi))
        mine = [u for b in range(lo, hi) for u in make_batches(examples, cfg.batch_size)[b]]
        assert all((y is None) == (u not in mine) for u, y in enumerate(part.labels))
        for u in mine:
            merged[u] = (part.labels[u], part.scores[u])
    assert merged == list(zip(whole.labels, whole.scores, strict=True))
    with pytest.raises(ValueError, match="outside"):
        ICMSearch(examples, TASK, FakeBackend(), cfg, batch_range=(2, 5))


def test_a_shard_resumes_only_its_own_checkpoint():
    examples, _ = make_examples(12)
    cfg = ICMConfig(iterations=20, seed=4, batch_size=6)
    search = ICMSearch(examples, TASK, FakeBackend(), cfg, batch_range=(1, 3))
    count = [0]

    def stop():
        count[0] += 1
        return count[0] > 25

    assert not search.run(should_stop=stop).complete
    checkpoint = json.loads(json.dumps(search.checkpoint()))
    resumed = ICMSearch(examples, TASK, FakeBackend(), cfg, checkpoint=checkpoint, batch_range=(1, 3)).run()
    straight, _ = run(examples, cfg, batch_range=(1, 3))
    assert resumed.labels == straight.labels
    with pytest.raises(ValueError, match="range of batches"):
        ICMSearch(examples, TASK, FakeBackend(), cfg, checkpoint=checkpoint, batch_range=(0, 3))


def test_checkpoint_refuses_other_data():
    examples, _ = make_examples(4)
    search = ICMSearch(examples, TASK, FakeBackend(), ICMConfig(iterations=5))
    search.run()
    other, _ = make_examples(5)
    with pytest.raises(ValueError, match="other examples"):
        ICMSearch(other, TASK, FakeBackend(), ICMConfig(iterations=5), checkpoint=search.checkpoint())
    with pytest.raises(ValueError, match="hyperparameters"):
        ICMSearch(examples, TASK, FakeBackend(), ICMConfig(iterations=6), checkpoint=search.checkpoint())


def test_batches_are_whole_groups_and_prompts_stay_in_their_batch():
    examples, _ = make_examples(10, per_group=3)
    batches = make_batches(examples, 7)
    assert [len(b) for b in batches] == [6, 6, 6, 6, 6]
    backend = FakeBackend(record=True)
    events: list = []
    result, _ = run(examples, ICMConfig(iterations=15, batch_size=7, seed=2), backend, on_event=events.append)
    assert {e.batch for e in events if e.kind == "batch_done"} == set(range(5))
    batch_of = {f"item {u}": b for b, uids in enumerate(batches) for u in uids}
    for prompt in backend.prompts:
        items = {b for text, b in batch_of.items() if text + "\n" in prompt}
        assert len(items) == 1
    assert all(s is not None for s in result.scores)


def test_reference_mode_hand_computed():
    """Three items with fixed log-odds; U = alpha * mean signed log-odds - conflicts."""
    examples = [Example(i, i, {"text": t, "answer": a}, "g", None)
                for i, (t, a) in enumerate([("x", "1"), ("y", "2"), ("z", "3")])]
    examples = [Example(e.uid, e.id, e.fields, e.group, TASK.consistency_key(e)) for e in examples]
    backend = TableBackend({"x": 2.0, "y": -1.0, "z": 0.5})
    scorer = Scorer(TASK, backend, examples, reference=True)
    labels = [True, False, True]
    scores = scorer.loo(labels, [0, 1, 2])
    assert list(scores) == [2.0, -1.0, 0.5]
    rule = ConsistencyRule(examples, TASK.consistency)
    conflicts = rule.count(labels)
    assert conflicts == 1  # x and z: different answers, both True
    assert energy(labels, list(scores), alpha=50, conflicts=conflicts) == pytest.approx(50 * (2.0 + 1.0 + 0.5) / 3 - 1)
    # Reference cost: one model call per prompt, no caching.
    assert backend.stats.model_calls == 3
    scorer.loo(labels, [0, 1, 2])
    assert backend.stats.model_calls == 6
    # The code's temperature schedule counts accepted flips: T = T0 / (1 + 2 ln(1 + flips)).
    search = ICMSearch(examples, TASK, backend, ICMConfig(mode="reference"))
    search.state.flips_in_batch = 100
    assert search.temperature() == pytest.approx(10 / (1 + 2 * math.log(101)))
    search = ICMSearch(examples, TASK, backend, ICMConfig())
    search.state.iteration = 100
    assert search.temperature() == pytest.approx(10 / (1 + 0.99 * math.log(100)))


def test_reference_and_batched_score_the_same_prompts_alike():
    examples, _ = make_examples(5)
    labels = [True, False] * 5
    ref = Scorer(TASK, FakeBackend(), examples, reference=True).loo(labels, range(10))
    backend = FakeBackend()
    fast = Scorer(TASK, backend, examples).loo(labels, range(10))
    assert list(ref) == pytest.approx(list(fast))
    assert backend.stats.model_calls == 1  # one batched call for the whole evaluation


def test_events_are_typed_and_counted():
    examples, _ = make_examples(5)
    events: list = []
    run(examples, ICMConfig(iterations=20), on_event=events.append)
    kinds = [e.kind for e in events]
    assert kinds[0] == "init" and kinds[-1] == "done" and kinds.count("iteration") == 20
    its = [e for e in events if e.kind == "iteration"]
    assert [e.iteration for e in its] == list(range(1, 21))
    assert all(e.stats.model_calls >= 1 and e.temperature > 0 for e in its)
    assert its[-1].accepted_total + its[-1].rejected_total <= 20


def test_reference_mode_runs_and_counts_one_call_per_prompt():
    examples, _ = make_examples(4)
    # Without the orientation after the search: its two signals are one call each, whatever the mode.
    result, backend = run(examples, ICMConfig(iterations=20, mode="reference", seed=1, orient="none"))
    assert backend.stats.model_calls == backend.stats.prompts
    assert any(y is not None for y in result.labels)


def test_config_validation():
    with pytest.raises(ValueError, match="alpha"):
        ICMConfig(alpha=-1).validate()
    with pytest.raises(ValueError, match="unknown settings"):
        ICMConfig.from_dict({"alpah": 3})


def test_calibration_removes_shared_bias():
    scores = [5.0, 4.0, 6.0, 5.0]
    # A readout biased toward True by +5: uncalibrated, the one-class labeling looks best.
    assert signed_mean([True] * 4, scores) == 5.0
    assert signed_mean([True] * 4, scores, calibrate=True) == 0.0
    # Calibrated, P = 2 n_T n_F / N^2 * (mean_T - mean_F).
    labels = [False, False, True, False]
    assert signed_mean(labels, scores, calibrate=True) == pytest.approx(2 * 1 * 3 / 16 * (6.0 - 14 / 3))


def test_calibrated_search_runs_and_resumes():
    examples, _ = make_examples(6)
    cfg = ICMConfig(iterations=30, seed=2, calibrate=True)
    full, _ = run(examples, cfg)
    search = ICMSearch(examples, TASK, FakeBackend(), cfg)
    search.run(should_stop=lambda: search.state.iteration >= 11)
    resumed = ICMSearch(examples, TASK, FakeBackend(), cfg, checkpoint=json.loads(json.dumps(search.checkpoint())))
    assert resumed.run().labels == full.labels


def test_checkpoint_that_says_calls_resumes_with_its_count():
    # Checkpoints written before the counter was named model_calls keep theirs.
    examples, _ = make_examples(6)
    cfg = ICMConfig(iterations=30, seed=2)
    full, _ = run(examples, cfg)
    search = ICMSearch(examples, TASK, FakeBackend(), cfg)
    search.run(should_stop=lambda: search.state.iteration >= 11)
    checkpoint = json.loads(json.dumps(search.checkpoint()))
    checkpoint["stats"]["calls"] = checkpoint["stats"].pop("model_calls")
    resumed = ICMSearch(examples, TASK, FakeBackend(), cfg, checkpoint=checkpoint).run()
    assert resumed.labels == full.labels and resumed.stats.model_calls == full.stats.model_calls


def test_counters_survive_stop_and_continue():
    examples, _ = make_examples(6)
    cfg = ICMConfig(iterations=30, seed=1)
    full, _ = run(examples, cfg)
    search = ICMSearch(examples, TASK, FakeBackend(), cfg)
    search.run(should_stop=lambda: search.state.iteration >= 12)
    again = search.run()
    assert again.labels == full.labels
    assert again.stats.model_calls == full.stats.model_calls and again.iterations == full.iterations == 30


def test_zero_shot_init_labels_the_higher_scored_half_true():
    examples, gold = make_examples(8)
    events: list = []
    search = ICMSearch(examples, TASK, FakeBackend(noise=0.0), ICMConfig(iterations=0, init="zero-shot", num_seed=6),
                       on_event=events.append)
    search.setup_batch()
    search.rng.seed("0:0")
    search.init_batch()
    seeded = [(y, g) for y, g in zip(search.state.labels, gold, strict=True) if y is not None]
    assert sum(y for y, _ in seeded) == 3  # balanced, as the paper's random init
    # The fake's zero-shot score is the example's marker, so zero-shot seeds agree with it.
    assert all(y == g for y, g in seeded)


def test_context_cap_keeps_a_fixed_short_context_per_target():
    examples, _gold = make_examples(12)
    scorer = Scorer(TASK, FakeBackend(), examples, context_cap=5)
    labels = [True, False] * 12
    labeled = [(p, y) for p, y in enumerate(labels)]
    demos = scorer.demos_for(3, labeled)
    assert len(demos) == 5 and all(p != 3 for p, _ in demos)
    assert [p for p, _ in demos] == sorted(p for p, _ in demos)  # position order: prefixes stay shared
    # A label change elsewhere leaves the choice alone; the same target always gets the same examples.
    flipped = list(labels)
    outside = next(p for p in range(24) if p != 3 and p not in {q for q, _ in demos})
    flipped[outside] = not flipped[outside]
    assert [p for p, _ in scorer.demos_for(3, list(enumerate(flipped)))] == [p for p, _ in demos]
    # Under the cap, everything visible is shown.
    assert len(Scorer(TASK, FakeBackend(), examples, context_cap=50).demos_for(3, labeled)) == 23


def test_context_cap_rescores_only_the_targets_that_show_a_change():
    examples, _ = make_examples(12)
    backend = FakeBackend()
    scorer = Scorer(TASK, backend, examples, context_cap=4)
    labels = [True, False] * 12
    scorer.loo(labels, range(24))
    before = backend.stats.prompts
    labels[5] = not labels[5]
    scorer.loo(labels, range(24))
    showing = sum(1 for t in range(24) if 5 in {p for p, _ in scorer.demos_for(t, list(enumerate(labels)))})
    assert backend.stats.prompts - before == showing  # only those targets: all other prompts are cached
    assert showing < 12


def test_context_cap_is_validated_and_reaches_the_search():
    with pytest.raises(ValueError, match="context_cap"):
        ICMConfig(context_cap=0).validate()
    examples, _gold = make_examples(6)
    result, _backend = run(examples, ICMConfig(iterations=30, context_cap=3, seed=1))
    assert sum(y is not None for y in result.labels) > 3


def test_batched_is_the_old_name_of_fast():
    assert ICMConfig(mode="batched").validate().mode == "fast"


def test_backend_stats_arithmetic_covers_every_counter():
    # The counters' arithmetic names each field (for speed): a new counter must be added to it.
    from dataclasses import fields

    from icm_engine.backends.base import BackendStats

    names = [f.name for f in fields(BackendStats)]
    a = BackendStats(*range(10, 10 + len(names)))
    b = BackendStats(*range(1, 1 + len(names)))
    assert list(a.as_dict()) == names and list(a.as_dict().values()) == list(range(10, 10 + len(names)))
    assert a.minus(b) == BackendStats(*[9] * len(names))
    assert a.plus(b).minus(b) == a and a.copy() == a and a.copy() is not a


def _accuracy(labels, gold) -> float:
    return sum(y == g for y, g in zip(labels, gold, strict=True) if y is not None) / len(gold)


def test_likelihood_anchor_seeds_follow_the_models_preference_within_each_group():
    examples, gold = make_examples(8)
    search = ICMSearch(examples, TASK, FakeBackend(noise=0.0), ICMConfig(iterations=0, anchor="likelihood", num_seed=6))
    search.setup_batch()
    search.rng.seed("0:0")
    search.init_batch()
    seeded = [(y, g) for y, g in zip(search.state.labels, gold, strict=True) if y is not None]
    assert len(seeded) == 6 and sum(y for y, _ in seeded) == 3
    assert all(y == g for y, g in seeded)
    # Centred per group: each pair's two anchors are opposite, whatever the claims' lengths.
    for g in range(8):
        a, b = (search.state.anchor[p] for p, ex in enumerate(examples) if ex.group == f"g{g}")
        assert a == pytest.approx(-b)


def _finished(examples, labels, orient: str, complete: bool = False):
    """A search whose batch has the given labels and no iterations left: run() only finishes the batch."""
    search = ICMSearch(examples, TASK, FakeBackend(), ICMConfig(iterations=0, seed=0, orient=orient, complete=complete))
    search.setup_batch()
    search.state.labels = list(labels)
    search.state.initialized = True
    return search.run()


def test_the_likelihood_names_the_classes_of_a_mirror_image():
    examples, gold = make_examples(10)
    mirror = [not g for g in gold]
    mirror[3] = None  # left unlabeled (no completion here): its score flips with the rest
    plain = _finished(examples, mirror, "none")
    oriented = _finished(examples, mirror, "likelihood")
    assert plain.flipped_batches == [] and plain.labels == mirror
    assert plain.orientation == [{"batch": 0, "signal": "none", "flipped": False, "decided": False, "z": 0.0,
                                  "p": 1.0, "signals": {}}]
    assert oriented.flipped_batches == [0]
    assert oriented.labels == [None if y is None else not y for y in mirror]
    assert plain.scores[3] is not None and oriented.scores[3] == pytest.approx(-plain.scores[3])
    (where,) = oriented.orientation
    assert where["signal"] == "likelihood" and where["flipped"] and where["decided"]
    # Its agreement is with the labels as returned: positive once they are turned over.
    assert where["signals"]["likelihood"]["r"] > 0.9 and where["signals"]["likelihood"]["p"] < 0.01
    # The truth itself is left as it is.
    assert _finished(examples, gold, "likelihood").flipped_batches == []


def test_an_anchored_run_ends_the_right_way_round_and_resumes_exactly():
    examples, gold = make_examples(12)
    cfg = ICMConfig(iterations=60, seed=5, batch_size=12, anchor="likelihood")
    full, _ = run(examples, cfg)
    assert _accuracy(full.labels, gold) >= 0.9
    for stop_at in (0, 1, 30, 60):
        _, resumed = _stopped_and_resumed(examples, cfg, stop_at)
        assert resumed.labels == full.labels and resumed.scores == full.scores
        assert resumed.flipped_batches == full.flipped_batches


def test_a_checkpoint_from_before_the_anchor_option_still_resumes():
    examples, _ = make_examples(6)
    cfg = ICMConfig(iterations=20, seed=2)
    search = ICMSearch(examples, TASK, FakeBackend(), cfg)
    search.run(should_stop=lambda: search.state.iteration >= 5)
    checkpoint = json.loads(json.dumps(search.checkpoint()))
    for key in ("anchor", "flipped_batches"):
        del checkpoint[key]
    del checkpoint["config"]["anchor"]
    resumed = ICMSearch(examples, TASK, FakeBackend(), cfg, checkpoint=checkpoint).run()
    assert resumed.labels == run(examples, cfg)[0].labels


def test_anchor_and_zero_shot_init_are_exclusive():
    with pytest.raises(ValueError, match="anchor"):
        ICMConfig(anchor="likelihood", init="zero-shot").validate()
    with pytest.raises(ValueError, match="anchor must be one of"):
        ICMConfig(anchor="gold").validate()


def test_labeled_demo_order_puts_demonstrations_in_the_order_they_were_labeled():
    examples, _ = make_examples(10)
    cfg = ICMConfig(iterations=40, seed=2, demo_order="labeled", complete=False)
    search = ICMSearch(examples, TASK, FakeBackend(record=True), cfg)
    result = search.run()
    order = search.state.labeled_order
    assert sorted(order) == [u for u, y in enumerate(result.labels) if y is not None]
    assert order != sorted(order)  # the search labeled them out of position order, so the test can tell
    rank = {u: r for r, u in enumerate(order)}
    shown = 0
    for prompt in search.backend.prompts:
        uids = [int(m) for m in re.findall(r"item (\d+)", prompt)[:-1]]  # the last one is the target
        known = [u for u in uids if u in rank]
        # Labeled examples come in labeling order; one not yet ranked (the candidate's new label) comes last.
        assert known == sorted(known, key=rank.get)
        assert uids[: len(known)] == known
        shown += len(uids) > 2
    assert shown > 10
    _, resumed = _stopped_and_resumed(examples, cfg, 15)
    assert resumed.labels == result.labels and resumed.scores == result.scores
    with pytest.raises(ValueError, match="reference mode"):
        ICMConfig(mode="reference", demo_order="labeled").validate()


def test_the_fast_scorer_under_the_codes_semantics_finds_the_references_labels():
    """Only the scorer differs: the same prompts get the same scores, so the search takes the same path."""
    examples, _ = make_examples(10, per_group=3)
    for seed in (0, 1, 2):
        ref, ref_backend = run(examples, ICMConfig(iterations=60, seed=seed, mode="reference"))
        fast, fast_backend = run(examples, ICMConfig(iterations=60, seed=seed, semantics="code"))
        assert fast.labels == ref.labels and fast.accepted == ref.accepted and fast.rejected == ref.rejected
        assert fast.scores == pytest.approx(ref.scores)
        assert fast_backend.stats.model_calls < ref_backend.stats.model_calls
        assert fast_backend.stats.prompts < ref_backend.stats.prompts  # scores cached by prompt content
    with pytest.raises(ValueError, match="semantics"):
        ICMConfig(mode="reference", semantics="paper").validate()


class _WrongOnFirstGroups(FakeBackend):
    """In-context verdicts that invert the truth on the first three groups (uids 0-5), while the likelihood
    anchor (inherited) still prefers each group's true claim."""

    def _odds(self, prompt: str) -> float:
        target = prompt.split("\n\n")[-1]
        uid = int(re.search(r"item (\d+)", target).group(1))
        return -super()._odds(prompt) if uid < 6 else super()._odds(prompt)


def test_the_anchor_weight_adds_the_anchors_signed_mean_to_u():
    examples, gold = make_examples(6)
    labels = list(gold)
    labels[4] = None
    labels[0] = labels[1] = True  # one group's two answers both True: a conflict
    # Not normalized, so the term is in nats as written below; an anchor "likelihood" counts from the start.
    plain = ICMSearch(examples, TASK, FakeBackend(), ICMConfig(iterations=0, anchor="likelihood", anchor_weight=0.0,
                                                               normalize=False))
    weighted = ICMSearch(examples, TASK, FakeBackend(), ICMConfig(iterations=0, anchor="likelihood", anchor_weight=0.5,
                                                                  normalize=False))
    for s in (plain, weighted):
        s.setup_batch()
        s.state.anchor_factor = 1.0
    u0, scores0, conflicts = plain.evaluate(labels)
    u1, scores1, _ = weighted.evaluate(labels)
    assert scores1 == pytest.approx(scores0) and conflicts == 1
    anchor = weighted._batch_anchor()
    signed = [a if y else -a for y, a in zip(labels, anchor, strict=True) if y is not None]
    assert u1 - u0 == pytest.approx(50.0 * 0.5 * sum(signed) / len(signed))
    assert energy(labels, scores0, alpha=50.0, conflicts=conflicts, prior=anchor, prior_weight=0.0) == pytest.approx(u0)


def test_a_weighted_anchor_overrules_in_context_verdicts_that_contradict_it():
    examples, gold = make_examples(12)
    cfg = dict(iterations=150, seed=3, batch_size=24, anchor="likelihood")
    unweighted, _ = run(examples, ICMConfig(**cfg, anchor_weight=0.0), _WrongOnFirstGroups(noise=0.0))
    weighted, _ = run(examples, ICMConfig(**cfg, anchor_weight=5.0), _WrongOnFirstGroups(noise=0.0))
    first = range(6)
    # Without the term the search follows the model's in-context verdicts on the first groups (wrong).
    assert sum(unweighted.labels[p] == gold[p] for p in first) <= 2
    # Weighted, the term rejects the wrong verdicts. It cannot propose the other label (proposals are the
    # model's argmax), so some of those examples stay unlabeled; every one labeled is right.
    labeled = [p for p in range(len(gold)) if weighted.labels[p] is not None]
    assert all(weighted.labels[p] == gold[p] for p in labeled)
    assert sum(p in first for p in labeled) >= 3 and len(labeled) >= 18


def test_anchor_weight_is_validated():
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="anchor_weight must be"):
            ICMConfig(anchor="likelihood", anchor_weight=bad).validate()
    assert ICMConfig.from_dict({"anchor": "likelihood", "anchor_weight": 2}).anchor_weight == 2


def test_the_result_names_the_anchor_the_search_used():
    examples, _ = make_examples(4)
    assert run(examples, ICMConfig(iterations=5, seed=0))[0].anchor == "agreeing"  # the paper semantics' own
    assert run(examples, ICMConfig(iterations=5, seed=0, anchor="likelihood"))[0].anchor == "likelihood"
    assert run(examples, ICMConfig(iterations=5, seed=0, mode="reference"))[0].anchor == "none"
