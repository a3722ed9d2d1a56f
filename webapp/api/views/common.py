"""What the API's endpoints share: the download formats and their schema."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.datasets.downloads import FORMATS
from webapp.review.exports import REPORT_FORMATS

from .. import serializers as s

IMPORT_ERRORS = {400: OpenApiResponse(s.ImportErrorSerializer, description="the file was rejected; nothing written")}
FORMAT_PARAM = OpenApiParameter("format", str, enum=list(FORMATS), default="jsonl",
                                description="; ".join(f"{name}: {label}" for name, label in FORMATS.items()))
DOWNLOAD = {
    (200, "application/x-ndjson"): OpenApiTypes.STR,
    (200, "text/csv"): OpenApiTypes.STR,
    (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
    (200, "application/zip"): OpenApiTypes.BINARY,
    (200, "application/json"): OpenApiTypes.STR,
    (200, "application/xml"): OpenApiTypes.STR,
    400: OpenApiResponse(description="an unknown format, or a Label Studio option out of its rules"),
}
# The options of a Label Studio export (format label-studio or label-studio-config).
_WORD, _NAME = r"^\S(.{0,98}\S)?$", r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$"
LABEL_STUDIO_PARAMS = [
    OpenApiParameter("true_choice", str, pattern=_WORD, description="Label Studio: the word of True (default True)"),
    OpenApiParameter("false_choice", str, pattern=_WORD,
                     description="Label Studio: the word of False (default False; not the true word)"),
    OpenApiParameter("from_name", str, pattern=_NAME,
                     description="Label Studio: the Choices control's name (default label; no field's name)"),
    OpenApiParameter("to_name", str, pattern=_NAME, description="Label Studio: the text the choice is about "
                                                                "(default: the last field the template shows)"),
]


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


class ApiRootView(APIView):
    """Where the API starts: its documentation and its main collections (no data of any dataset)."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request):
        return Response({name: request.build_absolute_uri(reverse(view)) for name, view in (
            ("docs", "api-docs"), ("redoc", "api-redoc"), ("schema", "api-schema"), ("token", "api-token"),
            ("datasets", "api-datasets"), ("runs", "api-runs"))})
