"""bench/gpu_check.py's kit: pieces that rejoin into the file they came from, a manifest that refuses a
corrupted piece, carrying calls within their size, and steps bounded by one deadline."""

from __future__ import annotations

import importlib.util
import json
import sys
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kit(gpu_check, tmp_path: Path, piece: int = 1000) -> tuple[Path, bytes]:
    kit = tmp_path / "kit"
    kit.mkdir()
    model = tmp_path / "model.gguf"
    content = bytes(range(256)) * 14  # 3,584 bytes: three whole pieces and a short one
    model.write_bytes(content)
    names = gpu_check.split_file(model, kit, piece)
    assert names == [f"model.gguf.part{k:02d}" for k in range(4)]
    assert [(kit / n).stat().st_size for n in names] == [1000, 1000, 1000, 584]
    (kit / "transformers-9.9-py3-none-any.whl").write_bytes(b"w" * 700)
    (kit / "train_truthfulqa.json").write_text("[]")
    gpu_check.write_manifest(kit, {"pieces": names, "sha256": gpu_check.sha256(model), "bytes": len(content)},
                             piece)
    return kit, content


def test_the_kit_travels_in_calls_and_rejoins_into_the_verified_file(gpu_check, tmp_path):
    kit, content = _kit(gpu_check, tmp_path)
    manifest = json.loads((kit / "manifest.json").read_text())
    calls = manifest["calls"]
    # Every file in exactly one call, no call over the piece size.
    assert sorted(f for call in calls for f in call) == sorted(manifest["files"])
    assert all(sum(manifest["files"][f]["bytes"] for f in call) <= 1000 for call in calls)

    # The first call brings two of the files: the store reports the rest missing.
    first = tmp_path / "first"
    first.mkdir()
    for name in ("manifest.json", "model.gguf.part00", "model.gguf.part03"):
        (first / name).write_bytes((kit / name).read_bytes())
    store = tmp_path / "store"
    left = gpu_check.receive(first, store)
    assert set(left) == set(manifest["files"]) - {"model.gguf.part00", "model.gguf.part03"}
    assert gpu_check.receive(kit, store) == []  # the rest arrive

    joined = gpu_check.join_pieces(store, manifest["gguf"]["pieces"], tmp_path / "joined.gguf",
                                   manifest["gguf"]["sha256"])
    assert joined.read_bytes() == content


def test_a_corrupted_piece_is_refused_and_a_wrong_join_leaves_nothing(gpu_check, tmp_path):
    kit, _ = _kit(gpu_check, tmp_path)
    (kit / "model.gguf.part01").write_bytes(b"x" * 1000)  # same size, other bytes
    store = tmp_path / "store"
    with pytest.raises(ValueError, match=r"model\.gguf\.part01: sha256"):
        gpu_check.receive(kit, store)
    assert not (store / "model.gguf.part01").exists()
    manifest = json.loads((kit / "manifest.json").read_text())
    with pytest.raises(ValueError, match="after joining"):
        gpu_check.join_pieces(kit, manifest["gguf"]["pieces"], tmp_path / "joined.gguf", manifest["gguf"]["sha256"])
    assert not (tmp_path / "joined.gguf").exists()


def test_carrying_calls_hold_at_most_their_size(gpu_check):
    sizes = {"a": 60, "b": 50, "c": 30, "d": 20, "e": 10}
    calls = gpu_check.plan_calls(sizes, per_call=60)
    assert sorted(f for call in calls for f in call) == sorted(sizes)
    assert all(sum(sizes[f] for f in call) <= 60 for call in calls)
    assert len(calls) == 3  # 60 | 50+10 | 30+20
    with pytest.raises(ValueError, match="more than one call carries"):
        gpu_check.plan_calls({"huge": 61}, per_call=60)


def test_steps_share_one_deadline_and_are_packed_with_their_outcomes(gpu_check, tmp_path):
    folder, out = tmp_path / "results", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    py = sys.executable
    steps = [("ok", [py, "-c", "print('fine')"]), ("fails", [py, "-c", "raise SystemExit(3)"]),
             ("endless", [py, "-c", "import threading; threading.Event().wait()"]),
             ("after", [py, "-c", "print('never')"])]
    records = gpu_check.run_steps(steps, folder, deadline_s=4.0, reserve_s=0.0, least_s=0.5)
    status = {r["step"]: r["status"] for r in records}
    assert status["ok"] == "ok" and status["fails"] == "exit 3"
    assert status["endless"].startswith("stopped at the deadline")
    assert status["after"] == "skipped: no time left"
    assert (folder / "ok.log").read_text() == "fine\n"
    archive = gpu_check.pack(folder, out, records)
    with tarfile.open(archive) as tar:
        assert {"gpu_check/ok.log", "gpu_check/steps.json"} <= set(tar.getnames())
    assert json.loads((out / "gpu_check.json").read_text()) == records
