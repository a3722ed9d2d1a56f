"""The transformers backend's strategies: which one a device gets, when the wide one shares prefixes, and
that the wide strategy (an accelerator's) gives the plain forward pass's scores, run here on the CPU."""

from __future__ import annotations

import numpy as np
import pytest

from icm_engine.backends.base import BackendError
from icm_engine.backends.hf.batching import BatchLimits
from icm_engine.backends.hf.prefix_sharing import PrefixSharer
from icm_engine.backends.hf.strategy import batch_tokens_within, padded_cost, pick_strategy, sharing_pays
from icm_engine.backends.prefix_store import PrefixStore


def test_the_device_picks_the_strategy_and_either_can_be_asked_for_anywhere():
    cpu = pick_strategy("auto", "cpu", "bfloat16")
    assert (cpu.name, cpu.attention, cpu.always_share, cpu.limits.max_batch_tokens) == ("store", "grouped", True, 8192)
    assert pick_strategy("auto", "cpu", "float32").attention == "sdpa"
    gpu = pick_strategy("auto", "cuda", "bfloat16")
    assert (gpu.name, gpu.attention, gpu.always_share) == ("wide", "sdpa", False)
    assert gpu.limits.max_batch_tokens > cpu.limits.max_batch_tokens
    assert gpu.limits.overhead_tokens > cpu.limits.overhead_tokens  # a pass costs more there
    assert pick_strategy("wide", "cpu", "bfloat16").name == "wide"
    assert pick_strategy("store", "cuda", "float32").name == "store"
    assert pick_strategy("auto", "cuda", "bfloat16", attention="grouped").attention == "grouped"
    assert pick_strategy("auto", "cpu", "bfloat16", attention="sdpa").attention == "sdpa"
    assert pick_strategy("wide", "cpu", "float32", max_batch_tokens=1000).limits.max_batch_tokens == 1000
    with pytest.raises(BackendError, match="strategy must be one of"):
        pick_strategy("fastest", "cpu", "float32")
    with pytest.raises(BackendError, match="ICM_ATTENTION"):
        pick_strategy("auto", "cpu", "float32", attention="flash")


def test_sharing_pays_only_where_it_computes_less_than_padding_counting_each_pass():
    limits = BatchLimits(max_batch_tokens=65536, overhead_tokens=1000)
    lengths = [500] * 10  # one padded pass: 5,000 positions and one pass's cost
    assert padded_cost(lengths, limits) == 6000
    # The store's own work counts as one more pass.
    assert sharing_pays(lengths, shared_tokens=1000, shared_passes=2, limits=limits)  # 4,000 < 6,000
    assert not sharing_pays(lengths, shared_tokens=1000, shared_passes=5, limits=limits)  # 7,000
    assert not sharing_pays(lengths, shared_tokens=4500, shared_passes=1, limits=limits)  # 500 saved, a pass spent


def test_a_pass_is_as_wide_as_a_quarter_of_the_free_memory_allows_up_to_the_strategys_width():
    # Gemma 3 270M in bfloat16: 2 * 2 * (8 * 640 + 3 * 2048) = 45,056 bytes a position.
    assert batch_tokens_within(4 * 45056 * 5000, 640, 2048, 2, cap=65536) == 5000
    assert batch_tokens_within(140 * 2**30, 640, 2048, 2, cap=65536) == 65536  # an H200 holds the cap
    assert batch_tokens_within(2**20, 640, 2048, 4, cap=65536) == 1024  # never narrower than this
    assert batch_tokens_within(4 * 45056 * 5000, 640, 2048, 4, cap=65536) == 2500  # float32 takes twice


def _sharer(limits: BatchLimits | None = None) -> PrefixSharer:
    return PrefixSharer(body=None, cache_arg="cache", layout=None, store=PrefixStore(2**20),
                        limits=limits or BatchLimits(), pad=0)


def test_the_sharing_estimate_counts_what_neither_the_store_nor_a_neighbour_holds():
    sharer = _sharer()
    context = list(range(1, 101))
    seqs = [[*context, 1000 + k, 2000 + k] for k in range(4)]
    # The first computes all 102 tokens; the others resume after the shared 100: one resume point each.
    tokens, passes = sharer.estimate(seqs, [len(s) - 1 for s in seqs])
    assert tokens == 102 + 3 * 2
    assert passes == 2  # from the start, and from the end of the context
    # Positions read must be computed: reading every position from 50 on, the others resume at 50.
    tokens, _ = sharer.estimate(seqs, [50] * 4)
    assert tokens == 102 + 3 * (102 - 50)
    # What the store holds is not computed again.
    sharer.store.insert(None, context, [])
    tokens, passes = sharer.estimate(seqs, [len(s) - 1 for s in seqs])
    assert (tokens, passes) == (4 * 2, 1)
    # Many computed tokens take several passes however few the resume points.
    narrow = _sharer(BatchLimits(max_batch_tokens=40))
    assert narrow.estimate(seqs, [len(s) - 1 for s in seqs]) == (108, 11)


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """The tiny random Gemma 3 of test_hf_cache.py under the wide strategy, on the CPU, in float32."""
    from icm_engine.backends.hf import TransformersBackend

    from .test_hf_cache import _tiny_gemma3

    folder = tmp_path_factory.mktemp("tiny-gemma3-wide")
    _tiny_gemma3(folder)
    return TransformersBackend(model=str(folder), dtype="float32", strategy="wide", device="cpu")


def _plain(backend, seqs: list[list[int]], ids: list[int]) -> np.ndarray:
    """The model's own next-token log-probs, one unpadded prompt at a time."""
    import torch

    with torch.inference_mode():
        return np.array([torch.log_softmax(backend.model(input_ids=torch.tensor([s])).logits[0, -1], -1)[ids]
                         .double().numpy() for s in seqs])


@pytest.mark.model  # borrows the packaged model's tokenizer
def test_the_wide_strategy_gives_the_plain_forward_pass_scores_shared_or_padded(wide):
    """Targets after one long shared context (`--context other-groups`): sharing computes far less, so the
    wide strategy takes it. A few short unrelated prompts: it pads them into one pass. Leave-one-out
    prompts, whichever it takes. All equal the plain forward pass."""
    assert wide.describe()["strategy"] == "wide" and wide.attention == "sdpa"
    rng = np.random.default_rng(0)

    def tokens(n: int) -> list[int]:
        return [int(t) for t in rng.integers(300, 20000, size=n)]

    ids = [5, 17, 230, 4021]
    context = [2, *tokens(1500)]
    targets = [[*context, *tokens(int(n))] for n in rng.integers(5, 40, size=12)]
    wide.reset_prefix_cache()
    before = wide.stats.copy()
    got = wide.score_token_seqs(targets, ids)
    cost = wide.stats.minus(before)
    assert cost.computed_tokens < 0.2 * cost.prompt_tokens  # it shared
    np.testing.assert_allclose(got, _plain(wide, targets, ids), atol=1e-4)

    short = [[2, *tokens(int(n))] for n in (5, 30, 17, 60)]
    before = wide.stats.copy()
    got = wide.score_token_seqs(short, ids)
    cost = wide.stats.minus(before)
    assert cost.computed_tokens == cost.prompt_tokens and cost.model_calls == 1  # padded, every token computed
    np.testing.assert_allclose(got, _plain(wide, short, ids), atol=1e-4)

    # The same prompts again: the store holds them, and the wide strategy resumes from it (computing only
    # each prompt's last token, the one read).
    before = wide.stats.copy()
    np.testing.assert_allclose(wide.score_token_seqs(targets, ids), _plain(wide, targets, ids), atol=1e-4)
    assert wide.stats.minus(before).computed_tokens == len(targets)

    demos = [tokens(int(n)) for n in rng.integers(150, 400, size=12)]
    loo = [[2, *[t for d, demo in enumerate(demos) if d != k for t in demo], *tokens(9)] for k in range(12)]
    for share in (True, False):
        np.testing.assert_allclose(wide.score_token_seqs(loo, ids, share_prefixes=share),
                                   _plain(wide, loo, ids), atol=1e-4)


@pytest.mark.model
def test_the_wide_strategy_gives_the_plain_continuation_log_probs(wide):
    import torch

    prefixes = ["Question: Is the sky blue?\nAnswer:", "Question: Is grass red?\nAnswer:", "Claim: 2+2=4."]
    continuations = [" Yes, it is.", " No", " True, and then some more words"]
    got = wide.continuation_logprobs(prefixes, continuations)
    want = []
    with torch.inference_mode():
        for prefix, continuation in zip(prefixes, continuations, strict=True):
            seq, start = wide.encode_pair(prefix, continuation)
            logp = torch.log_softmax(wide.model(input_ids=torch.tensor([seq])).logits[0], -1)
            want.append(sum(float(logp[t - 1, seq[t]]) for t in range(start, len(seq))))
    # Float32 on a CPU without bfloat16: the head a vocabulary block at a time rounds differently from the
    # whole head, about 1e-6 of a sum of ~100 nats (0.00014 on an AVX2 core).
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(wide.continuation_logprobs(prefixes, continuations, share_prefixes=True), want,
                               rtol=1e-5, atol=1e-4)
