"""Redis for the tests: the suite's server (database 15, `ICM_TEST_REDIS_URL`) and servers of a test's own,
to kill and restart mid-test."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

REDIS_URL = os.environ.get("ICM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_ok(url: str = REDIS_URL) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


class PrivateRedis:
    """A Redis server of the test's own (no persistence), so it can be killed and restarted mid-run."""

    def __init__(self, tmp: Path):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.tmp, self.proc = tmp, None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.tmp)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise AssertionError("private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
