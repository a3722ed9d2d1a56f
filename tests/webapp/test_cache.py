"""The Redis cache backend keeps one connection pool per process, over real Redis servers.

Django makes a cache object per context, and under ASGI every request runs in a context of its own: with
Django's own Redis backend each of those connected to Redis afresh. The load test measured that as a
few milliseconds of every page's latency (docs/reliability.md)."""

from __future__ import annotations

import contextvars
import os
import shutil

import pytest
import redis
from django.core.cache import caches

from webapp.cache import SharedRedisCache
from webapp.settings import redis_caches

from .private_redis import REDIS_URL, PrivateRedis, redis_ok


def _require(ok: bool, why: str) -> None:
    if not ok:  # locally these skip without the service; in CI (.ci/run starts it) that is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)


@pytest.fixture
def server() -> redis.Redis:
    _require(redis_ok(), f"Redis is not reachable at {REDIS_URL}")
    return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)


def test_requests_in_their_own_contexts_share_one_connection(server, settings):
    settings.CACHES = redis_caches(REDIS_URL)  # as the product configures it
    before = server.info("stats")["total_connections_received"]
    objects, values = [], []

    def request(i: int) -> None:  # what one ASGI request does with the cache, in a fresh context
        cache = caches["default"]
        objects.append(cache)
        cache.set("shared-key", i)
        values.append(cache.get("shared-key"))

    for i in range(20):
        contextvars.Context().run(request, i)
    assert len({id(c) for c in objects}) == 20  # Django did make a cache object per context
    assert values == list(range(20))
    assert server.info("stats")["total_connections_received"] - before <= 1
    assert len({id(c._cache) for c in objects}) == 1
    # Other servers or options are another client.
    other = SharedRedisCache(REDIS_URL.rsplit("/", 1)[0] + "/14", {})
    assert other._cache is not objects[0]._cache


def test_the_shared_connection_survives_a_redis_restart(tmp_path):
    _require(shutil.which("redis-server") is not None, "redis-server is not installed")
    private = PrivateRedis(tmp_path)
    private.start()
    try:
        cache = SharedRedisCache(private.url, {})
        cache.set("k", 1)
        assert cache.get("k") == 1
        private.kill()
        with pytest.raises(redis.ConnectionError):
            cache.get("k")
        private.start()
        # The pooled connection died with the server; the next command connects again.
        assert cache.get("k") is None  # no persistence: the restarted server is empty
        cache.set("k", 2)
        assert SharedRedisCache(private.url, {}).get("k") == 2
    finally:
        private.kill()
