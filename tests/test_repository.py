"""The repository stands alone: its tests, docs and product read nothing from beside the clone."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from . import conftest
from .conftest import ROOT, outside_the_repo

# Where the product, its tests, its docs and its benchmark scripts live (bench/results/ holds raw records of
# commands as they were run, and is left as written).
TEXT = ("README.md", "Makefile", ".ci", "icm_engine", "webapp", "templates", "static", "tests", "docs", "bench",
        "scripts", "data")
SUFFIXES = {".py", ".md", ".html", ".js", ".sh", ".toml", ".cfg", ".txt", ".yml", ".yaml", ""}


def test_a_file_beside_the_clone_is_outside_and_the_repo_and_temp_folders_are_not():
    assert outside_the_repo(ROOT.parent / "shared" / "data" / "gsm8k" / "gsm8k_dev.json")
    assert outside_the_repo(ROOT.parent / "elsewhere.json")
    assert not outside_the_repo(ROOT / "data" / "paper" / "gsm8k" / "gsm8k_dev.json")
    assert not outside_the_repo(f"{tempfile.gettempdir()}/upload.json")


def test_the_suite_records_a_file_opened_beside_the_clone(tmp_path, monkeypatch):
    beside = str(tmp_path / "beside.json")
    open(beside, "w").close()
    monkeypatch.setattr(conftest, "_OWN", (str(ROOT) + "/",))
    conftest._watch_opens("open", (beside, "r", 0))
    conftest._watch_opens("open", (str(ROOT / "README.md"), "r", 0))
    try:
        assert [beside] == conftest._OPENED_OUTSIDE
    finally:
        conftest._OPENED_OUTSIDE.clear()  # else this test's own check would fail it


THIS = Path(__file__).resolve()
# A path to a folder beside the clone, written as text or built with pathlib.
BESIDE = re.compile(r"\.\./" "shared" r"|parent\s*/\s*[\"']" "shared")


def test_nothing_in_the_repository_names_a_folder_beside_it():
    named = []
    for top in TEXT:
        root = ROOT / top
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
        for path in files:
            # This file names such a path on purpose, to test the check that catches one.
            if path.suffix not in SUFFIXES or "results" in path.relative_to(ROOT).parts[:2] or path == THIS:
                continue
            if BESIDE.search(path.read_text(errors="replace")):
                named.append(str(path.relative_to(ROOT)))
    assert named == []
