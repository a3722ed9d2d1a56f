"""Sign-in attempts per client address: the sign-in page and the API's token endpoint share one limit."""

from __future__ import annotations

from rest_framework.throttling import AnonRateThrottle


class LoginThrottle(AnonRateThrottle):
    scope = "login"
    rate = "10/min"
