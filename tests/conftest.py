from __future__ import annotations

import os
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from icm_engine.util import cache_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
# The slices of the paper's released files the repository ships (bench/slice_paper_data.py made them).
PAPER_DATA = ROOT / "data" / "paper"
SANITY = ROOT / "data" / "sanity"
SHAPES = ROOT / "tests" / "data" / "shapes"

# Every file a test opens lies inside the repository, or is a machine's own (Python and its packages, the
# system, temporary folders, the model cache): a test that reads data from beside the clone fails here, so
# the suite passes in a clone with nothing beside it.
_OWN = tuple(os.path.realpath(p) + os.sep for p in {
    str(ROOT), tempfile.gettempdir(), sys.prefix, sys.base_prefix, sys.exec_prefix,
    os.path.join(os.path.expanduser("~"), ".cache"), str(cache_dir()),
    *(p for p in sys.path if p and "-packages" in p), *sysconfig.get_paths().values(),
    "/proc", "/sys", "/dev", "/etc", "/usr", "/lib", "/lib64", "/var", "/run", "/opt", "/bin", "/sbin",
})
_OPENED_OUTSIDE: list[str] = []


_REPO = os.path.realpath(ROOT) + os.sep
_TEMP = os.path.realpath(tempfile.gettempdir()) + os.sep
# The folder the clone sits in: what a clone made anywhere else lacks (unless it is the temporary folder).
_BESIDE = os.path.realpath(ROOT.parent) + os.sep
_BESIDE = _BESIDE if not _TEMP.startswith(_BESIDE) else None
_OWN_BESIDE = tuple(o for o in _OWN if _BESIDE and o.startswith(_BESIDE) and o != _BESIDE)


def outside_the_repo(path: str | os.PathLike) -> bool:
    """Whether a file a test opens lies outside the repository: beside the clone, or anywhere but the
    machine's own folders."""
    full = os.path.realpath(os.fspath(path)) + os.sep
    if full.startswith(_REPO):
        return False
    if _BESIDE is not None and full.startswith(_BESIDE):
        # Beside the clone, only the machine's own folders that lie there too (a clone in $HOME: ~/.cache).
        return not full.startswith(_OWN_BESIDE)
    return not full.startswith(_OWN)


def _watch_opens(event: str, args: tuple) -> None:
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        if outside_the_repo(path) and os.path.exists(path):  # a path that is not there reads nothing
            _OPENED_OUTSIDE.append(path)


sys.addaudithook(_watch_opens)


@pytest.fixture(autouse=True)
def _only_files_inside_the_repo():
    _OPENED_OUTSIDE.clear()
    yield
    if _OPENED_OUTSIDE:
        opened = sorted(set(_OPENED_OUTSIDE))
        _OPENED_OUTSIDE.clear()
        pytest.fail(f"the test opened files outside the repository: {opened}")


@pytest.fixture(scope="session")
def paper_data() -> Path:
    return PAPER_DATA


@pytest.fixture(scope="session")
def real_backend():
    from icm_engine.backends import get_backend

    return get_backend("transformers")
