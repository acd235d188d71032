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


ACTILIFE_HEADER = (
    "------------ Data File Created By ActiGraph GT3X+ ActiLife v6.13.3 Firmware v1.7.2 "
    "date format dd/MM/yyyy at 30 Hz  Filter Normal -----------\n"
    "Serial Number: TAS0000\nStart Time 08:00:00\nStart Date 03/02/2021\n"
    "Epoch Period (hh:mm:ss) 00:00:00\nDownload Time 09:00:00\nDownload Date 03/02/2021\n"
    "Current Memory Address: 0\nCurrent Battery Voltage: 4.15     Mode = 12\n" + "-" * 50 + "\n"
)
"""An ActiLife RAW CSV header: GT3X+ TAS0000, 30 Hz, started 03/02/2021 08:00:00 (day first)."""
