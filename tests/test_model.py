"""Tests with the real packaged default model (Gemma 3 270M base, transformers on CPU)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from icm_engine.backends.hf import resolve_model_dir
from icm_engine.presets import get_task, load_dataset
from icm_engine.scoring import Scorer

from .conftest import ROOT, SANITY

pytestmark = pytest.mark.model

PROMPTS = [
    "Question: Is the following claim true?\nClaim: The capital of France is Paris.\nI think this claim is",
    "Question: Is the following claim true?\nClaim: The capital of France is Tokyo.\nI think this claim is",
    "Claim: A cow says moo.\nThis claim is",
]


def test_default_model_is_cached_after_first_load(real_backend):
    folder = resolve_model_dir("gemma3-270m")
    assert (folder / "model.safetensors").exists() and (folder / "config.json").exists()
    assert real_backend.label_token_id(" True") != real_backend.label_token_id(" False")


def test_batching_does_not_change_scores(real_backend):
    words = [" True", " False"]
    batched = real_backend.label_logprobs(PROMPTS, words)
    single = np.vstack([real_backend.label_logprobs([p], words) for p in PROMPTS])
    assert batched.shape == (3, 2)
    assert np.all(batched < 0)
    tol = 1e-4 if real_backend.dtype == "float32" else 0.2
    np.testing.assert_allclose(batched, single, atol=tol)
    pairs = (["True claim:", "False claim:"], [" The capital of France is Paris."] * 2)
    both = real_backend.continuation_logprobs(*pairs)
    one = [real_backend.continuation_logprobs([p], [c])[0] for p, c in zip(*pairs, strict=True)]
    np.testing.assert_allclose(both, one, atol=tol * 10)


def test_counts_tokens(real_backend):
    before = real_backend.stats.copy()
    real_backend.label_logprobs(PROMPTS[:2], [" True", " False"])
    delta = real_backend.stats.minus(before)
    assert delta.model_calls == 1 and delta.prompts == 2
    assert delta.prompt_tokens == sum(len(real_backend.encode(p)) for p in PROMPTS[:2])


def test_cache_and_scorer_agree_with_the_backend(real_backend):
    task = get_task("claims", template="Claim: {choice}\nThis claim is", consistency="key:answer")
    data = load_dataset(SANITY / "claims_dev.jsonl", task, limit=6)
    scorer = Scorer(task, real_backend, data.examples)
    labels = [True, False, None, True, False, None]
    first = scorer.loo(labels, [0, 1, 3, 4])
    before = real_backend.stats.copy()
    again = scorer.loo(labels, [0, 1, 3, 4])
    assert real_backend.stats.minus(before).model_calls == 0  # all from the content cache
    np.testing.assert_array_equal(first, again)
    prompt = scorer.context([(1, False), (3, True), (4, False)]) + task.render(data.examples[0])
    direct = real_backend.label_logprobs([prompt], list(task.label_words))[0]
    assert first[0] == pytest.approx(direct[0] - direct[1], abs=1e-4 if real_backend.dtype == "float32" else 0.2)


def test_icm_label_end_to_end(tmp_path):
    """`icm label` with the real default model on a small slice of the shipped sanity set."""
    out, report = tmp_path / "labels.jsonl", tmp_path / "report.json"
    cmd = [sys.executable, "-m", "icm_engine.cli", "label", str(SANITY / "claims_test.jsonl"), "--task", "claims",
           "--consistency", "key:answer", "--readout", "split", "--context", "other-groups", "--calibrate",
           "--limit", "8",
           "--iterations", "6", "--num-seed", "4", "--seed", "1", "--quiet", "--out", str(out), "--report", str(report)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    source = [json.loads(line) for line in (SANITY / "claims_test.jsonl").read_text().splitlines()][:8]
    assert [r["id"] for r in rows] == [s["id"] for s in source]
    assert all(r["label"] in (True, False, None) for r in rows)
    assert all(isinstance(r["score"], float) for r in rows)
    rep = json.loads(report.read_text())
    assert rep["n"] == 8 and rep["labeled"] >= 4
    assert 0.0 <= rep["accuracy"] <= 1.0
    assert rep["model_calls"] > 0 and rep["computed_tokens"] > 0 and rep["wall_s"] > 0
    assert rep["backend"]["model"] == "gemma3-270m"


def test_baseline_and_evaluate_commands(tmp_path):
    """`icm baseline` then `icm evaluate` with the baseline's labels as demonstrations."""
    common = ["--task", "claims", "--consistency", "key:answer", "--readout", "split", "--context", "other-groups"]
    labels, report = tmp_path / "zs.jsonl", tmp_path / "zs.json"
    cmd = [sys.executable, "-m", "icm_engine.cli", "baseline", str(SANITY / "claims_dev.jsonl"), "--method",
           "zero-shot", *common, "--calibrate", "--limit", "8", "--quiet",
           "--out", str(labels), "--report", str(report)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads(report.read_text())
    assert rep["method"] == "zero-shot" and rep["labeled"] == 8 and rep["calibrate"] is True
    rows = [json.loads(line) for line in labels.read_text().splitlines()]
    # Calibrated: scores are centred, so both labels occur.
    assert {r["label"] for r in rows} == {True, False}
    train = tmp_path / "train.jsonl"
    train.write_text("".join(line + "\n" for line in (SANITY / "claims_dev.jsonl").read_text().splitlines()[:8]))
    ev = tmp_path / "ev.json"
    cmd = [sys.executable, "-m", "icm_engine.cli", "evaluate", str(SANITY / "claims_test.jsonl"),
           "--train", str(train), "--labels", str(labels), *common, "--calibrate", "--limit", "6", "--quiet",
           "--report", str(ev)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(ev.read_text())
    assert out["n"] == 6 and out["demonstrations"] == 8 and 0 <= out["accuracy"] <= 1


def test_golden_labels_beat_random_labels_under_the_sanity_framing(real_backend):
    """The framing finding of docs/engine.md, on the dev half it was chosen on: golden in-context labels
    must carry clear signal over random ones (measured: AUROC 0.86 vs 0.54 on these 40 claims)."""
    from icm_engine.baselines import BaselineConfig, run_baseline
    from icm_engine.metrics import label_metrics

    task = get_task("claims", consistency="key:answer")
    data = load_dataset(SANITY / "claims_dev.jsonl", task, limit=40, readout="split")
    gold = data.gold_list()
    auroc = {}
    for method in ("gold-icl", "random-icl"):
        res = run_baseline(method, data.examples, task, real_backend,
                           BaselineConfig(readout="split", context="other-groups"), gold=gold)
        auroc[method] = label_metrics(res.labels, gold, res.scores)["auroc"]
    assert auroc["gold-icl"] >= 0.75
    assert auroc["gold-icl"] >= auroc["random-icl"] + 0.15


def test_the_likelihood_anchor_knows_which_claim_of_a_group_is_true(real_backend):
    """The anchor's finding on the dev half it was chosen on, after the claim's question (measured: 0.90 of the
    70 groups, AUROC 0.79, where the split readout's own zero-shot is at chance): no labels, one model call.
    Since then the presets score the claim alone (the test below)."""
    from icm_engine.baselines import run_baseline
    from icm_engine.metrics import label_metrics

    task = get_task("claims", consistency="key:answer", likelihood_prefix="Question: {question}\nAnswer:")
    data = load_dataset(SANITY / "claims_dev.jsonl", task, limit=40, readout="split", anchor=True)
    gold = data.gold_list()
    res = run_baseline("likelihood", data.examples, task, real_backend)
    assert res.stats.model_calls == 1
    pairs = {}
    for ex, y in zip(data.examples, res.labels, strict=True):
        pairs.setdefault(ex.group, []).append(y)
    assert all(sorted(ys) == [False, True] for ys in pairs.values())  # centred per group: one of each
    assert label_metrics(res.labels, gold, res.scores)["accuracy"] >= 0.75


@pytest.mark.parametrize("preset", ["truthfulqa", "claims"])
def test_the_likelihood_reads_the_claim_not_the_order_of_the_questions_options(real_backend, preset):
    """After "Question: Which is larger, A or B?" the claim's likelihood follows the option the question names
    first, whatever the truth: where questions name the false option first more often, it names the classes
    backwards. The presets score the claim alone (docs/defaults.md has the figures on every dev file)."""
    from dataclasses import replace

    from icm_engine.anchor import likelihood_anchor
    from icm_engine.orientation import agreement

    task = get_task(preset)
    data = load_dataset(ROOT / "data" / "comparisons" / "comparisons_dev.jsonl", task, readout="split")
    named_first = [ex.fields["question"].lower().find(ex.fields["answer"].lower())
                   < ex.fields["question"].lower().rfind(" or ") for ex in data.examples]
    claim = likelihood_anchor(task, real_backend, data.examples)
    with_gold = agreement(claim, data.gold_list())
    assert with_gold.decisive and with_gold.r > 0
    assert abs(agreement(claim, named_first).r) < 0.5
    asked = likelihood_anchor(replace(task, likelihood_prefix="Question: {question}\nAnswer:"), real_backend,
                              data.examples)
    assert agreement(asked, named_first).r > 0.5 > abs(agreement(asked, data.gold_list()).r)


@pytest.fixture(scope="module")
def float32_backend():
    from icm_engine.backends import get_backend

    return get_backend("transformers", dtype="float32")


def test_shared_prefixes_give_the_same_scores_for_fewer_tokens(float32_backend):
    b = float32_backend
    task = get_task("claims", consistency="key:answer")
    data = load_dataset(SANITY / "claims_dev.jsonl", task, limit=10)
    labels = [i % 3 != 0 for i in range(len(data.examples))]
    results = {}
    for share in (False, True):
        b.share_prefixes = share
        b.reset_prefix_cache()
        # The continuation readout with fold contexts: the targets of a fold share each context whole (stored
        # once, then every continuation over it in wide passes).
        for readout, context in (("verdict", "all"), ("split", "other-groups"), ("split", "other-folds")):
            scorer = Scorer(task, b, data.examples, readout=readout, context_policy=context, folds=2)
            before = b.stats.copy()
            if readout == "split":
                b.share_continuations = share
            values = scorer.loo(labels, range(len(labels)))
            delta = b.stats.minus(before)
            results[share, readout, context] = (values, delta.computed_tokens, delta.prompt_tokens)
    b.share_prefixes, b.share_continuations = True, True
    for key in (("verdict", "all"), ("split", "other-groups"), ("split", "other-folds")):
        full, shared = results[(False, *key)], results[(True, *key)]
        np.testing.assert_allclose(shared[0], full[0], atol=1e-3)  # float32: rounding only
        assert shared[2] == full[2] and full[1] == full[2]
        assert shared[1] < 0.75 * full[1]  # leave-one-out prompts share long prefixes


def test_continuation_logprobs_are_the_models_own_per_token_logprobs(float32_backend):
    """The vocabulary head reads the rows of many continuations together, in chunks that straddle them:
    each sum must still be its own continuation's, as the model's plain forward pass gives it."""
    import torch

    b = float32_backend
    prefixes = ["Question: What is the capital of France?\nTrue answer:", "The sky is", "Two plus two is",
                "Question: Which ocean is largest?\nFalse answer:"]
    claims = [" Paris is the capital of France.", " green", " four, as everyone knows", " The Pacific Ocean."]
    expected = []
    with torch.inference_mode():
        for p, c in zip(prefixes, claims, strict=True):
            seq, start = b.encode_pair(p, c)
            logp = torch.log_softmax(b.model(input_ids=torch.tensor([seq])).logits[0].float(), dim=-1)
            expected.append(sum(float(logp[t - 1, seq[t]]) for t in range(start, len(seq))))
    rows = b.limits.head_rows
    try:
        for head_rows, share in ((5, False), (5, True), (64, False)):
            b.limits.head_rows = head_rows
            b.reset_prefix_cache()
            got = b.continuation_logprobs(prefixes, claims, share_prefixes=share)
            np.testing.assert_allclose(got, expected, atol=1e-3)
    finally:
        b.limits.head_rows = rows


def test_grouped_attention_gives_the_models_scores(float32_backend):
    """The bfloat16 default's attention (backends/attention.py), run in float32 where rounding cannot hide
    a mistake: the same label log-probs as transformers' SDPA, padded batches and resumed prefixes alike."""
    from icm_engine.backends import attention

    b = float32_backend
    task = get_task("claims", consistency="key:answer")
    data = load_dataset(SANITY / "claims_dev.jsonl", task, limit=8)
    scorer = Scorer(task, b, data.examples)
    labels = [i % 3 != 0 for i in range(len(data.examples))]
    prompts = [scorer.context(scorer.demos_for(t, [(p, y) for p, y in enumerate(labels) if p != t]))
               + task.render(data.examples[t]) for t in range(len(labels))]
    results = {}
    try:
        for implementation in ("sdpa", attention.register()):
            b.model.set_attn_implementation(implementation)
            for share in (False, True):
                b.reset_prefix_cache()
                results[implementation, share] = b.label_logprobs(prompts, [" True", " False"], share_prefixes=share)
    finally:
        b.model.set_attn_implementation("sdpa")
    for share in (False, True):
        np.testing.assert_allclose(results[attention.NAME, share], results["sdpa", share], atol=1e-4)


def test_prompts_that_extend_earlier_ones_compute_only_their_new_tokens(float32_backend):
    """Demonstrations in labeling order: a new label joins every prompt at its end, so the prefix store
    holds the rest of each prompt from the evaluation before; scores equal unshared ones (float32)."""
    b = float32_backend
    task = get_task("claims", consistency="key:answer")
    data = load_dataset(SANITY / "claims_dev.jsonl", task, limit=12)
    scorer = Scorer(task, b, data.examples, demo_order="labeled")
    labels: list = [None] * 12
    for p in (4, 0, 9, 2, 7):
        labels[p] = p % 2 == 0
        scorer.rank[p] = len(scorer.rank)
    targets = [p for p, y in enumerate(labels) if y is not None]
    b.share_prefixes = True
    b.reset_prefix_cache()
    scorer.loo(labels, targets)
    grown = list(labels)
    grown[5] = True  # a new label, unranked: it comes last in every prompt
    before = b.stats.copy()
    shared = scorer.loo(grown, [*targets, 5])
    delta = b.stats.minus(before)
    b.share_prefixes = False
    fresh = Scorer(task, b, data.examples, demo_order="labeled", rank=dict(scorer.rank))
    full = fresh.loo(grown, [*targets, 5])
    b.share_prefixes = True
    np.testing.assert_allclose(shared, full, atol=1e-3)
    # Each old target computed about the new demonstration and its own claim, not its whole context.
    assert delta.computed_tokens < 0.4 * delta.prompt_tokens
    prompt = fresh.context([(4, True), (0, True), (9, False), (2, True), (7, False)]) + task.render(data.examples[5])
    assert fresh.prompt_key(fresh.demos_for(5, [(p, bool(y)) for p, y in enumerate(grown) if y is not None]), 5) == \
        fresh.prompt_key([(4, True), (0, True), (9, False), (2, True), (7, False)], 5)
    assert prompt.index("Claim: " + data.examples[4].fields["choice"]) < prompt.index(data.examples[0].fields["choice"])


def test_bench_prints_both_modes_and_the_ratios(tmp_path):
    report = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "icm_engine.cli", "bench", str(SANITY / "claims_dev.jsonl"), "--task", "claims",
         "--consistency", "key:answer", "--limit", "6", "--iterations", "3", "--num-seed", "2",
         "--demo-order", "position,labeled", "--limit-tokens", "1024", "--report", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert any("reference" in line for line in lines) and any(" fast " in line for line in lines)
    final = json.loads(lines[-1])
    for key in ("token_ratio", "time_ratio", "acc_reference", "acc_fast", "peak_tokens_per_s"):
        assert key in final
    assert final["token_ratio"] > 0 and final["peak_tokens_per_s"] > 0
    # The forward pass's own limit, on long prompts: above the short-prompt peak, and each mode's share of it.
    assert final["forward_limit_tokens_per_s"] > final["peak_tokens_per_s"] * 0.5
    assert 0 < final["fast_share_of_forward_limit"] < 1.5 and 0 < final["reference_share_of_forward_limit"] < 1.5
    # Both orders ran against the one reference run, under the reference's own search choices.
    assert set(final["by_order"]) == {"position", "labeled"} and final["semantics"] == "code"
    assert sum(" fast labeled " in line for line in lines) == 1
    # Each mode's peak is read beside what was resident when it began (after the store was emptied).
    runs = json.loads(report.read_text())["runs"]
    assert len(runs) == 3 and all(0 < r["start_rss_mb"] <= r["peak_rss_mb"] for r in runs)
    # Every run keeps its labels, so each fast order is compared with the reference label by label.
    assert all(len(r["labels"]) == 6 for r in runs)
    for order in ("position", "labeled"):
        figures = final["by_order"][order]
        assert 0 < figures["both_labeled"] <= 6 and 0.0 <= figures["label_agreement"] <= 1.0
    # Its report, summarized again (as seeds benched apart are), gives the same figures.
    again = subprocess.run([sys.executable, "-m", "icm_engine.cli", "bench-summary", str(report)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    combined = json.loads(again.stdout.strip().splitlines()[-1])
    for key in ("token_ratio", "time_ratio", "acc_reference", "acc_fast", "by_order", "seeds"):
        assert combined[key] == final[key]
