"""Replays recorded backend calls through the in-process `vllm` backend (run in the vLLM environment).

    python tests/tools/vllm_probe.py CALLS.json OUT.json

CALLS.json: [{"kind": "label", "prompts": [...], "words": [...]} | {"kind": "continuation",
"prefixes": [...], "continuations": [...]}]. OUT.json: the results in the same order, the backend's
cost counters and its description.
"""

from __future__ import annotations

import json
import os
import sys
import time


def replay(backend, calls: list[dict]) -> list[list]:
    """Each recorded call through `backend`, results as plain lists (also used by tests/test_vllm.py)."""
    results = []
    for call in calls:
        if call["kind"] == "label":
            results.append(backend.label_logprobs(call["prompts"], call["words"]).tolist())
        else:
            results.append(backend.continuation_logprobs(call["prefixes"], call["continuations"]).tolist())
    return results


def main():
    """Replays the calls and writes OUT.json; returns the backend, still open."""
    from icm_engine.backends import get_backend

    with open(sys.argv[1]) as handle:
        calls = json.load(handle)
    t0 = time.monotonic()
    backend = get_backend("vllm", "gemma3-270m", dtype="float32")
    load_s = time.monotonic() - t0
    results = replay(backend, calls)
    with open(sys.argv[2], "w") as handle:
        json.dump({"results": results, "stats": backend.stats.as_dict(), "describe": backend.describe(),
                   "load_s": load_s, "score_s": time.monotonic() - t0 - load_s}, handle)
    return backend


# vLLM starts its engine in child processes: the entry point must be guarded.
if __name__ == "__main__":
    backend = main()
    # The results are written and closed. vLLM's CPU engine sometimes aborts while the interpreter tears it
    # down ("terminate called without an active exception", SIGABRT, seen once in a CI run after out.json
    # was complete); leave without that teardown so the exit status reports the probe, not the shutdown.
    # os._exit skips atexit, so the engine core child process is stopped here first: left running, it kept
    # the probe's output pipes open and the caller waited on them (a CI run timed out so).
    backend.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
