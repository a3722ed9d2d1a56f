"""CLI behaviour on bad input: non-zero exit, a one-line error naming row and field, no output file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from icm_engine.cli import main
from icm_engine.examples import Example


def icm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "icm_engine.cli", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("command", ["label", "baseline"])
def test_bad_label_exits_nonzero_and_writes_nothing(tmp_path: Path, command: str):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "choice": "c", "label": 1}\n{"question": "q", "choice": "d", "label": "yes"}\n')
    out = tmp_path / "labels.jsonl"
    report = tmp_path / "report.json"
    extra = ["--method", "zero-shot"] if command == "baseline" else []
    proc = icm(command, str(bad), "--task", "truthfulqa", "--out", str(out), "--report", str(report), *extra)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "bad.jsonl: row 2, field 'label'" in lines[0]
    assert not out.exists() and not report.exists()


def test_missing_field_names_row(tmp_path: Path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("question,cot\nq,c\n")
    rc = main(["label", str(bad), "--task", "gsm8k", "--out", str(tmp_path / "o.jsonl")])
    assert rc == 2
    assert "bad.csv: row 1, field 'answer': required field is missing or empty" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_the_likelihood_anchor_needs_its_prefix_fields(tmp_path: Path, capsys):
    f = tmp_path / "claims.csv"
    f.write_text("choice\nThe sky is blue.\nThe sky is green.\n")
    common = ["--task", "claims", "--template", "Claim: {choice}\\nI think this claim is",
              "--likelihood-prefix", "Question: {question}\\nAnswer:"]
    rc = main(["label", str(f), *common, "--anchor", "likelihood", "--out", str(tmp_path / "o.jsonl")])
    assert rc == 2
    assert "claims.csv: row 1, field 'question': required field is missing or empty" in capsys.readouterr().err
    rc = main(["baseline", str(f), *common, "--method", "likelihood", "--out", str(tmp_path / "o.jsonl")])
    assert rc == 2 and "field 'question'" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_invalid_hyperparameter_and_unknown_task(tmp_path: Path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text('{"question": "q", "choice": "c"}\n')
    assert main(["label", str(good), "--task", "truthfulqa", "--alpha", "-1", "--out", str(tmp_path / "o")]) == 2
    assert "alpha must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["label", str(good), "--task", "nope", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert not (tmp_path / "o").exists()


def test_unknown_model_is_a_clear_error(tmp_path: Path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text('{"question": "q", "choice": "c"}\n')
    rc = main(["baseline", str(good), "--task", "truthfulqa", "--method", "zero-shot", "--model",
               str(tmp_path / "no-such-model"), "--out", str(tmp_path / "o.jsonl")])
    assert rc == 3
    assert "unknown model" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.model
@pytest.mark.parametrize("device", ["gpu0", "cuda:7"])
def test_an_unusable_device_is_a_clear_error(tmp_path: Path, capsys, device: str):
    """Not a torch device, or a CUDA device this torch cannot reach (the CPU build reaches none)."""
    good = tmp_path / "good.jsonl"
    good.write_text('{"question": "q", "choice": "c"}\n')
    rc = main(["baseline", str(good), "--task", "truthfulqa", "--method", "zero-shot", "--device", device,
               "--out", str(tmp_path / "o.jsonl")])
    assert rc == 3
    assert f"device {device!r}" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_device_is_only_for_the_transformers_backend(tmp_path: Path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text('{"question": "q", "choice": "c"}\n')
    rc = main(["baseline", str(good), "--task", "truthfulqa", "--method", "zero-shot", "--backend", "openai",
               "--device", "cuda", "--out", str(tmp_path / "o.jsonl")])
    assert rc == 2
    assert "--device is for the transformers backend" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_share_continuations_is_only_for_the_transformers_backend(tmp_path: Path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text('{"question": "q", "choice": "c"}\n')
    rc = main(["baseline", str(good), "--task", "truthfulqa", "--method", "zero-shot", "--backend", "openai",
               "--share-continuations", "--out", str(tmp_path / "o.jsonl")])
    assert rc == 2
    assert "--share-continuations is for the transformers backend" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_gold_icl_needs_gold(tmp_path: Path, capsys):
    f = tmp_path / "nogold.jsonl"
    f.write_text('{"question": "q", "choice": "c", "label": 1}\n{"question": "q", "choice": "d"}\n')
    rc = main(["baseline", str(f), "--task", "truthfulqa", "--method", "gold-icl", "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "nogold.jsonl: row 2, field 'label'" in capsys.readouterr().err


def test_help_lists_commands():
    proc = icm("--help")
    assert proc.returncode == 0
    for word in ("label", "baseline", "evaluate"):
        assert word in proc.stdout


def test_evaluate_labels_must_belong_to_train(tmp_path: Path, capsys):
    train = tmp_path / "train.jsonl"
    train.write_text('{"id": "a", "question": "q", "choice": "c"}\n{"id": "b", "question": "q", "choice": "d"}\n')
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"id": "a", "label": True}) + "\n" + json.dumps({"id": "zz", "label": False}) + "\n")
    test = tmp_path / "test.jsonl"
    test.write_text('{"question": "q", "choice": "e", "label": 1}\n')
    rc = main(["evaluate", str(test), "--train", str(train), "--labels", str(labels), "--task", "truthfulqa"])
    assert rc == 2
    assert "labels.jsonl, field 'id': unknown example id 'zz'" in capsys.readouterr().err


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 64 KiB filesystem (tmpfs), to fill. Needs root, as CI has; skipped elsewhere unless in CI."""
    import os
    import shutil

    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True).returncode:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("cannot mount a small tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_keeps_outputs_whole_and_the_run_resumes(tmp_path: Path, small_disk: Path, monkeypatch, capsys):
    import os

    from icm_engine import cli

    from .fakes import FakeBackend

    backends: list[FakeBackend] = []
    monkeypatch.setattr(cli, "make_backend", lambda args: backends.append(FakeBackend()) or backends[-1])
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps({"id": f"e{i}", "text": f"{'pos' if i % 3 else 'neg'} item {i}"}) + "\n"
                            for i in range(200)))
    common = [str(data), "--task", "claims", "--template", "Item: {text}\nLabel:", "--label-words", " T", " F",
              "--iterations", "30", "--batch-size", "64", "--seed", "3", "--quiet"]
    # The uninterrupted run, on a disk with room.
    assert main(["label", *common, "--out", str(tmp_path / "ref.jsonl")]) == 0
    # The same run writing to a disk with an earlier labels file on it and about 2 KiB left.
    out, report, checkpoint = small_disk / "labels.jsonl", small_disk / "report.json", tmp_path / "ckpt.json"
    out.write_text('{"id": "old", "label": true, "score": 1.0}\n')
    filler = small_disk / "filler"
    free = os.statvfs(small_disk)
    filler.write_bytes(b"\0" * (free.f_bavail * free.f_frsize - 2048))
    args = ["label", *common, "--out", str(out), "--report", str(report), "--checkpoint", str(checkpoint)]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"could not write {out}" in err and "No space left" in err
    # Nothing half-written: the earlier file is as it was, no temporary file is left, no report appeared.
    assert out.read_text() == '{"id": "old", "label": true, "score": 1.0}\n'
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "labels.jsonl"]
    # Resumable: the finished search was checkpointed before its outputs; with room again, the same
    # command only writes them, and they are the uninterrupted run's labels.
    assert checkpoint.exists()
    filler.unlink()
    assert main(args) == 0
    assert out.read_text() == (tmp_path / "ref.jsonl").read_text()
    assert backends[-1].stats.model_calls == 0  # nothing searched again
    reference_calls = backends[0].stats.model_calls
    assert json.loads(report.read_text())["model_calls"] == reference_calls and not checkpoint.exists()


def test_an_interrupted_bench_resumes_from_its_checkpoints_and_skips_finished_runs(tmp_path: Path, monkeypatch,
                                                                                capsys):
    """A reference run at the issue's size takes hours on 2 cores: a bench run again with the same
    --checkpoint-dir continues where it stopped and counts what the whole run cost, once."""
    from icm_engine import bench, cli
    from icm_engine.backends.base import BackendError

    from .fakes import FakeBackend

    class FailingBackend(FakeBackend):
        def __init__(self, fail_at: int | None):
            super().__init__()
            self.fail_at = fail_at

        def label_logprobs(self, prompts, label_words):
            if self.fail_at is not None and self.stats.model_calls + 1 >= self.fail_at:
                raise BackendError("the model server went away")
            return super().label_logprobs(prompts, label_words)

    backends: list[FailingBackend] = []
    fail_at: list[int | None] = [None]
    monkeypatch.setattr(cli, "make_backend", lambda args: backends.append(FailingBackend(fail_at[0])) or backends[-1])
    monkeypatch.setattr(bench, "CHECKPOINT_EVERY_S", 0.0)
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps({"id": f"e{i}", "text": f"{'pos' if i % 3 else 'neg'} item {i}",
                                        "label": int(i % 3 != 0) if i % 5 else int(i % 3 == 0)}) + "\n"
                            for i in range(24)))
    common = ["bench", str(data), "--task", "claims", "--template", "Item: {text}\nLabel:", "--label-words", " T",
              " F", "--limit", "24", "--iterations", "12", "--seeds", "1", "--modes", "reference"]
    folder = tmp_path / "runs"

    def rows(report: Path) -> list[dict]:
        return json.loads(report.read_text())["runs"]

    assert main([*common, "--report", str(tmp_path / "straight.json")]) == 0
    straight = rows(tmp_path / "straight.json")[0]
    # The peak-throughput passes take 4 calls and the forward-pass limit's 3; the search fails 15 calls in.
    fail_at[0] = 7 + 15
    assert main([*common, "--checkpoint-dir", str(folder)]) == 3
    assert sorted(p.name for p in folder.iterdir()) == ["seed1-reference.checkpoint.json"]
    fail_at[0] = None
    capsys.readouterr()
    assert main([*common, "--checkpoint-dir", str(folder), "--report", str(tmp_path / "resumed.json")]) == 0
    resumed = rows(tmp_path / "resumed.json")[0]
    assert backends[-1].stats.model_calls < straight["model_calls"] + 7  # it did not start over
    assert resumed["labels"] == straight["labels"] and resumed["accuracy"] == straight["accuracy"]
    for key in ("model_calls", "prompts", "prompt_tokens", "computed_tokens"):
        assert resumed[key] == straight[key], key  # the two parts' costs, each counted once
    assert resumed["parts"] == 2 and straight["parts"] == 1
    assert sorted(p.name for p in folder.iterdir()) == ["seed1-reference.json"]
    # Run again: the finished run is read back, not searched again.
    assert main([*common, "--checkpoint-dir", str(folder), "--report", str(tmp_path / "again.json")]) == 0
    assert "finished earlier" in capsys.readouterr().out
    assert backends[-1].stats.model_calls == 7
    assert rows(tmp_path / "again.json")[0]["labels"] == straight["labels"]
    # Other settings in the same folder are refused, naming the file, and change nothing.
    before = (folder / "seed1-reference.json").read_text()
    assert main([*common[:-6], "--iterations", "13", *common[-4:], "--checkpoint-dir", str(folder)]) == 2
    assert "seed1-reference.json: a run of other examples or settings" in capsys.readouterr().err
    assert (folder / "seed1-reference.json").read_text() == before
    # A checkpoint of another search is refused the same way.
    (folder / "seed1-reference.json").unlink()
    (folder / "seed1-reference.checkpoint.json").write_text("{\"version\": 1, \"fingerprint\": \"x\"}")
    assert main([*common, "--checkpoint-dir", str(folder)]) == 2
    assert "seed1-reference.checkpoint.json: checkpoint belongs to other examples" in capsys.readouterr().err


def _bench_report(seed: int, ref: tuple[int, float, float], fast: tuple[int, float, float], n: int = 64,
                  labels: tuple[list, list] | None = None) -> dict:
    def row(variant: str, computed: int, wall: float, acc: float) -> dict:
        return {"variant": variant, "seed": seed, "computed_tokens": computed, "wall_s": wall, "accuracy": acc,
                "model_calls": 3, "prompt_tokens": 2 * computed, "tokens_per_s": computed / wall,
                "share_of_peak": 0.5, "peak_tokens_per_s": 300.0, "peak_rss_mb": 1000.0 + seed}
    runs = [row("reference", *ref), row("fast labeled", *fast)]
    if labels:
        for run, run_labels in zip(runs, labels, strict=True):
            run["labels"] = run_labels
    return {"n": n, "iterations": 64, "semantics": "code", "context_cap": None, "by_order": {"labeled": {}},
            "runs": runs}


def test_bench_summary_combines_reports_of_separate_runs(tmp_path: Path, capsys):
    """A bench seed can take an hour on 2 cores: seeds run apart combine into the means of one run."""
    files = []
    labels = {0: ([True, False, None, True], [True, False, None, True]),  # the same 3 labels: 1.0
              1: ([True, False, True, False], [True, True, None, False])}  # both labeled 3, 2 the same
    for seed, ref, fast in ((0, (1000, 100.0, 0.5), (100, 10.0, 0.6)), (1, (3000, 300.0, 0.7), (100, 30.0, 0.4))):
        files.append(tmp_path / f"s{seed}.json")
        files[-1].write_text(json.dumps(_bench_report(seed, ref, fast, labels=labels[seed])))
    assert main(["bench-summary", *map(str, files)]) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["token_ratio"] == 20.0 and final["time_ratio"] == 10.0  # ratios of the means
    # Label by label against the same seed's reference run, though they came from separate reports.
    assert final["by_order"]["labeled"]["label_agreement"] == pytest.approx((1 + 2 / 3) / 2)
    assert final["by_order"]["labeled"]["both_labeled"] == 3
    assert final["acc_reference"] == pytest.approx(0.6) and final["acc_fast"] == pytest.approx(0.5)
    assert final["seeds"] == [0, 1] and final["by_order"]["labeled"]["fast_peak_rss_mb"] == 1001.0

    other = tmp_path / "other.json"
    other.write_text(json.dumps(_bench_report(2, (1, 1.0, 0.5), (1, 1.0, 0.5), n=32)))
    assert main(["bench-summary", str(files[0]), str(other)]) == 2
    assert "ran different settings" in capsys.readouterr().err
    (tmp_path / "junk.json").write_text("[]")
    assert main(["bench-summary", str(tmp_path / "junk.json")]) == 2
    assert "junk.json: not an icm bench report" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["label", "baseline", "evaluate"])
def test_a_one_class_labeling_is_reported_with_its_warnings(tmp_path: Path, monkeypatch, capsys, command: str):
    """A model that answers False to everything scores the majority rate on gold that is mostly False: the
    report gives that rate beside the accuracy, and the command says so on stderr."""
    from icm_engine import cli

    from .fakes import TableBackend

    rows = [{"id": f"e{i}", "text": f"item {i}", "label": int(i < 5)} for i in range(24)]
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(cli, "make_backend", lambda args: TableBackend({f"item {i}": -1.0 for i in range(24)}))
    common = ["--task", "claims", "--template", "Item: {text}\nLabel:", "--label-words", " T", " F", "--quiet",
              "--report", str(tmp_path / "report.json")]
    if command == "evaluate":
        (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
        (tmp_path / "labels.jsonl").write_text("".join(json.dumps({"id": r["id"], "label": False}) + "\n"
                                                       for r in rows[:4]))
        args = ["evaluate", str(data), "--train", str(tmp_path / "train.jsonl"), "--labels",
                str(tmp_path / "labels.jsonl"), *common]
    else:
        extra = ["--method", "zero-shot"] if command == "baseline" else ["--iterations", "300"]
        args = [command, str(data), *common, "--out", str(tmp_path / "o.jsonl"), *extra]
    assert main(args) == 0
    out, err = capsys.readouterr()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["accuracy"] == pytest.approx(19 / 24) and report["majority_accuracy"] == pytest.approx(19 / 24)
    assert report["balance"] == 0.0 and report["n_compared"] == 24
    # ICM's one class cannot be named by any signal either (no example of the other class to compare).
    named = ["classes_not_named"] if command == "label" else []
    assert report["warnings"] == ["one_class", "no_better_than_majority", *named]
    assert json.loads(out.strip().splitlines()[-1])["warnings"] == ["one_class", "no_better_than_majority", *named]
    assert "icm: warning: one_class:" in err and "icm: warning: no_better_than_majority:" in err
    assert "accuracy 0.792 on 24," in err
    # Custom prompts: no measured choice applies, so the paper's readout, calibrated, and the report says so.
    assert report["readout"] == "verdict" and report["calibrate"] is True
    assert report["defaults"]["applied"] == ["readout", "context", "calibrate", "centre"] and report["defaults"]["why"]


def test_bench_keeps_the_official_readout_while_label_takes_the_presets(tmp_path: Path, monkeypatch):
    """`icm bench` compares the scorers under the official code's readout, as its figures were measured;
    `icm label` on the same preset takes the preset's choice (docs/defaults.md)."""
    from icm_engine import bench as bench_module
    from icm_engine import cli
    from icm_engine.defaults import PRESET_CHOICES

    seen = {}

    def fake_bench(backend, task, examples, gold, config, seeds, **kwargs):
        seen["config"] = config
        return {"runs": []}

    monkeypatch.setattr(bench_module, "bench", fake_bench)
    monkeypatch.setattr(cli, "make_backend", lambda args: type("B", (), {"describe": lambda self: {}})())
    rows = [{"question": "q", "choice": f"c{i}", "label": i % 2, "consistency_id": i // 2} for i in range(4)]
    data = tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["bench", str(data), "--task", "truthfulqa", "--iterations", "2"]) == 0
    config = seen["config"]
    assert (config.readout, config.context, config.calibrate) == ("verdict", "all", False)
    assert PRESET_CHOICES["truthfulqa"].readout != "verdict"  # else this test would prove nothing


def test_the_forward_pass_limit_is_measured_on_long_independent_prompts():
    from icm_engine.bench import forward_limit
    from icm_engine.presets import get_task

    from .fakes import TEMPLATE, FakeBackend

    task = get_task("claims", template=TEMPLATE)
    examples = [Example(uid=i, id=f"e{i}", fields={"text": f"{'pos' if i % 2 else 'neg'} item {i}"}, group=i)
                for i in range(5)]
    backend = FakeBackend(record=True)
    assert forward_limit(backend, task, examples, width=40, batch_tokens=400, repeats=2) > 0
    warmup, passes = backend.prompts[:1], backend.prompts[1:]
    assert len(warmup) == 1 and len(passes) == 20  # two passes of 400 tokens in prompts of about 40 (words here)
    first = passes[:10]
    assert all(40 <= len(p.split()) < 40 + 8 for p in first)  # each is at least `width` long
    assert len({p.split("\n\n")[0] for p in first}) == 10  # each starts differently: no prefix to reuse
