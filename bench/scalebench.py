"""Measure sharded ICM runs on real Celery workers: throughput with 1, 2, ... worker processes.

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python bench/scalebench.py FILE --task truthfulqa \\
        --limit 64 --batch-size 16 --iterations 4 --workers 1,2 [--backend openai --base-url URL --model NAME]

For each worker count K it starts K `celery worker` processes (each with cores/K torch threads for the
transformers backend), lets every one load its model with a warm-up run, then times one sharded ICM run
(one shard per batch) from queueing to its parent's success. It prints a table and, last, one JSON line.
The dataset and runs it makes belong to a `scalebench` user and are deleted at the end.
"""

from __future__ import annotations

if __name__ == "__main__":  # run as a script: the repository root on the path, then Django
    import os.path
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.django_setup import main, setup

setup()

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from bench.processes import spawn, stop
from webapp.datasets.services import create_dataset
from webapp.runs.models import Run, RunStatus
from webapp.runs.services import create_run


class Command(BaseCommand):
    help = "Time sharded ICM runs on 1..K real Celery workers (needs PostgreSQL and Redis)."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--task", required=True)
        parser.add_argument("--template", default=None, help="claims preset: the prompt template")
        parser.add_argument("--consistency", default=None, help="claims preset: the consistency rule")
        parser.add_argument("--limit", type=int, default=64)
        parser.add_argument("--batch-size", type=int, default=16)
        parser.add_argument("--iterations", type=int, default=4)
        parser.add_argument("--workers", default="1,2", help="worker counts to measure, e.g. 1,2,4")
        parser.add_argument("--backend", default="transformers")
        parser.add_argument("--model", default="")
        parser.add_argument("--base-url", default="")
        parser.add_argument("--dtype", default="auto")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--timeout", type=float, default=3600)

    def handle(self, *args, **o):
        if not settings.REDIS_URL or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
            raise CommandError("scalebench needs REDIS_URL and a PostgreSQL DATABASE_URL (workers share them)")
        settings.ICM_RUN_DISPATCH = "celery"
        user, _ = get_user_model().objects.get_or_create(username="scalebench")
        path = Path(o["file"])
        dataset = create_dataset(owner=user, filename=path.name, data=path.read_bytes(), task=o["task"],
                                 name=f"scalebench {path.name}", template=o["template"],
                                 consistency=o["consistency"])
        options = {"base_url": o["base_url"]} if o["base_url"] else {}
        if o["backend"] == "transformers":
            options["dtype"] = o["dtype"]
        params = {"batch_size": o["batch_size"], "iterations": o["iterations"]}
        rows = []
        try:
            for k in [int(x) for x in o["workers"].split(",")]:
                rows.append(self._measure(k, user, dataset, options, params, o))
                self.stdout.write(self._line(rows[-1]))
        finally:
            dataset.delete()
        base = rows[0]["examples_per_minute"]
        for row in rows:
            row["speedup"] = round(row["examples_per_minute"] / base, 2) if base else None
        self.stdout.write(json.dumps({"cores": os.cpu_count(), "backend": o["backend"], "model": o["model"],
                                      "limit": o["limit"], "batch_size": o["batch_size"],
                                      "iterations": o["iterations"], "rows": rows}))

    @staticmethod
    def _line(row: dict) -> str:
        return (f"{row['workers']} worker(s) x {row['threads_per_worker']} threads: {row['examples']} examples in "
                f"{row['wall_s']} s = {row['examples_per_minute']} examples/min, "
                f"{row['computed_tokens_per_s']} computed tokens/s, {row['shards']} shards")

    def _measure(self, k: int, user, dataset, options, params, o) -> dict:
        cores = os.cpu_count() or 1
        threads = max(1, cores // k)
        logs = Path(tempfile.mkdtemp(prefix="scalebench-"))
        procs = [self._worker(i, threads, logs) for i in range(k)]
        try:
            self._wait_ready(procs, logs)
            common = {"user": user, "dataset": dataset, "backend": o["backend"], "model": o["model"],
                      "seed": o["seed"], "backend_options": options}
            # Warm-up: one tiny shard per worker, so every worker has loaded its model before the clock starts.
            warm = create_run(**common, limit=2 * k * 2, config={"batch_size": 2, "iterations": 1},
                              shards=2 * k)
            self._wait(warm.pk, o["timeout"])
            t0 = time.monotonic()
            run = create_run(**common, limit=o["limit"], config=params, shards=10**6)
            done = self._wait(run.pk, o["timeout"])
            wall = time.monotonic() - t0
        finally:
            stop(procs)
        p = done.progress
        workers_used = len({w for w in done.shards.values_list("worker", flat=True)})
        return {"workers": k, "threads_per_worker": threads, "workers_used": workers_used,
                "shards": done.shard_count, "examples": p.get("size"), "labeled": p.get("labeled"),
                "wall_s": round(wall, 1), "examples_per_minute": round(60 * (p.get("size") or 0) / wall, 2),
                "computed_tokens": p.get("computed_tokens"), "prompt_tokens": p.get("prompt_tokens"),
                "computed_tokens_per_s": round((p.get("computed_tokens") or 0) / wall),
                "gold_agreement": p.get("gold_agreement")}

    def _worker(self, i: int, threads: int, logs: Path) -> subprocess.Popen:
        env = {**os.environ, "ICM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE", "ICM_START_WORKER": "0",
               "PYTHONUNBUFFERED": "1"}
        return spawn(["celery", "-A", "webapp", "worker", "--pool=solo", "-l", "info", "--without-gossip",
                      "--without-mingle", "-n", f"scalebench{i}-{os.getpid()}@%h"], log=logs / f"worker{i}.log",
                     env=env)

    @staticmethod
    def _wait_ready(procs, logs: Path) -> None:
        deadline = time.monotonic() + 120
        for i, p in enumerate(procs):
            log = logs / f"worker{i}.log"
            while "ready." not in log.read_text():
                if p.poll() is not None or time.monotonic() > deadline:
                    raise CommandError(f"worker {i} did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.2)

    @staticmethod
    def _wait(run_id: int, timeout: float) -> Run:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = Run.objects.get(pk=run_id)
            if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED):
                if run.status != RunStatus.SUCCEEDED:
                    raise CommandError(f"run {run_id} {run.status}: {run.error}")
                return run
            time.sleep(0.2)
        raise CommandError(f"run {run_id} did not finish in {timeout} s")


if __name__ == "__main__":
    main(Command, "scalebench")
