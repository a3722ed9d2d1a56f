"""Downloads of review decisions and of the agreement report, as JSON and CSV."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse

from webapp.datasets.exports import render_csv
from webapp.datasets.models import Dataset

from .selectors import verdicts_of

REPORT_FORMATS = ("json", "csv")
VERDICT_COLUMNS = ["id", "example", "verdict", "note", "user", "created", "retracted", "labels", "score"]


def _format(fmt: str | None) -> str:
    return fmt if fmt in REPORT_FORMATS else "json"


def verdict_rows(dataset: Dataset):
    for v in verdicts_of(dataset).iterator(chunk_size=2000):
        yield {"id": v.pk, "example": v.example.external_id, "verdict": v.verdict, "note": v.note,
               "user": v.user.get_username(), "created": v.created.isoformat(),
               "retracted": v.retracted.isoformat() if v.retracted else None,
               "labels": v.context.get("labels", {}), "score": v.context.get("score")}


def verdicts_response(dataset: Dataset, fmt: str | None):
    fmt = _format(fmt)
    name = f"verdicts-dataset-{dataset.pk}.{fmt}"
    if fmt == "csv":
        response = HttpResponse("".join(render_csv(verdict_rows(dataset), VERDICT_COLUMNS)),
                                content_type="text/csv; charset=utf-8")
    else:
        response = HttpResponse(json.dumps(list(verdict_rows(dataset)), indent=1), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def report_rows(report: dict[str, Any]):
    """The report flattened for CSV: one row per statistic."""
    for row in report["accuracy"]:
        yield {"statistic": "accuracy", "first": row["label_set"], "second": "gold", "n": row["n"],
               "value": row["accuracy"], "ci_low": row["ci_low"], "ci_high": row["ci_high"], "stratum": "",
               **_honesty(row)}
    for row in report["by_stratum"]:
        yield {"statistic": "accuracy", "first": row["label_set"], "second": "gold", "n": row["n"],
               "value": row["accuracy"], "ci_low": row["ci_low"], "ci_high": row["ci_high"], "stratum": row["stratum"],
               **_honesty(row)}
    for row in report["kappa"]:
        yield {"statistic": "cohen_kappa", "first": row["first"], "second": row["second"], "n": row["n"],
               "value": row["kappa"], "ci_low": row["ci_low"], "ci_high": row["ci_high"], "stratum": "",
               "warnings": row.get("undefined") or ""}
    for row in report["mcnemar"]:
        yield {"statistic": "mcnemar_exact_p", "first": row["first"], "second": row["second"], "n": row["n"],
               "value": row["p_value"], "ci_low": None, "ci_high": None, "stratum": ""}


def _honesty(row: dict[str, Any]) -> dict[str, Any]:
    """What stands beside an accuracy in the CSV: the set's balance, the majority-class rate, AUROC, warnings."""
    return {"balance": row.get("balance"), "majority_accuracy": row.get("majority_accuracy"),
            "auroc": row.get("auroc"), "warnings": " ".join(row.get("warnings") or [])}


REPORT_COLUMNS = ["statistic", "first", "second", "stratum", "n", "value", "ci_low", "ci_high", "balance",
                  "majority_accuracy", "auroc", "warnings"]


def report_response(report: dict[str, Any], fmt: str | None):
    fmt = _format(fmt)
    if fmt == "csv":
        response = HttpResponse("".join(render_csv(report_rows(report), REPORT_COLUMNS)),
                                content_type="text/csv; charset=utf-8")
    else:
        response = HttpResponse(json.dumps(report, indent=1), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="agreement-dataset-{report["dataset"]}.{fmt}"'
    return response
