"""Build data/sanity/claims_{dev,test}.jsonl: easy world-knowledge claims with gold labels and groups.

Each group is one question with two claims, one true and one false (a distractor drawn from the
same category's answers). The label-free consistency key is the claim's `answer`: within a group,
different answers cannot both be True. Deterministic (seeded); rerun to regenerate.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "China": "Beijing", "Russia": "Moscow", "England": "London", "Egypt": "Cairo", "Greece": "Athens",
    "Portugal": "Lisbon", "Austria": "Vienna", "Ireland": "Dublin", "Norway": "Oslo", "Sweden": "Stockholm",
    "Finland": "Helsinki", "Denmark": "Copenhagen", "Poland": "Warsaw", "Hungary": "Budapest",
    "Thailand": "Bangkok", "South Korea": "Seoul", "Argentina": "Buenos Aires", "Peru": "Lima",
    "Kenya": "Nairobi", "Cuba": "Havana", "Mexico": "Mexico City", "Belgium": "Brussels",
    "the Netherlands": "Amsterdam", "Czech Republic": "Prague", "Iran": "Tehran", "Iraq": "Baghdad",
    "India": "New Delhi", "the Philippines": "Manila", "Indonesia": "Jakarta", "Vietnam": "Hanoi",
    "Chile": "Santiago", "Colombia": "Bogota", "Canada": "Ottawa", "Australia": "Canberra",
    "the United States": "Washington, D.C.",
}
CONTINENTS = {
    "France": "Europe", "Germany": "Europe", "Italy": "Europe", "Japan": "Asia", "China": "Asia",
    "India": "Asia", "Brazil": "South America", "Argentina": "South America", "Peru": "South America",
    "Egypt": "Africa", "Kenya": "Africa", "Nigeria": "Africa", "Canada": "North America",
    "Mexico": "North America", "Australia": "Oceania", "Spain": "Europe", "Thailand": "Asia",
    "Chile": "South America", "Morocco": "Africa", "Norway": "Europe",
}
SOUNDS = {
    "cow": "moo", "dog": "woof", "cat": "meow", "duck": "quack", "sheep": "baa", "pig": "oink",
    "owl": "hoot", "snake": "hiss", "lion": "roar", "horse": "neigh", "bee": "buzz", "rooster": "cock-a-doodle-doo",
    "frog": "ribbit", "mouse": "squeak", "donkey": "hee-haw",
}
COLORS = {
    "a ripe banana": "yellow", "grass": "green", "a clear daytime sky": "blue", "fresh snow": "white",
    "coal": "black", "a ripe tomato": "red", "an orange": "orange", "chocolate": "brown",
    "milk": "white", "a lemon": "yellow", "blood": "red", "a crow": "black", "a fire truck": "red",
    "a lime": "green", "the sea on a sunny day": "blue",
}
OPPOSITES = {
    "hot": "cold", "up": "down", "big": "small", "fast": "slow", "happy": "sad", "light": "dark",
    "old": "young", "early": "late", "open": "closed", "wet": "dry", "rich": "poor", "hard": "soft",
    "full": "empty", "loud": "quiet", "left": "right", "day": "night", "win": "lose", "true": "false",
    "strong": "weak", "thick": "thin",
}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]


def categories():
    yield "capital", CAPITALS, "What is the capital of {k}?", "The capital of {k} is {v}."
    yield "continent", CONTINENTS, "Which continent is {k} in?", "{k} is in {v}."
    yield "sound", SOUNDS, "What sound does a {k} make?", "A {k} says {v}."
    yield "color", COLORS, "What color is {k}?", "The color of {k} is {v}."
    yield "opposite", OPPOSITES, "What is the opposite of {k}?", "The opposite of {k} is {v}."
    days = {d: DAYS[(i + 1) % 7] for i, d in enumerate(DAYS)}
    yield "day", days, "Which day comes after {k}?", "The day after {k} is {v}."
    months = {m: MONTHS[(i + 1) % 12] for i, m in enumerate(MONTHS)}
    yield "month", months, "Which month comes after {k}?", "The month after {k} is {v}."
    numbers = {n: NUMBERS[i + 1] for i, n in enumerate(NUMBERS[:-1])}
    yield "number", numbers, "Which number comes after {k}?", "The number after {k} is {v}."


def build(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    group = 0
    for category, table, question, claim in categories():
        values = sorted(set(table.values()))
        for key, answer in table.items():
            wrong = rng.choice([v for v in values if v != answer and v.lower() != key.lower()])
            pair = [(answer, True), (wrong, False)]
            rng.shuffle(pair)
            for slot, (value, label) in zip("ab", pair, strict=False):
                text = claim.format(k=key, v=value)
                rows.append({
                    "id": f"{category}-{group}-{slot}",
                    "question": question.format(k=key),
                    "choice": text[0].upper() + text[1:],
                    "answer": value,
                    "label": label,
                    "consistency_id": str(group),
                    "category": category,
                })
            group += 1
    # Interleave categories so a --limit slice is not one category.
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["consistency_id"], []).append(row)
    order = list(groups)
    rng.shuffle(order)
    return [row for g in order for row in groups[g]]


if __name__ == "__main__":
    # Two halves by alternate groups: prompt framing was chosen on dev; test is for reporting.
    folder = Path(__file__).resolve().parent.parent / "data" / "sanity"
    folder.mkdir(parents=True, exist_ok=True)
    rows = build()
    order = list(dict.fromkeys(r["consistency_id"] for r in rows))
    for name, keep in (("dev", set(order[0::2])), ("test", set(order[1::2]))):
        part = [r for r in rows if r["consistency_id"] in keep]
        (folder / f"claims_{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
        print(f"wrote {len(part)} rows to claims_{name}.jsonl")
