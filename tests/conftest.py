"""Shared fixtures: paths to the real recordings beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_dir() -> Path:
    if not REAL.is_dir():
        pytest.fail(f"real recordings not found at {REAL} (../shared must sit beside the repo)")
    return REAL
