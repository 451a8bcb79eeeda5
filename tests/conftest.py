import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FRUGAL_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared not found at {SHARED} (set FRUGAL_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def yesno_dir(shared_dir) -> Path:
    return shared_dir / "data" / "yesno"
