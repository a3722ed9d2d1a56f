"""Map the domain's errors onto HTTP: bad input is 400 with every located problem; refusals are 403."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from icm_engine.facade import DataError


def problems_payload(exc: DataError) -> dict:
    return {
        "detail": str(exc),
        "problems": [
            {"file": p.source, "row": p.row, "field": p.field, "message": p.message} for p in exc.problems
        ],
    }


def exception_handler(exc, context):
    if isinstance(exc, DataError):
        return Response(problems_payload(exc), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response(detail, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)
