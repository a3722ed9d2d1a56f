"""Run a planned set of `icm` commands side by side on one GPU, in priority order, until a deadline.

A lent GPU comes for minutes: every command that would take hours on 2 CPU cores is queued here,
run `--parallel` at a time (small models leave a GPU mostly idle between kernel launches, so a few
processes side by side fill it), and whatever has not finished at `--deadline` seconds is stopped and
recorded as such. Each command's stdout and stderr go to its own log; `runs.json` lists every command
with its exit code and wall time, so the figures drawn from it say which runs finished.

    python bench/gpu_runs.py --plan bench,channel32,channel64 --model gemma.gguf --out results \\
        --device cuda --deadline 480 --parallel 6
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from icm_engine.presets import PRESETS  # noqa: E402

SANITY = ROOT / "data" / "sanity"
ICM = [sys.executable, "-m", "icm_engine.cli"]
# The question-and-answer channel readout (docs/engine.md: the TruthfulQA preset's, over the claims'
# fields), chosen on the dev half before these runs.
CHANNEL_QA = ["--task", "claims", "--consistency", "key:answer", "--readout", "channel",
              "--channel-prefix", PRESETS["truthfulqa"].channel_prefix, "--context", "other-groups",
              "--calibrate"]
SEEDS = (0, 1, 2)


def plan_bench(tqa: Path, out: Path, backend: list[str]) -> list[tuple[str, list[str]]]:
    """The fast-scorer issue's bench (64 claims, 64 iterations): each reference seed in its own process,
    fast with both demonstration orders over the three seeds in one."""
    common = [str(tqa), "--task", "truthfulqa", "--limit", "64", "--iterations", "64", *backend]
    jobs = [(f"bench_ref_{s}", [*ICM, "bench", *common, "--seeds", str(s), "--modes", "reference",
                                "--report", str(out / f"bench_ref_{s}.json")]) for s in SEEDS]
    jobs.append(("bench_fast", [*ICM, "bench", *common, "--seeds", ",".join(map(str, SEEDS)), "--modes", "fast",
                                "--demo-order", "position,labeled", "--report", str(out / "bench_fast.json")]))
    return jobs


def plan_channel(n: int, out: Path, backend: list[str]) -> list[tuple[str, list[str]]]:
    """ICM with the channel readout on the first `n` claims of each half of the sanity set, three seeds,
    with every baseline under the same readout and context (the test half's figures are reported
    whatever they are: nothing is chosen on them)."""
    jobs: list[tuple[str, list[str]]] = []
    for half in ("test", "dev"):
        data = [str(SANITY / f"claims_{half}.jsonl"), *CHANNEL_QA, "--limit", str(n), *backend]
        for seed in SEEDS:
            name = f"{half}{n}_icm_s{seed}"
            jobs.append((name, [*ICM, "label", *data, "--iterations", str(3 * n), "--seed", str(seed),
                                "--out", str(out / f"{name}.jsonl"), "--report", str(out / f"{name}.json")]))
        methods = [("zero-shot", 0), ("gold-icl", 0), ("likelihood", 0), ("bootstrap", 0),
                   *(("random-icl", s) for s in SEEDS)]
        for method, seed in methods:
            name = f"{half}{n}_{method}" + (f"_s{seed}" if method == "random-icl" else "")
            jobs.append((name, [*ICM, "baseline", *data, "--method", method, "--seed", str(seed),
                                "--out", str(out / f"{name}.jsonl"), "--report", str(out / f"{name}.json")]))
    return jobs


def run(jobs: list[tuple[str, list[str]]], out: Path, parallel: int, deadline: float) -> list[dict]:
    start = time.monotonic()
    pending, running, done = list(jobs), {}, []
    while pending or running:
        while pending and len(running) < parallel and time.monotonic() - start < deadline:
            name, cmd = pending.pop(0)
            log = (out / f"{name}.log").open("w")
            log.write(shlex.join(cmd) + "\n")
            log.flush()
            # Its own session, so stopping it at the deadline stops anything it started too.
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            running[name] = (proc, time.monotonic(), log, cmd)
        for name, (proc, began, log, cmd) in list(running.items()):
            if proc.poll() is None and time.monotonic() - start < deadline:
                continue
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
            log.close()
            done.append({"name": name, "rc": proc.returncode, "wall_s": round(time.monotonic() - began, 1),
                         "command": shlex.join(cmd)})
            print(f"{name}: rc {proc.returncode} in {done[-1]['wall_s']} s", flush=True)
            del running[name]
        if time.monotonic() - start >= deadline:
            done.extend({"name": name, "rc": None, "wall_s": 0, "command": shlex.join(cmd)} for name, cmd in pending)
            pending = []
        time.sleep(0.5)
    return done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", default="bench,channel32,channel64",
                    help="comma-separated, in priority order: bench, channelN (N claims of each half)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--tqa", type=Path, default=ROOT / "data/paper/truthfulqa/train_truthfulqa.json")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--parallel", type=int, default=6)
    ap.add_argument("--deadline", type=float, default=480.0, help="seconds; later commands are stopped")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    backend = ["--model", args.model, "--device", args.device, "--dtype", args.dtype]
    jobs: list[tuple[str, list[str]]] = []
    for item in args.plan.split(","):
        if item == "bench":
            jobs += plan_bench(args.tqa, args.out, backend)
        elif item.startswith("channel"):
            jobs += plan_channel(int(item.removeprefix("channel")), args.out, backend)
        else:
            ap.error(f"unknown plan item {item!r}")
    done = run(jobs, args.out, args.parallel, args.deadline)
    (args.out / "runs.json").write_text(json.dumps(done, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
