"""The Redis cache backend, with one client (and so one connection pool) per process."""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

_clients: dict[str, RedisCacheClient] = {}
_lock = threading.Lock()


class SharedRedisCache(RedisCache):
    """Django keeps the Redis connection pool on the cache object, and cache objects are per context: under
    ASGI every request runs in a context of its own, so every request that touched the cache opened a new
    connection to Redis (TCP connect, redis-py's handshake commands) and dropped it. The client here is
    shared by the process's cache objects with the same servers and options; redis-py's pools are
    thread-safe, re-create a connection that died (a Redis restart) and start afresh in a forked child."""

    @cached_property
    def _cache(self) -> RedisCacheClient:
        key = repr((self._servers, sorted(self._options.items())))
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = self._class(self._servers, **self._options)
        return client

