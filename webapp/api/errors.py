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


def _api_or_page(page_handler, status_code: int, detail: str):
    """Django's own error answer (a page), or under /api/ the API's JSON shape: a URL that resolves to no
    view (an id past 2**63 - 1) or a request Django refuses before any view (a garbled multipart body)."""

    def handler(request, exception=None, **kwargs):
        if request.path_info.startswith("/api/"):
            from django.http import JsonResponse

            return JsonResponse({"detail": detail}, status=status_code)
        if status_code == 500:
            return page_handler(request, **kwargs)
        return page_handler(request, exception, **kwargs)

    return handler


def _handlers():
    from django.views import defaults

    return {
        400: _api_or_page(defaults.bad_request, 400, "Bad request: the body could not be read."),
        403: _api_or_page(defaults.permission_denied, 403, "You do not have permission to perform this action."),
        404: _api_or_page(defaults.page_not_found, 404, "Not found."),
        500: _api_or_page(defaults.server_error, 500, "Server error."),
    }


HANDLERS = _handlers()
bad_request, permission_denied, not_found, server_error = (HANDLERS[c] for c in (400, 403, 404, 500))
