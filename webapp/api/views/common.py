"""What the API's endpoints share: the download formats and their schema."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.exceptions import ValidationError

from webapp.datasets.exports import FORMATS
from webapp.review.exports import REPORT_FORMATS

from .. import serializers as s

IMPORT_ERRORS = {400: OpenApiResponse(s.ImportErrorSerializer, description="the file was rejected; nothing written")}
FORMAT_PARAM = OpenApiParameter("format", str, enum=list(FORMATS), default="jsonl", description="jsonl or csv")
DOWNLOAD = {
    (200, "application/x-ndjson"): OpenApiTypes.STR,
    (200, "text/csv"): OpenApiTypes.STR,
}


REPORT_FORMAT_PARAM = OpenApiParameter("format", str, enum=list(REPORT_FORMATS), default="json",
                                       description="json or csv")


def report_format(request) -> str:
    fmt = request.query_params.get("format", "json")
    if fmt not in REPORT_FORMATS:
        raise ValidationError({"format": f"format must be one of {', '.join(REPORT_FORMATS)}"})
    return fmt


def download_format(request) -> str:
    fmt = request.query_params.get("format", "jsonl")
    if fmt not in FORMATS:
        raise ValidationError({"format": f"format must be one of {', '.join(FORMATS)}"})
    return fmt
