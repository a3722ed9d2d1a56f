"""Refuse an oversized upload from its Content-Length, before Django reads (and spools) the body."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, JsonResponse

# Room for the form's other fields and multipart framing on top of the file itself.
_OVERHEAD = 1024 * 1024


class UploadSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.ICM_MAX_UPLOAD_BYTES
        if length > limit + _OVERHEAD:
            message = (f"the upload is {length / 1048576:.1f} MB; uploads are limited to "
                       f"{limit / 1048576:.0f} MB (ICM_MAX_UPLOAD_MB)")
            if request.path_info.startswith("/api/"):
                return JsonResponse({"detail": message}, status=413)
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
