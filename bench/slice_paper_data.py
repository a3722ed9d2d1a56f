"""Make the slices of the ICM paper's released data that the repository ships (data/paper/ and the loader
fixtures in tests/data/shapes/), from a copy of the paper's data bundle.

    python bench/slice_paper_data.py BUNDLE_DIR

BUNDLE_DIR holds the released files as the paper's authors laid them out (truthfulqa/, gsm8k/, alpaca/ and,
for the loader fixtures only, eval/). Each slice is the first whole groups (`consistency_id`) of its file, in
file order, plus the first group that carries a form of the gold label (int, bool, string) the first groups
miss, so the loader tests still meet every form the released files use. Rows are copied unchanged.
data/paper/README.md says where each file comes from, its licence and how many rows each slice keeps.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# (file in the bundle, where the slice goes, how many groups; None: every row)
SLICES = (
    ("truthfulqa/train_truthfulqa.json", "data/paper/truthfulqa/train_truthfulqa.json", 64),
    ("truthfulqa/praxis_subset_train.json", "data/paper/truthfulqa/praxis_subset_train.json", None),
    ("truthfulqa/train_truthfulqa_preference.json", "data/paper/truthfulqa/train_truthfulqa_preference.json", 32),
    ("gsm8k/gsm8k_dev.json", "data/paper/gsm8k/gsm8k_dev.json", 25),
    ("alpaca/alpaca_dev.json", "data/paper/alpaca/alpaca_dev.json", 40),
    # Loader fixtures: the shapes of the critique's files (no consistency_id upstream in larger_than; no gold at
    # all in political_normative). A handful of rows each; the evaluation files stay out of development.
    ("eval/larger_than_test.json", "tests/data/shapes/larger_than_test.json", 8),
    ("eval/gsm8k_pairs_test.json", "tests/data/shapes/gsm8k_pairs_test.json", 3),
    ("eval/political_normative_test.json", "tests/data/shapes/political_normative_test.json", 6),
)


def _form(label: object) -> str:
    return type(label).__name__


def slice_rows(rows: Sequence[dict], groups: int | None) -> list[dict]:
    """The first `groups` whole groups (rows without a group are each their own), and the first group of any
    label form those miss."""
    if groups is None:
        return list(rows)
    order: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        order.setdefault(str(row.get("consistency_id", f"row{i}")), []).append(i)
    keys = list(order)
    chosen = keys[:groups]
    forms = {_form(rows[i].get("label")) for k in chosen for i in order[k]}
    for key in keys[groups:]:
        new = {_form(rows[i].get("label")) for i in order[key]} - forms
        if new:
            chosen.append(key)
            forms |= new
    keep = sorted(i for k in chosen for i in order[k])
    return [rows[i] for i in keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="the folder that holds the paper's released files")
    args = parser.parse_args()
    for source, target, groups in SLICES:
        rows = json.loads((args.bundle / source).read_text())
        kept = slice_rows(rows, groups)
        out = ROOT / target
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(kept, ensure_ascii=False, indent=1) + "\n")
        print(f"{target}: {len(kept)} of {len(rows)} rows")


if __name__ == "__main__":
    main()
