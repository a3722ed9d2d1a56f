"""Production mode: real Redis, real Celery worker processes, the real PostgreSQL test database.

The worker runs `celery -A webapp worker` in a subprocess against the same test database, with the
deterministic fake backend (ICM_BACKEND_PLUGINS=tests.fakes) so the tests are about the machinery: progress over
the websocket, a worker killed with SIGKILL and replaced, and cancel.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token

from webapp.runs.execution import execute_run
from webapp.runs.models import Run
from webapp.runs.services import create_run
from webapp.settings import redis_channel_layers

from .private_redis import REDIS_URL, PrivateRedis, redis_ok
from .runs_helpers import FAKE, advance, fake_dataset, labels_of, release_until, wait_for

ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 3
PARAMS = {"iterations": 60, "batch_size": 64, "num_seed": 4, "fix_steps": 2}

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery]


def _database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Workers:
    """Celery worker processes on the test database; each is killed at the end of the test."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.redis_url = REDIS_URL

    def start(self) -> subprocess.Popen:
        n = len(self.procs)
        log = self.tmp / f"worker{n}.log"
        # Progress and checkpoints at every step: where a gated run waits is what it has written.
        env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": self.redis_url,
               "ICM_BACKEND_PLUGINS": "tests.fakes", "ICM_RUN_LEASE_S": str(LEASE_S), "ICM_CHECKPOINT_S": "0",
               "ICM_PROGRESS_S": "0", "ICM_START_WORKER": "0", "HTTPS": "0", "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "webapp", "worker", "--pool=solo", "-l", "info",
             "--without-gossip", "--without-mingle", "-n", f"test{n}-{os.getpid()}@%h"],
            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if "ready." in log.read_text():
                return proc
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"celery worker did not start:\n{log.read_text()[-3000:]}")

    def logs(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.tmp.glob("worker*.log")))

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _reference_run(owner, ds, seed: int, config: dict) -> Run:
    """The uninterrupted run a faulted one must match, executed here (callers set dispatch to "none" first)."""
    reference = create_run(user=owner, dataset=ds, backend=FAKE, seed=seed, config=config,
                           backend_options={"delay": 0.0})
    assert execute_run(reference.pk) == "succeeded"
    reference.refresh_from_db()
    return reference


@pytest.fixture
def workers(settings, tmp_path):
    # Locally these skip without the services; in CI (.ci/run starts both) a missing one is a failure.
    missing = pytest.fail if os.environ.get("CI") else pytest.skip
    if connection.vendor != "postgresql":
        missing("the worker process shares the test database: needs DATABASE_URL on PostgreSQL (as in CI)")
    if not redis_ok():
        missing(f"Redis is not reachable at {REDIS_URL}")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    from webapp.celery import app

    app.conf.broker_url = REDIS_URL
    settings.ICM_RUN_DISPATCH = "celery"
    settings.ICM_RUN_LEASE_S = LEASE_S
    settings.ICM_WS_MIN_INTERVAL_S = 0.1
    settings.CHANNEL_LAYERS = redis_channel_layers(REDIS_URL)
    pool = Workers(tmp_path)
    yield pool
    pool.stop()
    connection.close()


def test_queued_running_succeeded_with_progress_over_the_websocket(workers, owner, owner_api):
    from webapp.asgi import application

    workers.start()
    ds = fake_dataset(owner, n=32)
    token = Token.objects.get_or_create(user=owner)[0].key
    resp = owner_api.post("/api/runs/", {"dataset": ds.pk, "task": "claims", "backend": FAKE,
                                         "config": PARAMS}, format="json")
    assert resp.status_code == 201
    run_id = resp.json()["id"]
    assert resp.json()["status"] == "queued"  # queued in the request; the worker starts it after commit

    async def watch():
        comm = WebsocketCommunicator(application, f"/ws/runs/{run_id}/?format=json&token={token}")
        connected, _ = await comm.connect()
        assert connected
        seen = [json.loads(await comm.receive_from(timeout=30))]
        while seen[-1]["status"] not in ("succeeded", "failed"):
            seen.append(json.loads(await comm.receive_from(timeout=30)))
        await comm.disconnect()
        return seen

    seen = async_to_sync(watch)()
    assert seen[-1]["status"] == "succeeded", workers.logs()
    statuses = [m["status"] for m in seen]
    assert "running" in statuses
    assert len([m for m in seen if m["status"] == "running"]) >= 3
    run = Run.objects.get(pk=run_id)
    assert run.attempts == 1 and run.label_set is not None and run.worker
    assert run.label_set.labels.count() == run.progress["labeled"] > 0


def test_an_idle_websocket_stays_open_on_the_redis_channel_layer(workers, owner, settings):
    # The consumer's channel-layer read blocks for 5 s at a time; a socket timeout that races it closed
    # every idle live page after about 5 s (redis-py 8 with channels_redis 4.3).
    from webapp.asgi import application

    settings.ICM_RUN_DISPATCH = "none"
    run = _reference_run(owner, fake_dataset(owner, n=8), seed=0, config=PARAMS)
    token = Token.objects.get_or_create(user=owner)[0].key

    async def idle():
        comm = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/?format=json&token={token}")
        connected, _ = await comm.connect()
        assert connected
        first = json.loads(await comm.receive_from(timeout=10))
        assert await comm.receive_nothing(timeout=12, interval=0.5)  # a finished run: nothing to say
        await comm.send_to(text_data="snapshot")
        again = json.loads(await comm.receive_from(timeout=10))
        await comm.disconnect()
        return first, again

    first, again = async_to_sync(idle)()
    assert first["status"] == again["status"] == "succeeded" and again["id"] == run.pk


def test_worker_killed_mid_run_resumes_with_identical_labels(workers, owner, settings, redis_call_gate):
    ds = fake_dataset(owner, n=32)
    # The uninterrupted reference, executed here, with the same seed and config.
    settings.ICM_RUN_DISPATCH = "none"
    reference = _reference_run(owner, ds, seed=11, config=PARAMS)

    settings.ICM_RUN_DISPATCH = "celery"
    first = workers.start()
    run = create_run(user=owner, dataset=ds, backend=FAKE, seed=11, config=PARAMS,
                     backend_options={"delay": 0.0, **redis_call_gate.options})
    advance(redis_call_gate, run.pk, lambda r: r.checkpoint is not None and (r.progress.get("step") or 0) >= 15)
    first.kill()  # SIGKILL while its run waits on a model call: the message stays unacknowledged
    first.wait()
    killed_at = Run.objects.get(pk=run.pk)
    assert killed_at.status == "running" and killed_at.attempts == 1
    redis_call_gate.open()
    workers.start()  # its recovery loop takes the run over once the dead worker's heartbeat is stale
    done = wait_for(run.pk, {"succeeded", "failed"}, timeout=120)
    assert done.status == "succeeded", done.error + workers.logs()
    assert done.attempts == 2
    assert labels_of(done) == labels_of(reference)


def test_cancel_a_running_celery_run(workers, owner, owner_api, redis_call_gate):
    workers.start()
    ds = fake_dataset(owner, n=32)
    run = create_run(user=owner, dataset=ds, backend=FAKE, config=PARAMS | {"iterations": 400},
                     backend_options={"delay": 0.0, **redis_call_gate.options})
    advance(redis_call_gate, run.pk, lambda r: (r.progress.get("step") or 0) >= 10)
    assert owner_api.post(f"/api/runs/{run.pk}/cancel/").status_code == 200
    asked = timezone.now()
    # The worker's heartbeat reads the request on its next beat (one stamped after the request committed).
    wait_for(run.pk, {"running"}, timeout=LEASE_S * 2, predicate=lambda r: r.heartbeat > asked)
    done, released = release_until(redis_call_gate, run.pk, {"cancelled", "failed", "succeeded"})
    assert done.status == "cancelled", done.error + workers.logs()
    assert released <= 4  # it stopped at its next iteration, not at the end of the search
    assert done.label_set is not None and done.label_set.partial
    assert done.checkpoint is not None


def test_sharded_run_spreads_over_workers_with_the_labels_of_one_run(workers, owner, settings, redis_call_gate):
    ds = fake_dataset(owner, n=48)
    params = PARAMS | {"batch_size": 12, "iterations": 30}  # 4 batches
    settings.ICM_RUN_DISPATCH = "none"
    reference = _reference_run(owner, ds, seed=5, config=params)

    settings.ICM_RUN_DISPATCH = "celery"
    workers.start()
    workers.start()
    parent = create_run(user=owner, dataset=ds, backend=FAKE, seed=5, config=params, shards=4,
                        backend_options={"delay": 0.0, **redis_call_gate.options})
    # Two calls held at once: each solo worker is inside a shard of its own.
    assert redis_call_gate.wait_arrival(60) and redis_call_gate.wait_arrival(60), workers.logs()
    redis_call_gate.open()
    done = wait_for(parent.pk, {"succeeded", "failed", "cancelled"}, timeout=120)
    assert done.status == "succeeded", done.error + workers.logs()
    assert labels_of(done) == labels_of(reference)
    assert not done.label_set.partial
    # Both worker processes took shards (each shard records the worker that ran it).
    hosts = {w.split(":")[1] for w in done.shards.values_list("worker", flat=True)}
    assert len(hosts) == 2, hosts


def test_scalebench_times_sharded_runs_on_real_workers(workers, settings, monkeypatch, tmp_path, capsys):
    from django.core.management import call_command

    from bench import scalebench

    from .runs_helpers import TEMPLATE, fake_rows

    data = tmp_path / "fake.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in fake_rows(16)))
    settings.REDIS_URL = REDIS_URL
    # The command's workers inherit its environment: point them at the test database and the fake backend.
    monkeypatch.setenv("DATABASE_URL", _database_url())
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("ICM_BACKEND_PLUGINS", "tests.fakes")
    monkeypatch.setenv("HTTPS", "0")
    call_command(scalebench.Command(), str(data), "--task", "claims", "--template", TEMPLATE, "--consistency", "none",
                 "--backend", FAKE, "--limit", "16",
                 "--batch-size", "4", "--iterations", "3", "--workers", "1,2")
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["workers"] for r in result["rows"]] == [1, 2]
    for row in result["rows"]:
        assert row["examples"] == 16 and row["labeled"] == 16 and row["shards"] == 4 and row["wall_s"] > 0
    assert result["rows"][1]["workers_used"] == 2
    assert not Run.objects.filter(dataset__name__startswith="scalebench").exists()  # cleaned up


def test_redis_restart_mid_run_keeps_the_run_and_the_worker(workers, owner, settings, tmp_path, redis_call_gate):
    import shutil

    if shutil.which("redis-server") is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("redis-server is not installed")
    from webapp.celery import app
    from webapp.runs.tasks import execute

    ds = fake_dataset(owner, n=32)
    settings.ICM_RUN_DISPATCH = "none"  # this test queues its runs itself
    reference = _reference_run(owner, ds, seed=13, config=PARAMS)

    private = PrivateRedis(tmp_path)
    private.start()

    def queue_on_private(**kwargs):
        # The test process's Celery app may already hold pooled connections to the suite's Redis: send
        # to the private broker explicitly (the worker's REDIS_URL is the private one).
        run = create_run(user=owner, dataset=ds, backend=FAKE, config=PARAMS, **kwargs)
        with app.connection_for_write(private.url) as conn:
            execute.apply_async((run.pk,), connection=conn)
        return run

    try:
        workers.redis_url = private.url
        workers.start()
        # The gate is on the suite's Redis, which stays up; the worker's broker and channel layer are private.
        run = queue_on_private(seed=13, backend_options={"delay": 0.0, **redis_call_gate.options})
        advance(redis_call_gate, run.pk, lambda r: (r.progress.get("step") or 0) >= 10)
        private.kill()  # the broker and the channel layer vanish mid-run, queue and all
        # The search goes on without Redis: it makes its next model calls, and the run stays running.
        for _ in range(5):
            redis_call_gate.release(1)
            assert redis_call_gate.wait_arrival(30), workers.logs()
        assert Run.objects.get(pk=run.pk).status == "running"
        private.start()
        redis_call_gate.open()
        done = wait_for(run.pk, {"succeeded", "failed"}, timeout=120)
        assert done.status == "succeeded", done.error + workers.logs()
        assert labels_of(done) == labels_of(reference)
        # The worker reconnected to the restarted broker: it takes a new run.
        again = queue_on_private(seed=1, backend_options={"delay": 0.0})
        assert wait_for(again.pk, {"succeeded", "failed"}, timeout=90).status == "succeeded", workers.logs()
    finally:
        workers.stop()
        private.kill()


def _restart_postgresql() -> None:
    """Restart the local cluster (fast shutdown: every connection, the test's own too, is cut)."""
    import shutil

    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        (pytest.fail if os.environ.get("CI") else pytest.skip)("no local PostgreSQL cluster to restart")
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
    proc = subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"],
                          capture_output=True, text=True, timeout=60)
    for _ in range(60):
        if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"]).returncode == 0:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"PostgreSQL did not come back: {proc.stderr}")


def test_postgresql_restart_mid_run_resumes_with_identical_labels(workers, owner, owner_api, settings, redis_call_gate):
    ds = fake_dataset(owner, n=32)
    settings.ICM_RUN_DISPATCH = "none"
    reference = _reference_run(owner, ds, seed=17, config=PARAMS)
    expected = labels_of(reference)

    settings.ICM_RUN_DISPATCH = "celery"
    workers.start()
    run = create_run(user=owner, dataset=ds, backend=FAKE, seed=17, config=PARAMS,
                     backend_options={"delay": 0.0, **redis_call_gate.options})
    advance(redis_call_gate, run.pk, lambda r: r.checkpoint is not None and (r.progress.get("step") or 0) >= 10)
    _restart_postgresql()  # while the run waits on a model call, its connections are cut
    connection.close()  # ours was cut with the rest
    redis_call_gate.open()
    done = wait_for(run.pk, {"succeeded", "failed"}, timeout=180)
    print(f"after the restart: {done.status}, attempts {done.attempts}, error {done.error[:200]!r}")
    if done.status == "failed":
        # Where the worker could still record the failure: a clear error, and resume finishes the run.
        assert done.error, workers.logs()
        assert owner_api.post(f"/api/runs/{run.pk}/resume/").status_code == 200
        done = wait_for(run.pk, {"succeeded", "failed"}, timeout=120)
    assert done.status == "succeeded", done.error + workers.logs()
    assert labels_of(done) == expected
    assert done.label_set.partial == reference.label_set.partial  # no half-written set: as complete as the reference
    assert done.label_set.labels.count() == len(expected)


@contextlib.contextmanager
def _production_server(tmp_path: Path, token: str, processes: int = 2, **env_extra: str):
    """uvicorn serving webapp.asgi as production does (pooled connections), on loopback; yields an httpx
    client signed in with the API token."""
    import httpx

    from bench.processes import spawn, stop

    port = _free_port()
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": REDIS_URL, "DB_POOL": "1", "HTTPS": "0",
           "ICM_START_WORKER": "0", "ALLOWED_HOSTS": "127.0.0.1", "PYTHONUNBUFFERED": "1", **env_extra}
    log = tmp_path / "server.log"
    server = spawn(["uvicorn", "webapp.asgi:application", "--host", "127.0.0.1", "--port", str(port), "--workers",
                    str(processes), "--lifespan", "off", "--log-level", "warning"], log=log, env=env)
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Token {token}"},
                           timeout=30)
        deadline = time.monotonic() + 60
        while True:
            try:
                if api.get("/api/datasets/").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, log.read_text()
            time.sleep(0.3)
        yield api
    finally:
        stop([server])


def test_no_verdict_is_lost_over_a_postgresql_restart_and_the_pool_reconnects(workers, owner, tmp_path):
    # The production server (uvicorn, 2 processes, pooled connections) takes verdicts before and after a
    # restart that cuts every pooled connection: each acknowledged verdict is stored, and the pool checks
    # a connection before handing it out, so no request after the restart fails on a dead one.
    from webapp.datasets.models import Example
    from webapp.review.models import Verdict

    ds = fake_dataset(owner, n=8)
    examples = list(Example.objects.filter(dataset=ds).values_list("pk", flat=True))
    token = Token.objects.get_or_create(user=owner)[0].key
    acknowledged: list[int] = []
    with _production_server(tmp_path, token) as api:
        def give(n: int) -> list[int]:
            codes = []
            for i in range(n):
                resp = api.post(f"/api/datasets/{ds.pk}/verdicts/",
                                json={"example": examples[i % len(examples)], "verdict": "ambiguous"})
                codes.append(resp.status_code)
                if resp.status_code == 201:
                    acknowledged.append(resp.json()["id"])
            return codes

        assert give(12) == [201] * 12  # every pooled connection of both processes in use
        _restart_postgresql()
        connection.close()  # ours was cut with the rest
        assert give(12) == [201] * 12, (tmp_path / "server.log").read_text()[-3000:]
    stored = set(Verdict.objects.filter(dataset=ds).values_list("pk", flat=True))
    assert set(acknowledged) <= stored and len(acknowledged) == 24


def test_the_production_server_serves_pages_uploads_and_exports_from_its_thread_pool(workers, owner, tmp_path):
    # Pages and the API go through Django's WSGI handler on a fixed pool of threads per process (a2wsgi):
    # a multi-megabyte upload arrives whole through the bridged request body, a streamed export whole,
    # the form sign-in with its CSRF token and the rate limit by client address work, and more requests
    # at once than the pool has threads all get their answers.
    import re
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from webapp.datasets.models import Dataset, Example

    token = Token.objects.get_or_create(user=owner)[0].key
    rows = [{"id": f"r{i}", "question": f"Question {i}? " + "x" * 2000, "choice": f"answer {i}", "label": i % 2 == 0}
            for i in range(1500)]
    body = "\n".join(json.dumps(r) for r in rows).encode()
    assert len(body) > 3_000_000
    with _production_server(tmp_path, token, processes=1, HTTP_THREADS="2") as api:
        resp = api.post("/api/datasets/", files={"file": ("big.jsonl", body)}, data={"task": "truthfulqa"})
        assert resp.status_code == 201, resp.text[:2000]
        ds = Dataset.objects.get(pk=resp.json()["id"])
        assert Example.objects.filter(dataset=ds).count() == 1500
        assert Example.objects.get(dataset=ds, external_id="r1499").fields["question"] == rows[1499]["question"]
        export = api.get(f"/api/datasets/{ds.pk}/export/", params={"format": "jsonl"})
        assert export.status_code == 200 and len(export.text.splitlines()) == 1500

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: api.get(f"/api/datasets/{ds.pk}/").status_code, range(16)))
        assert codes == [200] * 16

        def sign_in_form() -> tuple[httpx.Client, str]:  # a browser's first visit: its cookie and the form's token
            client = httpx.Client(base_url=str(api.base_url), timeout=30)
            form = client.get("/accounts/login/").text
            return client, re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)

        page, csrf = sign_in_form()
        signed_in = page.post("/accounts/login/", data={"csrfmiddlewaretoken": csrf, "username": owner.username,
                                                        "password": f"{owner.username}-Pa55word!"})
        assert signed_in.status_code == 302, signed_in.text[:2000]
        assert page.get(f"/datasets/{ds.pk}/").status_code == 200
        assert page.post("/accounts/login/", data={"username": owner.username}).status_code == 403  # no token

        stranger, token_form = sign_in_form()
        codes = [stranger.post("/accounts/login/", data={"csrfmiddlewaretoken": token_form, "username": "nobody",
                                                         "password": "wrong"}).status_code for _ in range(12)]
        assert codes[-1] == 429, codes  # counted by the client's address, which the bridge passes on


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_loadtest_measures_review_actions_and_progress_delivery(workers, settings, monkeypatch, capsys):
    from django.core.management import call_command

    from bench import loadtest

    settings.REDIS_URL = REDIS_URL
    monkeypatch.setenv("DATABASE_URL", _database_url())
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    call_command(loadtest.Command(), "--reviewers", "4", "--watchers", "2", "--duration", "4", "--examples", "40",
                 "--run-examples", "256")
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    latency = result["latency_ms"]
    # Every kind of action was measured: whole pages, htmx item swaps, verdicts from the page and the API.
    assert all(row["n"] > 0 for row in latency.values()), latency
    assert all(row["errors"] == 0 for row in latency.values()), latency
    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.filter(username__startswith="loadtest-").exists()  # cleaned up
