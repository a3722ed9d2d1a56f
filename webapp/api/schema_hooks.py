"""The schema says every status the API answers with: drf-spectacular documents a view's success and what a
view declares; the refusals every operation shares (DRF's and Django's) are added here."""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "description": "`detail` says what went wrong; a refused field is a key with its messages",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}
SHARED = {
    "400": "bad input: a field, a query parameter or the body (the body names each problem)",
    "401": "no credentials, or a token that no longer works",
    "403": "the role in this dataset does not allow it",
    "404": "no such object, or not one of the caller's datasets",
}


def document_refusals(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for code, description in SHARED.items():
                if code == "401" and not operation.get("security", [{}]):
                    continue  # an endpoint that asks for no credentials
                responses.setdefault(code, {"description": description, "content": ref})
            if "multipart/form-data" in operation.get("requestBody", {}).get("content", {}):
                responses.setdefault("413", {"description": "the upload is larger than ICM_MAX_UPLOAD_MB",
                                             "content": ref})
            if path.rstrip("/").endswith(("/auth/token", "/accept")):  # the sign-in limits (LoginThrottle)
                responses.setdefault("429", {
                    "description": "too many attempts from this address (or, signing in, for this account); "
                                   "Retry-After says when to try again", "content": ref,
                    "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}})
    return result
