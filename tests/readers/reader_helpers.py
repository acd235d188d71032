"""Plain helpers shared by the reader tests (fixtures live in conftest.py)."""

from __future__ import annotations

import hashlib

import numpy as np

from wearflow.recording import FloatArray


def sha12(data: bytes) -> str:
    """First 12 hex digits of the sha256, as in the data MANIFEST."""
    return hashlib.sha256(data).hexdigest()[:12]


def synthetic_signal(
    n: int, sampling_rate_hz: float, *, start_s: float = 1_700_000_000.0, seed: int = 0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Deterministic time, acceleration (about 1 g) and temperature of n samples."""
    rng = np.random.default_rng(seed)
    time_s = start_s + np.arange(n) / sampling_rate_hz
    accel = rng.normal(0.0, 0.4, (n, 3))
    accel[:, 2] += 1.0
    temperature = 30.0 + 3.0 * np.sin(np.linspace(0.0, 6.0, n))
    return time_s, accel, temperature
