from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ICM_SHARED_DATA", ROOT.parent / "shared" / "data"))
SANITY = ROOT / "data" / "sanity"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the paper's data folder is missing: {SHARED_DATA} (set ICM_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_backend():
    from icm_engine.backends import get_backend

    return get_backend("transformers")
