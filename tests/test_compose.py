"""docker-compose.yml validates (`docker-compose config`; no Docker engine runs here) and wires what it must."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def compose(tmp_path):
    exe = shutil.which("docker-compose") or shutil.which("docker")
    if exe is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("docker-compose is not installed (.ci/run installs it)")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    base = [exe] if exe.endswith("docker-compose") else [exe, "compose"]

    def run(*args: str) -> str:
        proc = subprocess.run([*base, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    return run


def test_compose_file_is_valid_and_complete(compose):
    config = yaml.safe_load(compose("--profile", "gpu", "config"))
    services = config["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "vllm"}
    for name in ("postgres", "redis", "web", "worker", "vllm"):
        assert "healthcheck" in services[name], name
    for name in ("web", "worker"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["postgres"]["condition"] == deps["redis"]["condition"] == "service_healthy"
        assert services[name]["environment"]["REDIS_URL"].startswith("redis://redis:")
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgres://")
    # Workers scale with --scale worker=N: nothing may pin a name or a host port.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "webapp", "worker"]
    # The web service runs several processes (uvicorn reads WEB_CONCURRENCY) over pooled connections.
    assert services["web"]["command"][:2] == ["uvicorn", "webapp.asgi:application"]
    assert int(services["web"]["environment"]["WEB_CONCURRENCY"]) > 1
    assert services["web"]["environment"]["DB_POOL"] == "1"
    # The vLLM server is optional: only `--profile gpu` starts it.
    assert services["vllm"]["profiles"] == ["gpu"]
    # Workers find the server and its model name in the env file; the server serves under that name.
    command = services["vllm"]["command"]
    for name in ("web", "worker"):
        env = services[name]["environment"]
        assert env["ICM_OPENAI_BASE_URL"] == "http://vllm:8000" and env["ICM_OPENAI_MODEL"] == "llama-3.1-8b"
    assert command[command.index("--served-model-name") + 1] == "llama-3.1-8b"
    assert "--enable-prefix-caching" in command and "--enable-prompt-tokens-details" in command

