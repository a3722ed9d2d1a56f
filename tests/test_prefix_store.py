"""The transformers backend's prefix store: what it returns for a prefix, how it splits and what it drops."""

from __future__ import annotations

import torch

from icm_engine.backends.prefix_store import PrefixStore


def kv_for(tokens: list[int], layers: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fake KV whose every position holds its token id, so a path's KV can be checked against its tokens."""
    t = torch.tensor(tokens, dtype=torch.float32).view(1, 1, -1, 1).expand(1, 1, -1, 4).contiguous()
    return [(t.clone(), -t.clone()) for _ in range(layers)]


def path_tokens(path) -> list[float]:
    return [x for node in path for x in node.kv[0][0][0, 0, :, 0].tolist()]


def test_longest_stored_prefix_and_split_at_the_mismatch():
    store = PrefixStore(1 << 20)
    store.insert(None, [1, 2, 3, 4, 5], kv_for([1, 2, 3, 4, 5]))
    path, n = store.match([1, 2, 3, 9, 9])
    assert n == 3 and path_tokens(path) == [1, 2, 3]
    # The node was split at the mismatch: the rest is still there, under the same prefix.
    path, n = store.match([1, 2, 3, 4, 5, 6])
    assert n == 5 and path_tokens(path) == [1, 2, 3, 4, 5] and len(path) == 2
    store.insert(path[0], [7, 8], kv_for([7, 8]))
    path, n = store.match([1, 2, 3, 7, 8, 0])
    assert n == 5 and path_tokens(path) == [1, 2, 3, 7, 8]
    assert store.match([2, 3])[1] == 0
    # A limit stops the match inside a node (and splits it there).
    path, n = store.match([1, 2, 3, 4, 5], limit=2)
    assert n == 2 and path_tokens(path) == [1, 2]


def test_least_recently_used_leaves_go_first_and_the_budget_holds():
    one = sum(k.numel() * 4 + v.numel() * 4 for k, v in kv_for([0, 0]))  # bytes of a 2-token node
    store = PrefixStore(3 * one)
    a = store.insert(None, [1, 1], kv_for([1, 1]))
    store.insert(a, [2, 2], kv_for([2, 2]))
    store.insert(a, [3, 3], kv_for([3, 3]))
    store.match([1, 1, 2, 2])  # [2, 2] used more recently than [3, 3]
    store.insert(a, [4, 4], kv_for([4, 4]))
    assert store.bytes <= 3 * one
    assert store.match([1, 1, 3, 3])[1] == 2  # dropped
    assert store.match([1, 1, 2, 2])[1] == 4 and store.match([1, 1, 4, 4])[1] == 4
    # The node just stored and its ancestors are never dropped to make room for it.
    big = PrefixStore(one)
    root = big.insert(None, [5, 5], kv_for([5, 5]))
    big.insert(root, [6, 6], kv_for([6, 6]))
    assert big.match([5, 5, 6, 6])[1] == 4


def test_resizing_drops_least_recently_used_leaves_at_once():
    one = sum(k.numel() * 4 + v.numel() * 4 for k, v in kv_for([0, 0]))
    store = PrefixStore(10 * one)
    a = store.insert(None, [1, 1], kv_for([1, 1]))
    store.insert(a, [2, 2], kv_for([2, 2]))
    store.insert(a, [3, 3], kv_for([3, 3]))
    store.match([1, 1, 3, 3])  # [3, 3] used more recently than [2, 2]
    store.resize(2 * one)
    assert store.bytes <= 2 * one and store.capacity == 2 * one
    assert store.match([1, 1, 2, 2])[1] == 2 and store.match([1, 1, 3, 3])[1] == 4
    store.resize(0)
    assert store.bytes == 0 and store.match([1, 1])[1] == 0


def test_clearing_frees_the_tensors_without_waiting_for_the_cycle_collector():
    import gc
    import weakref

    store = PrefixStore(1 << 20)
    a = store.insert(None, [1, 1], kv_for([1, 1]))
    store.insert(a, [2, 2], kv_for([2, 2]))
    keys = weakref.ref(store.match([1, 1, 2, 2])[0][-1].kv[0][0])
    del a
    gc.disable()  # nodes point at their parents and children: only the cyclic collector would free them
    try:
        store.clear()
        assert keys() is None
    finally:
        gc.enable()
    assert store.bytes == 0 and store.match([1, 1])[1] == 0


def test_making_room_before_a_copy_keeps_the_store_and_the_copy_within_the_budget():
    one = sum(k.numel() * 4 + v.numel() * 4 for k, v in kv_for([0, 0]))
    store = PrefixStore(3 * one)
    a = store.insert(None, [1, 1], kv_for([1, 1]))
    b = store.insert(a, [2, 2], kv_for([2, 2]))
    store.insert(a, [3, 3], kv_for([3, 3]))
    store.match([1, 1, 2, 2])  # [3, 3] is now the least recently used leaf
    store.make_room(one, keep=b)
    assert store.bytes + one <= store.capacity
    assert store.match([1, 1, 3, 3])[1] == 2 and store.match([1, 1, 2, 2])[1] == 4
    # The entry being extended and its ancestors stay, even when that leaves too little room.
    store.make_room(3 * one, keep=b)
    assert store.match([1, 1, 2, 2])[1] == 4
