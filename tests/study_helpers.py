"""Small helpers shared by the study-level tests."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from wearflow import load_study, study_status
from wearflow.demo.synthetic import generate_recording

HOSTILE_STUDY = """\
study: HOSTILE
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.csv"]
  metadata: ["meta/*.csv", "meta/*.xlsx"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""
"""The study of the hostile-input tests: one CSV per wrist, metadata CSV and XLSX."""

def write_csv(path: Path, seed: int, hours: float = 1.0, *, start_utc: datetime | None = None,
              time_zone: str = "UTC") -> None:
    """A short synthetic recording as a timestamp,x,y,z,temperature CSV (20 Hz)."""
    side = "right" if path.stem.endswith("_R") else "left"
    rec, _ = generate_recording(seed=seed, days=hours / 24, sampling_rate_hz=20.0, side=side,
                                start_utc=start_utc, time_zone=time_zone)
    stamps = pd.to_datetime(rec.time_s, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if rec.temperature_c is None:
        raise AssertionError("synthetic recordings carry temperature")
    pd.DataFrame({"timestamp": stamps, "x": rec.accel_g[:, 0], "y": rec.accel_g[:, 1],
                  "z": rec.accel_g[:, 2], "temperature": rec.temperature_c}).to_csv(
        path, index=False, float_format="%.5f")


def issues_by_file(root: Path) -> dict[str, list[tuple[str, str]]]:
    """(tag, message) of each open issue, by the name of the file it names."""
    out: dict[str, list[tuple[str, str]]] = {}
    for issue in study_status(load_study(root))["issues"]:
        name = (issue["uri"] or "").rsplit("/", 1)[-1]
        out.setdefault(name, []).append((issue["tag"], issue["message"]))
    return out
