"""The API's answers as pandas DataFrames: label sets, labels side by side, parts of the agreement report.
Plain functions of what the API returned, so they are tested without a server."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from .records import AgreementReport, LabelSet

if TYPE_CHECKING:
    from .records import Run

LABEL_SET_COLUMNS = ["name", "version", "kind", "source", "run", "model", "partial", "n_labels", "n_true", "n_false",
                     "created", "column"]


def runs_frame(runs: Iterable[Run]) -> pd.DataFrame:
    """Runs, one row each, indexed by id: method, seed, status, label set and the accuracy against gold."""
    rows = []
    for r in runs:
        gold = r.gold or {}
        rows.append({"id": r.id, "method": r.method, "seed": r.seed, "status": r.status, "label_set": r.label_set,
                     "final_u": r.progress.get("final_u"), "accuracy": gold.get("accuracy"), "n": gold.get("n"),
                     "warnings": list(gold.get("warnings") or r.progress.get("warnings") or []), "error": r.error})
    frame = pd.DataFrame(rows, columns=["id", "method", "seed", "status", "label_set", "final_u", "accuracy", "n",
                                        "warnings", "error"])
    return frame.astype({"label_set": "Int64", "final_u": "Float64", "accuracy": "Float64",
                         "n": "Int64"}).set_index("id")


def label_sets_frame(sets: Iterable[LabelSet]) -> pd.DataFrame:
    """Label sets, one row each, indexed by id; `column` is the set's column in `labels_frame`."""
    rows = [{"id": s.id, **{c: getattr(s, c) for c in LABEL_SET_COLUMNS}} for s in sets]
    frame = pd.DataFrame(rows, columns=["id", *LABEL_SET_COLUMNS])
    # Nullable integers: a set from a file has no run, and annotators see no counts.
    return frame.astype({"run": "Int64", "n_labels": "Int64", "n_true": "Int64", "n_false": "Int64"}).set_index("id")


def labels_frame(sets: Sequence[tuple[LabelSet, Sequence[dict[str, Any]]]], *, scores: bool = False) -> pd.DataFrame:
    """Label sets side by side: indexed by the example's id in its file, one column per set (True, False, or
    <NA> where the set leaves the example unlabeled) and with `scores` one "<column> score" each after them.

    `sets`: each set with its rows as GET /api/labelsets/{id}/labels/ gives them (`example_id`, `label`,
    `score`). Examples come in the order the sets first name them (the dataset's order)."""
    order: dict[str, None] = {}
    columns: dict[str, pd.Series] = {}
    score_columns: dict[str, pd.Series] = {}
    for label_set, rows in sets:
        ids = [str(r["example_id"]) for r in rows]
        order.update(dict.fromkeys(ids))
        columns[label_set.column] = pd.Series([r["label"] for r in rows], index=ids, dtype="boolean")
        if scores:
            score_columns[f"{label_set.column} score"] = pd.Series([r.get("score") for r in rows], index=ids,
                                                                   dtype="Float64")
    index = pd.Index(list(order), dtype="object", name="id")
    # Each column on the whole index: reindexing a nullable column fills <NA>, never NaN or a cast to object.
    data = {name: s.reindex(index) for name, s in {**columns, **score_columns}.items()}
    return pd.DataFrame(data, index=index)


def report_frame(report: AgreementReport, part: str = "accuracy") -> pd.DataFrame:
    """A part of the agreement report as a DataFrame. accuracy and by_stratum: one row per set (and stratum),
    with `name` the set's column in `labels_frame`; kappa and mcnemar: one row per pair, `first_name` and
    `second_name` naming the two sets (gold among them, for kappa)."""
    parts = ("accuracy", "by_stratum", "kappa", "mcnemar")
    if part not in parts:
        raise ValueError(f"no part {part!r} in the agreement report; choose one of {', '.join(parts)}")
    names = {s["id"]: f"{s['name']} v{s['version']}" for s in report.label_sets}
    if report.gold:
        names[report.gold["id"]] = f"{report.gold['name']} v{report.gold['version']}"
    frame = pd.DataFrame(getattr(report, part))
    if part in ("accuracy", "by_stratum"):
        if frame.empty:  # no gold: nothing to compare with
            return pd.DataFrame(columns=["label_set", "name"])
        frame.insert(1, "name", frame["label_set"].map(names))
    elif not frame.empty:
        frame.insert(2, "first_name", frame["first"].map(names))
        frame.insert(3, "second_name", frame["second"].map(names))
    return frame
