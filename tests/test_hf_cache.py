"""The transformers backend's KV reuse is exact where layers attend through a sliding window.

A tiny random Gemma 3 (window 16, three sliding layers and one full one) makes every prompt far longer
than the window, so the window-only caches of the sliding layers are exercised on every path: rows
resumed from stored prefixes of different lengths in one batch, siblings over a shared prefix, a prefix
split inside a stored segment, and prompts that extend earlier ones. Scores must equal those of the same
prompts computed whole (float32).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from icm_engine.backends.hf import BatchLimits, TransformersBackend, padded_batches, resolve_model_dir, width_groups
from icm_engine.backends.hf.kv_cache import recording_returns_window

pytestmark = pytest.mark.model  # borrows the packaged model's tokenizer

WINDOW = 16


def _tiny_gemma3(folder, **config_overrides):
    """A saved tiny random Gemma 3 with the packaged model's tokenizer, and its config."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    source = resolve_model_dir("gemma3-270m")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, folder / name)
    config = Gemma3TextConfig(**{
        "vocab_size": 262144, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "sliding_window": WINDOW,
        "max_position_embeddings": 4096, "layer_types": ["sliding_attention"] * 3 + ["full_attention"],
        "initializer_range": 0.5, **config_overrides,
    })
    torch.manual_seed(0)
    Gemma3ForCausalLM(config).save_pretrained(folder)
    return config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> TransformersBackend:
    from transformers import DynamicCache

    folder = tmp_path_factory.mktemp("tiny-gemma3")
    config = _tiny_gemma3(folder)
    backend = TransformersBackend(model=str(folder), dtype="float32")
    layout = backend.sharer.layout
    if layout.sliding is None:
        # This transformers cannot run a window-only cache over several passes (the probe below); the
        # backend keeps every position in every layer, which the tests below check instead.
        assert not recording_returns_window(DynamicCache(config=config).layers[0])
    else:
        assert layout.sliding == [True, True, True, False] and layout.window == WINDOW
    return backend


def _scores(backend: TransformersBackend, calls: list[list[list[int]]], share: bool) -> list[np.ndarray]:
    backend.reset_prefix_cache()
    ids = [5, 17, 230, 4021]
    return [backend.score_token_seqs(seqs, ids, share_prefixes=share) for seqs in calls]


def _calls():
    """Three calls of token sequences that exercise every reuse path, the token generator, and the last
    WINDOW tokens of the first call's first prompt."""
    rng = np.random.default_rng(0)

    def tokens(n: int) -> list[int]:
        return [int(t) for t in rng.integers(300, 20000, size=n)]

    base, a, b, c = tokens(70), tokens(5), tokens(23), tokens(40)
    calls = [
        # Siblings off a 70-token prefix, one row branching at 30, one alone.
        [[2, *base, *a], [2, *base, *b], [2, *base[:30], *c], [2, *tokens(50)]],
        # Extensions of stored prompts (rows resume from different lengths in one batch), a split inside a
        # stored segment (45 < 70), and a row sharing nothing.
        [[2, *base, *a, *tokens(9)], [2, *base, *b, *tokens(31)], [2, *base[:45], *tokens(12)],
         [2, *base[:30], *c, *tokens(3)], [2, *tokens(20)]],
        # The same prompts again (whole prompts stored) plus longer extensions still.
        [[2, *base, *a, *tokens(60)], [2, *base, *b], [2, *base[:45], *tokens(80)]],
    ]
    return calls, tokens, [*base, *a][-WINDOW:]


@pytest.mark.parametrize("overhead", [0, 10**6], ids=["split-by-width", "one-batch"])
@pytest.mark.parametrize("windows", [True, False], ids=["window-only", "whole-layers"])
@pytest.mark.parametrize("chunk", [1024, 7])
def test_window_only_caches_give_the_scores_of_whole_prompts(tiny, chunk, windows, overhead, monkeypatch):
    """With 7-token chunks, long new stretches also run in several passes over the cache. The whole-layers
    variant is the path taken where this transformers cannot keep sliding layers window-only. Rows resumed
    from the store run in batches of similar width (split-by-width) or all in one padded batch."""
    monkeypatch.setattr(tiny.limits, "chunk_tokens", chunk)
    monkeypatch.setattr(tiny.limits, "overhead_tokens", overhead)
    if not windows:
        monkeypatch.setattr(tiny.sharer.layout, "sliding", None)
        monkeypatch.setattr(tiny.sharer.layout, "window", 0)
    elif tiny.sharer.layout.sliding is None:
        pytest.skip("this transformers cannot keep sliding layers window-only")
    calls, tokens, tail = _calls()
    whole = _scores(tiny, calls, share=False)
    before = tiny.stats.copy()
    shared = _scores(tiny, calls, share=True)
    saved = tiny.stats.minus(before)
    assert saved.computed_tokens < 0.6 * saved.prompt_tokens  # most of it came from the store
    for got, want in zip(shared, whole, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4)
    # The scores depend on context beyond the window (the full layer reads it), so a cache that lost or
    # misplaced positions would show: the same final 16 tokens after another beginning score differently.
    other = tiny.score_token_seqs([[2, *tokens(60), *tail]], [5, 17, 230, 4021], share_prefixes=False)
    assert np.abs(other[0] - whole[0][0]).max() > 1e-3


def test_the_store_shrinks_to_the_memory_target_and_scores_stay_exact(tiny, monkeypatch):
    """Under a memory target the process already exceeds, the store is cut to its 64 MB floor; scores do
    not change."""
    rng = np.random.default_rng(1)
    seqs = [[2, *[int(t) for t in rng.integers(300, 20000, size=40)]] for _ in range(3)]
    calls = [seqs, [[*s, *[int(t) for t in rng.integers(300, 20000, size=30)]] for s in seqs]]
    whole = _scores(tiny, calls, share=False)
    monkeypatch.setattr(tiny, "_memory_target", 0)
    shared = _scores(tiny, calls, share=True)
    assert tiny._store.capacity == 2**26
    for got, want in zip(shared, whole, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4)


class _RecordingLayer:
    """A sliding layer that records its past as transformers 5.17's did: `update` returns every recorded
    state, more than the mask covers once a prompt runs in several passes."""

    def __init__(self, window: int, slice_visible: bool):
        self.sliding_window, self.slice_visible = window, slice_visible

    def activate_past_recording(self) -> None:
        pass

    def lazy_initialization(self, keys, values) -> None:
        pass

    def update(self, keys, values):
        import torch

        self.keys = torch.cat([self.keys, keys], dim=-2)
        self.values = torch.cat([self.values, values], dim=-2)
        visible = self.sliding_window - 1 + keys.shape[-2] if self.slice_visible else self.keys.shape[-2]
        return self.keys[:, :, -visible:], self.values[:, :, -visible:]


def test_the_window_probe_tells_recording_layers_apart():
    assert recording_returns_window(_RecordingLayer(16, slice_visible=True))
    assert not recording_returns_window(_RecordingLayer(16, slice_visible=False))


def test_label_logprobs_are_the_models_own_through_a_softcap_in_chunks_of_any_size(tmp_path):
    """The vocabulary head reads a call's rows `head_rows` at a time and softcaps the logits in place
    (Gemma 2 caps its final logits; the default model does not): every row must still get the log-probs
    of the model's own forward pass, with chunks that split the rows and with one chunk for them all."""
    import torch

    _tiny_gemma3(tmp_path, final_logit_softcapping=2.0)  # small, so the cap moves every score
    backend = TransformersBackend(model=str(tmp_path), dtype="float32")
    assert backend._softcap == 2.0
    _, tokens, _ = _calls()
    seqs = [[2, *tokens(n)] for n in (3, 40, 17, 25, 9, 60, 31)]
    ids = [5, 17, 230, 4021]
    with torch.inference_mode():
        expected = np.array([torch.log_softmax(backend.model(input_ids=torch.tensor([s])).logits[0, -1], -1)[ids]
                             .double().numpy() for s in seqs])
    for head_rows, share in ((3, False), (3, True), (64, False), (64, True)):
        backend.limits.head_rows = head_rows
        backend.reset_prefix_cache()
        np.testing.assert_allclose(backend.score_token_seqs(seqs, ids, share_prefixes=share), expected, atol=1e-4)


def test_padded_prefix_caches_do_not_read_uninitialised_memory(tiny, monkeypatch):
    """Rows resumed from prefixes of different lengths are left-padded; only the pads are zeroed. Fresh
    tensors filled with NaN would turn any unzeroed pad (or unfilled position) into NaN scores."""
    import torch

    empty = torch.Tensor.new_empty

    def poisoned(self, *args, **kwargs):
        out = empty(self, *args, **kwargs)
        return out.fill_(float("nan")) if out.is_floating_point() else out

    calls, _, _ = _calls()
    whole = _scores(tiny, calls, share=False)
    monkeypatch.setattr(tiny.limits, "overhead_tokens", 10**6)  # rows of every width in one padded batch
    monkeypatch.setattr(torch.Tensor, "new_empty", poisoned)
    shared = _scores(tiny, calls, share=True)
    for got, want in zip(shared, whole, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4)


def _partitions(items: list[int]):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _partitions(rest):
        yield [[first], *part]
        for i in range(len(part)):
            yield [*part[:i], [first, *part[i]], *part[i + 1:]]


@pytest.mark.parametrize("seed", range(20))
def test_width_groups_cost_no_more_than_any_split(seed):
    """Every row once, and no partition of the rows (brute force over all of them) computes fewer padded
    positions plus per-batch overhead."""
    rng = np.random.default_rng(seed)
    widths = [int(w) for w in rng.integers(1, 400, size=int(rng.integers(1, 8)))]
    overhead = int(rng.choice([0, 16, 64, 500]))

    def cost(groups):
        return sum(len(g) * max(widths[r] for r in g) + overhead for g in groups)

    groups = width_groups(widths, overhead)
    assert sorted(r for g in groups for r in g) == list(range(len(widths)))
    assert cost(groups) == min(cost(p) for p in _partitions(list(range(len(widths)))))


def test_width_groups_split_short_tails_from_long_ones():
    assert width_groups([300, 10, 12, 290, 11], 64) == [[1, 4, 2], [3, 0]]
    assert width_groups([300, 10, 12, 290, 11], 10**6) == [[1, 4, 2, 3, 0]]
    assert width_groups([], 64) == []


def test_unshared_batches_split_by_width_and_stay_under_the_token_budget():
    """The reference mode's (and the peak pass's) right-padded batches: short prompts are not padded to
    long ones even when all would fit one batch, and no batch holds more than max_batch_tokens padded
    positions."""
    for lengths in ([40] * 20 + [300] * 5 + [45] * 4, [40] * 150 + [300] * 40):
        batches = padded_batches(lengths, BatchLimits(max_batch_tokens=8192, overhead_tokens=64))
        assert sorted(k for b in batches for k in b) == list(range(len(lengths)))
        assert all(len(b) * max(lengths[k] for k in b) <= 8192 for b in batches)
        assert all(len({lengths[k] == 300 for k in b}) == 1 for b in batches)  # never mixed


def test_unshared_batches_of_thousands_of_prompts_cover_every_prompt_once():
    lengths = [int(w) for w in np.random.default_rng(0).integers(5, 400, size=3000)]
    batches = padded_batches(lengths, BatchLimits(max_batch_tokens=8192, overhead_tokens=64))
    assert sorted(k for b in batches for k in b) == list(range(len(lengths)))
    assert all(len(b) * max(lengths[k] for k in b) <= 8192 for b in batches)
    padded = sum(len(b) * max(lengths[k] for k in b) for b in batches)
    assert padded < 1.05 * sum(lengths)
