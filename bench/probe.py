"""Rerun of issue 37's probe: schemathesis against the embedded app as a user would start it (`make run` on a
fresh SQLite file), every check but positive_data_acceptance (a schema cannot say that an upload must be a
valid dataset file or an id must exist), its four phases (examples, coverage, fuzzing, stateful), asking for
JSON and for the browsable API's HTML. Prints the requests sent, the 5xx and the failures, per renderer.

    python bench/probe.py [--max-examples 30] [--port 8799] [--out bench/results/probe.json]

A measurement, not a test: `make test` runs a smaller, deterministic version (tests/webapp/test_fuzz_api.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
PASSWORD = "probe-Pa55word!"


def _manage(env: dict, code: str) -> str:
    done = subprocess.run([PY, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    return done.stdout.strip()


def _probe(base: str, token: str, accept: str, max_examples: int, schema: Path, out: Path) -> dict:
    har = out / f"probe-{accept.replace('/', '-')}.har"
    checks = ["--checks", "all", "--exclude-checks", "positive_data_acceptance"]
    if accept != "application/json":  # HTML pages are not the schema's bodies: statuses and 5xx only
        checks = ["--checks", "not_a_server_error,status_code_conformance"]
    cmd = [str(ROOT / ".venv" / "bin" / "schemathesis"), "run", str(schema), "--url", base, *checks,
           "-H", f"Authorization: Token {token}", "-H", f"Accept: {accept}", "--max-examples", str(max_examples),
           "--seed", "37", "--report", "har", "--report-har-path", str(har), "--continue-on-failure",
           "--workers", "1", "--request-timeout", "60", "--no-color"]
    t = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - t
    entries = json.loads(har.read_text())["log"]["entries"] if har.exists() else []
    statuses = [e["response"]["status"] for e in entries]
    lines = done.stdout.strip().splitlines()
    cases = next((ln.strip() for ln in lines if "generated" in ln), "")
    start = next((i for i, ln in enumerate(lines) if ln.strip().startswith("=") and "FAILURES" in ln), None)
    failures = [ln.rstrip() for ln in lines[start:] if ln.strip()] if start is not None else []
    return {"accept": accept, "requests": len(statuses), "server_errors": sum(s >= 500 for s in statuses),
            "statuses": {str(c): statuses.count(c) for c in sorted(set(statuses))}, "test_cases": cases,
            "exit_code": done.returncode, "seconds": round(seconds), "failures": failures[:60]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-examples", type=int, default=30)
    ap.add_argument("--port", type=int, default=8799)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="probe."))
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(PORT=str(args.port), DATABASE_URL=f"sqlite:///{tmp}/db.sqlite3", ICM_RUN_DISPATCH="none")
    base = f"http://127.0.0.1:{args.port}"
    log = open(tmp / "server.log", "w")  # noqa: SIM115  (the server writes it until the end)
    server = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        for _ in range(240):
            try:
                if requests.get(f"{base}/api/schema/", timeout=3).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(1)
        token = _manage(env, "from django.contrib.auth import get_user_model as g; "
                             "from rest_framework.authtoken.models import Token; "
                             f"u = g().objects.create_user('prober', password='{PASSWORD}'); "
                             "print(Token.objects.create(user=u).key)").splitlines()[-1]
        with open(ROOT / "data" / "sanity" / "claims_dev.jsonl", "rb") as f:
            made = requests.post(f"{base}/api/datasets/", headers={"Authorization": f"Token {token}"},
                                 files={"file": ("claims_dev.jsonl", f)},
                                 data={"task": "claims", "consistency": "key:answer"}, timeout=120)
        made.raise_for_status()
        schema = tmp / "schema.json"
        schema.write_text(requests.get(f"{base}/api/schema/", timeout=60,
                                       headers={"Accept": "application/vnd.oai.openapi+json"}).text)
        rows = [_probe(base, token, accept, args.max_examples, schema, tmp)
                for accept in ("application/json", "text/html")]
        log.flush()
        result = {"max_examples": args.max_examples, "renderers": rows, "tracebacks_in_server_log":
                  (tmp / "server.log").read_text().count("Traceback (most recent call last)")}
        print(json.dumps(result, indent=1))
        if args.out:
            args.out.write_text(json.dumps(result, indent=1) + "\n")
    finally:
        os.killpg(server.pid, signal.SIGTERM)


if __name__ == "__main__":
    main()
