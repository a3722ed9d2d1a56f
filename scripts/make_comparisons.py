"""Build data/comparisons/comparisons_{dev,test}.jsonl: comparison claims with gold labels and groups.

A second development set beside the sanity set, of another kind: each group is one question ("Which is
larger, sixty-one or fifty-five?") with two claims that say opposite things ("Sixty-one is larger than
fifty-five." and "Fifty-five is larger than sixty-one."), one true and one false. The two claims use the
same words in another order, so the claim's own likelihood says little about which is true, and the
default model's zero-shot verdict on such claims is near chance: a set on which a label-free signal that
names ICM's two classes can fail. The label-free consistency key is the claim's `answer` (the thing it
says is larger): within a group, different answers cannot both be True. Deterministic (seeded).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

UNITS = ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
         "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]

# Things of clearly different size, speed and weight, smallest first.
SIZES = ["an ant", "a mouse", "a cat", "a dog", "a horse", "an elephant", "a whale"]
SPEEDS = ["a snail", "a tortoise", "a person walking", "a bicycle", "a car", "a jet plane"]
HEAVY = ["a feather", "an apple", "a brick", "a person", "a car", "a truck"]


def words(n: int) -> str:
    if n < 10:
        return UNITS[n]
    if n < 20:
        return TEENS[n - 10]
    tens, units = divmod(n, 10)
    return TENS[tens] + (f"-{UNITS[units]}" if units else "")


def pairs(rng: random.Random):
    """(category, question, [(claim, answer, label), (claim, answer, label)]) for each group."""
    seen = set()
    while len(seen) < 60:
        a, b = rng.sample(range(2, 100), 2)
        if abs(a - b) < 3 or frozenset((a, b)) in seen:
            continue
        seen.add(frozenset((a, b)))
        big, small = max(a, b), min(a, b)
        first, second = (words(a), words(b))
        yield "number", f"Which is larger, {first} or {second}?", [
            (f"{words(big).capitalize()} is larger than {words(small)}.", words(big), True),
            (f"{words(small).capitalize()} is larger than {words(big)}.", words(small), False),
        ]
    for category, ranked, adjective in (("size", SIZES, "bigger"), ("speed", SPEEDS, "faster"),
                                        ("weight", HEAVY, "heavier")):
        for i in range(len(ranked)):
            for j in range(i + 1, len(ranked)):
                small, big = ranked[i], ranked[j]
                x, y = (small, big) if rng.random() < 0.5 else (big, small)
                yield category, f"Which is {adjective}, {x} or {y}?", [
                    (f"{big[0].upper() + big[1:]} is {adjective} than {small}.", big, True),
                    (f"{small[0].upper() + small[1:]} is {adjective} than {big}.", small, False),
                ]


def build(seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    groups = []
    for group, (category, question, claims) in enumerate(pairs(rng)):
        claims = list(claims)
        rng.shuffle(claims)
        groups.append([{"id": f"{category}-{group}-{slot}", "question": question, "choice": text, "answer": answer,
                        "label": label, "consistency_id": str(group), "category": category}
                       for slot, (text, answer, label) in zip("ab", claims, strict=True)])
    # Interleave categories so a --limit slice is not one category.
    rng.shuffle(groups)
    return [row for g in groups for row in g]


if __name__ == "__main__":
    # Two halves by alternate groups: development on dev; test is for reporting.
    folder = Path(__file__).resolve().parent.parent / "data" / "comparisons"
    folder.mkdir(parents=True, exist_ok=True)
    rows = build()
    order = list(dict.fromkeys(r["consistency_id"] for r in rows))
    for name, keep in (("dev", set(order[0::2])), ("test", set(order[1::2]))):
        part = [r for r in rows if r["consistency_id"] in keep]
        (folder / f"comparisons_{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
        print(f"wrote {len(part)} rows to comparisons_{name}.jsonl")
