"""The embedded server as a user starts it (`make run`): migrate, a user, then uvicorn serving webapp.asgi on
loopback with a SQLite file, no Redis, so runs execute in the server's own worker thread. For tests that talk
to it over HTTP and websockets as any client would."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Server:
    url: str
    username: str
    password: str
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(folder: Path, **extra: str) -> dict[str, str]:
    """The server's environment: the embedded default in `folder`, whatever the test process has set."""
    # What would take the server off the embedded default (Celery and Redis, another database, a test's dispatch
    # setting or a plugin) comes only from `extra`.
    dropped = ("REDIS_URL", "DATABASE_URL", "ICM_RUN_DISPATCH", "ICM_BACKEND_PLUGINS", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update({"DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}", "ICM_VAR_DIR": str(folder / "var"),
                "SECRET_KEY": secrets.token_urlsafe(32), "HTTPS": "0", "ICM_START_WORKER": "1",
                "ALLOWED_HOSTS": "127.0.0.1", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
                "OMP_WAIT_POLICY": "PASSIVE", **extra})
    return env


@contextlib.contextmanager
def embedded_server(folder: Path, *, username: str = "ada", startup_s: float = 90.0,
                    **env_extra: str) -> Iterator[Server]:
    """A running server in `folder` (its database, its log) with one user; stopped, its process group and
    all, on exit. `env_extra`: settings for the server (ICM_BACKEND_PLUGINS=tests.fakes for a test backend)."""
    folder.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    env = server_env(folder, **env_extra)
    manage = [sys.executable, "manage.py"]
    for args in (["migrate", "--noinput"], ["createsuperuser", "--noinput", "--username", username,
                                            "--email", f"{username}@example.org"]):
        done = subprocess.run([*manage, *args], cwd=ROOT, env={**env, "DJANGO_SUPERUSER_PASSWORD": password},
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    port = _free_port()
    log = folder / "server.log"
    with log.open("w") as out:
        # Its own process group: stopping it stops whatever it started, the worker thread's model with it.
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "webapp.asgi:application", "--host", "127.0.0.1", "--port", str(port),
             "--lifespan", "off", "--no-proxy-headers", "--no-server-header", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", username, password, log)
    try:
        deadline = time.monotonic() + startup_s
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/api/", timeout=5).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{server.log_tail()}")
            time.sleep(0.3)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
