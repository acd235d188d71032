"""Fixtures for the reader tests: the shared real files, by relative path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def real_bytes(real_dir: Path) -> Callable[[str], bytes]:
    """Bytes of a file under the shared real-data folder."""

    def load(relative: str) -> bytes:
        return (real_dir / relative).read_bytes()

    return load


@pytest.fixture(scope="session")
def real_path(real_dir: Path) -> Callable[[str], Path]:
    """Path of a file under the shared real-data folder (for SKDH, which reads paths)."""

    def resolve(relative: str) -> Path:
        return real_dir / relative

    return resolve
