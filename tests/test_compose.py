"""docker-compose.yml validates (`docker-compose config` where a compose command is installed, else the YAML with
its variables interpolated; no Docker engine runs here) and wires what it must."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _compose_cli() -> list[str] | None:
    """A compose command that works here: docker-compose, or docker with its compose plugin."""
    if shutil.which("docker-compose"):
        return [shutil.which("docker-compose")]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=60).returncode == 0:
        return [docker, "compose"]
    return None


# Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}; $$ is a literal $.
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?-)([^}]*))?\}")


def _interpolate(value, env: dict[str, str]):
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, default = m.groups()
        if name in env and (env[name] or op != ":-"):
            return env[name]
        return default if op else ""

    return _VARIABLE.sub(one, value)


def _config_without_docker(folder: Path) -> str:
    """What `compose --profile gpu config` gives that the test reads, where no compose command is installed:
    the YAML (anchors and merge keys resolved) with the .env file's variables interpolated, and each service's
    env_file merged under its environment."""

    def env_file(name: str) -> dict[str, str]:
        out = {}
        for line in (folder / name).read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                out[key.strip()] = value.strip().strip("'\"")
        return out

    config = _interpolate(yaml.safe_load((folder / "docker-compose.yml").read_text()), env_file(".env"))
    for service in config["services"].values():
        files = service.pop("env_file", [])
        for name in [files] if isinstance(files, str) else files:
            service["environment"] = {**env_file(name), **service.get("environment", {})}
    return yaml.safe_dump(config)


@pytest.fixture
def compose(tmp_path):
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    base = _compose_cli()

    def run(*args: str) -> str:
        if base is None:  # validated by the YAML parser and our interpolation instead
            return _config_without_docker(tmp_path)
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

