"""Load test on loopback: many reviewers paging the review queue and giving verdicts while a run streams
its progress over a websocket.

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python bench/loadtest.py --reviewers 50 --duration 30

It starts the production web server (uvicorn, `--web-workers` processes, pooled database connections) and
a Celery worker (subprocesses, this environment), creates a dataset with gold and model labels, N
reviewer accounts and a second, larger dataset for an ICM run whose model is the deterministic fake (a
fixed delay per call, as a model served elsewhere: the web tier is what is measured, not the model).
Then for `--duration` seconds each reviewer acts as in a browser: now and then the whole queue page,
otherwise the htmx swap of one item (what the page's links fetch), each followed by a verdict, from the
page's buttons (answered with the next item) or through the API, back to back or with a human pause
between actions (`--think`), while websocket clients watch the run. Progress delivery latency is the
time from the worker's progress write (`progress.updated`) to the message's arrival. It prints
p50/p95/p99 and errors, and last one JSON line. Everything it created is deleted at the end.
"""

from __future__ import annotations

if __name__ == "__main__":  # run as a script: the repository root on the path, then Django
    import os.path
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.django_setup import main, setup

setup()

import asyncio
import json
import os
import random
import re
import socket
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.test import Client
from rest_framework.authtoken.models import Token

from bench.processes import spawn, stop
from icm_engine.facade import load_plugins
from webapp.datasets.models import Example, Membership, Role
from webapp.datasets.services import create_dataset, import_label_set
from webapp.review.models import VerdictKind
from webapp.runs.models import Run, RunStatus
from webapp.runs.services import cancel_run, create_run

FAKE = "slow-fake"
FAKE_PLUGIN = "tests.fakes"  # the deterministic fake model of the test suite, slowed down
TEMPLATE = "Item: {text}\nLabel:"
PREFIX = "loadtest-"
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Command(BaseCommand):
    help = "Latency of review actions and of websocket progress under concurrent reviewers (loopback)."

    def add_arguments(self, parser):
        parser.add_argument("--reviewers", type=int, default=50)
        parser.add_argument("--watchers", type=int, default=5, help="websocket clients watching the run")
        parser.add_argument("--duration", type=float, default=30.0)
        parser.add_argument("--examples", type=int, default=200, help="items of the reviewed dataset")
        parser.add_argument("--run-examples", type=int, default=4000,
                            help="items of the dataset the watched run labels, batch after batch (64 iterations each)")
        parser.add_argument("--think", type=float, default=0.0,
                            help="mean pause (s, exponential) of a reviewer between actions; 0: back to back")
        parser.add_argument("--warmup", type=float, default=5.0,
                            help="seconds of the same load before measuring (each process compiles its templates, "
                                 "opens its connections)")
        parser.add_argument("--web-workers", type=int, default=4, help="uvicorn processes serving the app")
        parser.add_argument("--worker-nice", type=int, default=0,
                            help="the Celery worker's CPU priority below the web server's; 6 is about a quarter of its "
                                 "scheduler weight, as docker-compose.yml's cpu_shares give workers; 0: the same")
        parser.add_argument("--port", type=int, default=0)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **o):
        if not settings.REDIS_URL or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
            raise CommandError("loadtest needs REDIS_URL and a PostgreSQL DATABASE_URL (server and worker share them)")
        port = o["port"] or _free_port()
        owner, dataset, reviewers = self._setup(o["examples"], o["reviewers"], o["seed"])
        run_dataset = create_dataset(owner=owner, filename="run.jsonl", name=f"{PREFIX}run", task="claims",
                                     template=TEMPLATE, consistency="none", data=_items(o["run_examples"]))
        Membership.objects.bulk_create([Membership(dataset=run_dataset, user_id=r["user"], role=Role.VIEWER)
                                        for r in reviewers[: o["watchers"]]])
        logs = Path(tempfile.mkdtemp(prefix="loadtest-"))
        env = {**os.environ, "ICM_BACKEND_PLUGINS": FAKE_PLUGIN, "ICM_START_WORKER": "0", "HTTPS": "0", "DEBUG": "0",
               "ALLOWED_HOSTS": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1"}
        procs = [
            spawn(["celery", "-A", "webapp", "worker", "--pool=solo", "-l", "warning", "--without-gossip",
                   "--without-mingle", "-n", f"loadtest-{os.getpid()}@%h"], log=logs / "worker.log", env=env,
                  nice=o["worker_nice"]),
            # As docker-compose.yml serves it: several processes over pooled connections.
            spawn(["uvicorn", "webapp.asgi:application", "--host", "127.0.0.1", "--port", str(port), "--workers",
                   str(o["web_workers"]), "--lifespan", "off", "--no-access-log", "--log-level", "warning",
                   "--timeout-keep-alive", "75"],
                  log=logs / "server.log", env={**env, "DB_POOL": "1"}),
        ]
        run = None
        try:
            base = f"http://127.0.0.1:{port}"
            self._wait_server(base, procs[1], logs)
            load_plugins([FAKE_PLUGIN])
            # A run that waits on its model, as one served elsewhere: it labels a large dataset in the paper's
            # batches of 64, a bounded number of iterations each, so it keeps calling the model (a search
            # left on one converged batch answers from its score cache and spins the CPU instead).
            run = create_run(user=owner, dataset=run_dataset, backend=FAKE, seed=o["seed"],
                             config={"iterations": 64, "batch_size": 64, "num_seed": 4},
                             backend_options={"delay": 0.05})
            deadline = time.monotonic() + 60
            while Run.objects.get(pk=run.pk).status != RunStatus.RUNNING:
                if time.monotonic() > deadline:
                    raise CommandError(f"the run did not start:\n{(logs / 'worker.log').read_text()[-2000:]}")
                time.sleep(0.2)
            examples = list(Example.objects.filter(dataset=dataset).values_list("pk", flat=True))
            result = _event_loop_runner()(_load(base, dataset.pk, run.pk, examples, reviewers, o))
            # The run must have streamed for the whole window, or the progress figures cover less.
            done = Run.objects.get(pk=run.pk)
            result["run"] = {"status": done.status, "step": (done.progress or {}).get("step"),
                             "total_steps": (done.progress or {}).get("total_steps")}
        finally:
            if run is not None and Run.objects.get(pk=run.pk).status in (RunStatus.QUEUED, RunStatus.RUNNING):
                cancel_run(user=owner, run=run)
                time.sleep(2)
            stop(procs)
            dataset.delete()
            run_dataset.delete()
            get_user_model().objects.filter(username__startswith=PREFIX).delete()
        for name, row in result["latency_ms"].items():
            self.stdout.write(f"{name:>18}: n={row['n']:6d}  p50={row['p50']:7.1f} ms  p95={row['p95']:7.1f} ms  "
                              f"p99={row['p99']:7.1f} ms  errors={row['errors']}")
        self.stdout.write(json.dumps(result))

    def _setup(self, n: int, n_reviewers: int, seed: int):
        rng = random.Random(seed)
        User = get_user_model()
        owner = User.objects.create_user(f"{PREFIX}owner")
        dataset = create_dataset(owner=owner, filename="load.jsonl", name=f"{PREFIX}dataset", task="claims",
                                 template=TEMPLATE, consistency="none", data=_items(n))
        labels = "\n".join(json.dumps({"id": f"e{i}", "label": rng.random() < 0.5}) for i in range(n))
        import_label_set(user=owner, dataset=dataset, filename="model.jsonl", data=labels.encode(), kind="icm",
                         name="model")
        reviewers = []
        for i in range(n_reviewers):
            user = User.objects.create_user(f"{PREFIX}r{i}")
            Membership.objects.create(dataset=dataset, user=user, role=Role.REVIEWER)
            client = Client()
            client.force_login(user)  # a real session row: the pages are signed in as each reviewer
            reviewers.append({"user": user.pk, "token": Token.objects.create(user=user).key,
                              "session": client.cookies[settings.SESSION_COOKIE_NAME].value})
        return owner, dataset, reviewers

    @staticmethod
    def _wait_server(base: str, proc, logs: Path) -> None:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                if httpx.get(f"{base}/accounts/login/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise CommandError(f"the server did not start:\n{(logs / 'server.log').read_text()[-2000:]}")


def _event_loop_runner():
    """uvloop where it is installed (it comes with uvicorn[standard]): the load generator shares the cores
    with the server it measures, and a reply waiting in a busy client loop counts as server latency."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def _items(n: int) -> bytes:
    rows = [{"id": f"e{i}", "text": f"{'pos' if i % 2 == 0 else 'neg'} item {i}", "label": i % 2 == 0}
            for i in range(n)]
    return "\n".join(json.dumps(r) for r in rows).encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _load(base: str, dataset_id: int, run_id: int, examples: list[int], reviewers: list[dict], o) -> dict:
    import aiohttp
    import websockets
    from yarl import URL

    samples: dict[str, list[float]] = {"queue page (full)": [], "queue item (htmx)": [], "verdict (page)": [],
                                       "verdict (API)": [], "progress (ws)": []}
    errors: dict[str, int] = dict.fromkeys(samples, 0)
    causes: Counter = Counter()  # what the errors were: a status code or an exception's name
    measure_from = time.monotonic() + o["warmup"]
    end = measure_from + o["duration"]
    kinds = list(VerdictKind.values)

    async def reviewer(i: int, who: dict) -> None:
        rng = random.Random(i)
        if o["think"]:  # reviewers arrive spread out, as they would
            await asyncio.sleep(rng.expovariate(1 / o["think"]))
        queue_url = f"/datasets/{dataset_id}/review/"
        swap = {"HX-Request": "true", "HX-Target": "review-layout"}  # what the page's htmx sends
        csrf = ""

        async def call(name: str, method: str, url: str, **kwargs) -> str | None:
            measured = time.monotonic() >= measure_from
            t0 = time.perf_counter()
            body = None
            try:
                async with session.request(method, url, **kwargs) as response:
                    body = await response.text()
                    ok = response.status in (200, 201)
                    if not ok and measured:
                        causes[f"{name}: HTTP {response.status}"] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                ok = False
                if measured:
                    causes[f"{name}: {type(exc).__name__}"] += 1
            if measured:
                samples[name].append((time.perf_counter() - t0) * 1000)
                errors[name] += not ok
            if o["think"]:
                await asyncio.sleep(rng.expovariate(1 / o["think"]))
            return body

        # aiohttp: a lean client, since it shares the two cores with the server it measures. The cookie jar
        # takes cookies from a numeric host (the CSRF cookie the page sets) only when "unsafe".
        jar = aiohttp.CookieJar(unsafe=True)
        jar.update_cookies({settings.SESSION_COOKIE_NAME: who["session"]}, URL(base))
        async with aiohttp.ClientSession(base_url=base, cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=30),
                                         headers={"Authorization": f"Token {who['token']}"}) as session:
            step = 0
            while time.monotonic() < end:
                # As in a browser: the whole page now and then (arriving, reloading), otherwise the page's
                # links swap in the next item alone; verdicts alternate between the page's buttons (which
                # answer with the next item) and the API.
                index = {"i": str(rng.randrange(len(examples)))}
                if step % 10 == 0 or not csrf:
                    page = await call("queue page (full)", "GET", queue_url, params=index)
                    found = CSRF_FIELD.search(page) if page else None
                    csrf = found.group(1) if found else csrf
                else:
                    await call("queue item (htmx)", "GET", queue_url, params=index, headers=swap)
                verdict = {"example": rng.choice(examples), "verdict": rng.choice(kinds)}
                if step % 2 or not csrf:
                    await call("verdict (API)", "POST", f"/api/datasets/{dataset_id}/verdicts/", json=verdict)
                else:
                    await call("verdict (page)", "POST", f"{queue_url}verdict/", headers=swap,
                               data={"csrfmiddlewaretoken": csrf, **{k: str(v) for k, v in verdict.items()}})
                step += 1

    async def watcher(who: dict) -> None:
        url = base.replace("http", "ws") + f"/ws/runs/{run_id}/?format=json&token={who['token']}"
        try:
            async with websockets.connect(url, origin=base) as ws:
                while time.monotonic() < end:
                    try:
                        message = await asyncio.wait_for(ws.recv(), timeout=max(0.1, end - time.monotonic()))
                    except TimeoutError:
                        break
                    snap = json.loads(message)
                    updated = (snap.get("progress") or {}).get("updated")
                    if updated and time.monotonic() >= measure_from:
                        sent = datetime.fromisoformat(updated).timestamp()
                        samples["progress (ws)"].append((time.time() - sent) * 1000)
        except (OSError, websockets.WebSocketException) as exc:
            errors["progress (ws)"] += 1
            causes[f"progress (ws): {type(exc).__name__}: {exc}"[:200]] += 1

    await asyncio.gather(*(reviewer(i, r) for i, r in enumerate(reviewers)),
                         *(watcher(r) for r in reviewers[: o["watchers"]]))

    def stats(values: list[float], n_errors: int) -> dict:
        arr = np.array(values) if values else np.array([float("nan")])
        return {"n": len(values), "errors": n_errors, "p50": float(np.percentile(arr, 50)),
                "p95": float(np.percentile(arr, 95)), "p99": float(np.percentile(arr, 99))}

    return {"reviewers": len(reviewers), "watchers": o["watchers"], "duration_s": o["duration"],
            "warmup_s": o["warmup"], "think_s": o["think"],
            "web_workers": o["web_workers"], "error_causes": dict(causes),
            "cores": os.cpu_count(), "latency_ms": {k: stats(v, errors[k]) for k, v in samples.items()},
            "requests_per_s": round(sum(len(v) for k, v in samples.items() if k != "progress (ws)") / o["duration"], 1)}


if __name__ == "__main__":
    main(Command, "loadtest")
