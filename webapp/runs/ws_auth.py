"""Who is on the other end of a websocket: a token (header `Authorization: Token <key>` or `?token=`),
or the session cookie, which counts only with an Origin of this site (no cross-site hijacking)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from channels.auth import get_user
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host


@database_sync_to_async
def _user_for_token(key: str):
    from rest_framework.authtoken.models import Token

    try:
        token = Token.objects.select_related("user").get(key=key)
    except Token.DoesNotExist:
        return None
    return token.user if token.user.is_active else None


def _token_from(scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            kind, _, key = value.decode("latin1").partition(" ")
            if kind.lower() == "token" and key.strip():
                return key.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    values = query.get("token")
    return values[0] if values else None


def _origin_ok(scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"origin":
            host = urlparse(value.decode("latin1")).netloc
            domain, _port = split_domain_port(host)
            return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS or ["localhost", "127.0.0.1"])
    return False


class WebsocketAuthMiddleware:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        key = _token_from(scope)
        user = None
        if key is not None:
            user = await _user_for_token(key)
        elif _origin_ok(scope):
            user = await get_user(scope)
        scope["user"] = user or AnonymousUser()
        return await self.inner(scope, receive, send)
