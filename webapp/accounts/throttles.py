"""Sign-in attempts per client address: the sign-in page and the API's token endpoint share one limit."""

from __future__ import annotations

import logging

from rest_framework.throttling import AnonRateThrottle

log = logging.getLogger(__name__)


class LoginThrottle(AnonRateThrottle):
    scope = "login"
    rate = "10/min"

    def allow_request(self, request, view) -> bool:
        # The counts live in the shared cache (Redis). While it is unreachable, sign-in stays possible
        # (unlimited, and logged) rather than failing for everyone with a server error.
        try:
            return super().allow_request(request, view)
        except Exception:
            log.warning("sign-in rate limit unavailable: the cache is unreachable", exc_info=True)
            return True
