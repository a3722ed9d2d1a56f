"""Sign-in limits, shared by the sign-in page and the API's token endpoint: attempts per client address, and a
back-off per account after repeated wrong passwords.

The client's address is REMOTE_ADDR unless ICM_TRUSTED_PROXIES (DRF's NUM_PROXIES) says how many proxies in
front of the server append to X-Forwarded-For: a header any client can set never picks its own bucket."""

from __future__ import annotations

import hashlib
import logging
import math
import time

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.dispatch import receiver
from rest_framework.throttling import SimpleRateThrottle

log = logging.getLogger(__name__)


class LoginThrottle(SimpleRateThrottle):
    """Sign-in attempts per client address (signed in or not)."""

    scope = "login"
    rate = "10/min"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request, view) -> bool:
        # The counts live in the shared cache (Redis). While it is unreachable, sign-in stays possible
        # (unlimited, and logged) rather than failing for everyone with a server error.
        try:
            return super().allow_request(request, view)
        except Exception:
            log.warning("sign-in rate limit unavailable: the cache is unreachable", exc_info=True)
            return True

    def wait(self) -> float | None:
        # DRF's wait spreads the remaining requests over the window; the truth is when the oldest attempt
        # in the window leaves it.
        if not getattr(self, "history", None):
            return None
        return max(self.duration - (self.now - self.history[-1]), 0.0)


def _account_key(username: str) -> str:
    return "login-failures:" + hashlib.sha256(username.strip().lower().encode()).hexdigest()


def account_wait(username: str) -> float:
    """Seconds until `username` may try a password again (0: now). After ICM_LOGIN_FAILURES wrong passwords
    within ICM_LOGIN_LOCKOUT_S, the account waits out the rest of that window, whichever address asks."""
    try:
        failures = cache.get(_account_key(username)) or []
    except Exception:
        log.warning("sign-in back-off unavailable: the cache is unreachable", exc_info=True)
        return 0.0
    now = time.time()
    recent = [t for t in failures if now - t < settings.ICM_LOGIN_LOCKOUT_S]
    if len(recent) < settings.ICM_LOGIN_FAILURES:
        return 0.0
    return max(recent[-settings.ICM_LOGIN_FAILURES] + settings.ICM_LOGIN_LOCKOUT_S - now, 0.0)


def retry_after(seconds: float) -> int:
    """Whole seconds a client should wait: rounded up, never 0."""
    return max(1, math.ceil(seconds))


@receiver(user_login_failed)
def _count_failure(sender, credentials, request=None, **kwargs) -> None:
    username = credentials.get("username") or ""
    if not username:
        return
    try:
        key, now = _account_key(username), time.time()
        failures = [t for t in cache.get(key) or [] if now - t < settings.ICM_LOGIN_LOCKOUT_S]
        cache.set(key, [*failures, now][-settings.ICM_LOGIN_FAILURES:], timeout=settings.ICM_LOGIN_LOCKOUT_S)
    except Exception:
        log.warning("sign-in back-off unavailable: the cache is unreachable", exc_info=True)


@receiver(user_logged_in)
def _forget_failures(sender, user, request=None, **kwargs) -> None:
    forget_failures(user.get_username())


def forget_failures(username: str) -> None:
    try:
        cache.delete(_account_key(username))
    except Exception:
        log.warning("sign-in back-off unavailable: the cache is unreachable", exc_info=True)
