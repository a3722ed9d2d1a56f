"""A store of KV states keyed by token prefix (a radix tree), kept between calls, bounded in bytes.

The transformers backend's exact saving: a prompt whose first tokens were computed before (in this call
or an earlier one) resumes from their keys and values and computes only the rest, as vLLM's automatic
prefix caching does. Each node holds the KV of one token segment; a prompt's cached prefix is the path
from the root. Least recently used leaves are dropped when the store is over its budget.

Keys and values of a prefix do not depend on what follows it (causal attention), so a resumed prompt
gets the same hidden states as one computed whole, up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Node:
    tokens: list[int]
    # One (keys, values) pair per layer, each [1, heads, len(tokens), head_dim].
    kv: list[tuple[Any, Any]]
    parent: Node | None = None
    children: dict[int, Node] = field(default_factory=dict)
    used: int = 0
    nbytes: int = 0


def _kv_bytes(kv: Sequence[tuple[Any, Any]]) -> int:
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)


class PrefixStore:
    def __init__(self, capacity_bytes: int):
        self.capacity = capacity_bytes
        self.root = Node([], [])
        self.bytes = 0
        self.clock = 0

    def __len__(self) -> int:
        return sum(1 for _ in self._nodes())

    def _nodes(self):
        stack = list(self.root.children.values())
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.children.values())

    def match(self, seq: Sequence[int], limit: int | None = None) -> tuple[list[Node], int]:
        """The path of nodes holding the longest stored prefix of seq[:limit], and its length.

        A node matched only in part is split at the mismatch, so the path always ends on a node boundary.
        """
        end = len(seq) if limit is None else min(limit, len(seq))
        self.clock += 1
        node, pos, path = self.root, 0, []
        while pos < end:
            child = node.children.get(seq[pos])
            if child is None:
                break
            seg = child.tokens
            j = 0
            n = min(len(seg), end - pos)
            while j < n and seg[j] == seq[pos + j]:
                j += 1
            if j < len(seg):
                child = self._split(child, j)
            child.used = self.clock
            path.append(child)
            pos += j
            node = child
            if j < len(seg):
                break
        return path, pos

    def _split(self, node: Node, at: int) -> Node:
        """Cut node after `at` tokens: the head keeps its place, the tail becomes its only child."""
        head_kv = [(k[:, :, :at], v[:, :, :at]) for k, v in node.kv]
        # The tail gets its own memory, so dropping it later frees it; the head keeps a view of the old block.
        tail_kv = [(k[:, :, at:].clone(), v[:, :, at:].clone()) for k, v in node.kv]
        tail = Node(node.tokens[at:], tail_kv, parent=node, children=node.children, used=node.used,
                    nbytes=_kv_bytes(tail_kv))
        for child in tail.children.values():
            child.parent = tail
        node.tokens, node.kv, node.children = node.tokens[:at], head_kv, {tail.tokens[0]: tail}
        self.bytes += tail.nbytes  # the head's old block stays counted under the head
        return node

    def insert(self, parent: Node | None, tokens: list[int], kv: list[tuple[Any, Any]]) -> Node | None:
        """Store the KV of `tokens`, which follow `parent`'s path (None: the root)."""
        parent = parent or self.root
        if not tokens or tokens[0] in parent.children:
            return None
        node = Node(list(tokens), kv, parent=parent, used=self.clock, nbytes=_kv_bytes(kv))
        parent.children[tokens[0]] = node
        self.bytes += node.nbytes
        self._evict(keep=node)
        return node

    def resize(self, capacity: int) -> None:
        """Set the budget; least recently used leaves go at once until the store fits it."""
        self.capacity = max(0, capacity)
        self._evict(keep=None)

    def make_room(self, nbytes: int, keep: Node | None) -> None:
        """Drop least recently used leaves (never `keep` or its ancestors) until `nbytes` more fit. Called
        before a new entry's tensors are copied, so the store and that copy never exceed the budget together
        (a recomputed 4,000-token prefix is about 150 MB in float32)."""
        self._evict(keep, room=nbytes)

    def _evict(self, keep: Node | None, room: int = 0) -> None:
        if self.bytes + room <= self.capacity:
            return
        protected = set()
        n: Node | None = keep
        while n is not None:
            protected.add(id(n))
            n = n.parent
        leaves = sorted((x for x in self._nodes() if not x.children and id(x) not in protected),
                        key=lambda x: x.used)
        while self.bytes + room > self.capacity and leaves:
            leaf = leaves.pop(0)
            self._drop(leaf)
            parent = leaf.parent
            if parent is not None and parent is not self.root and not parent.children and \
                    id(parent) not in protected:
                # Its parent is a leaf now: a candidate in LRU order.
                k = 0
                while k < len(leaves) and leaves[k].used <= parent.used:
                    k += 1
                leaves.insert(k, parent)

    def _drop(self, node: Node) -> None:
        assert node.parent is not None
        del node.parent.children[node.tokens[0]]
        self.bytes -= node.nbytes
        node.kv = []

    def clear(self) -> None:
        # Nodes and their parents form reference cycles, which only the cyclic collector would free:
        # drop the tensors now.
        for node in list(self._nodes()):
            node.kv, node.children, node.parent = [], {}, None
        self.root = Node([], [])
        self.bytes = 0
