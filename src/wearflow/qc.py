"""Data-quality records: per file (span, rate drift, clipping, reader and algorithm flags)
and per day (wear hours, valid or not, and why).

A day is valid when the wrist was worn at least ``min_wear_hours`` (study file
``qc: min_wear_hours``, default 16 h, the GGIR / UK Biobank convention) by the
solution's own wear detection. Days without a wear figure (recordings too short
for a day window) are listed as not valid with that reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from wearflow.recording import (
    CHUNK_ROWS,
    AccelExtremes,
    DeviceInfo,
    Recording,
    accel_extremes,
)

DAY_TABLE = "activity_level_classification"
QC_TABLE = "qc_days"
CLIP_MARGIN_G = 0.05


@dataclass(frozen=True)
class RecordingSummary:
    """What a file's QC and flags need of its recording, without its samples: from a
    decoded :class:`Recording` (:func:`summarise`) or gathered while a streaming solution
    read the file chunk by chunk (:mod:`wearflow.streamed`); the same figures either way."""

    n_samples: int
    sampling_rate_hz: float
    first_s: float
    last_s: float
    has_temperature: bool
    device: DeviceInfo
    flags: tuple[str, ...]
    peak_abs_accel_g: float
    clipped_fraction: float

    @property
    def duration_s(self) -> float:
        return self.last_s - self.first_s if self.n_samples else 0.0


def summarise(recording: Recording) -> RecordingSummary:
    """The summary of a decoded recording."""
    peak, clipped = _peak_and_clipped(recording.accel_g, recording.extremes)
    return RecordingSummary(
        n_samples=recording.n_samples, sampling_rate_hz=recording.sampling_rate_hz,
        first_s=float(recording.time_s[0]), last_s=float(recording.time_s[-1]),
        has_temperature=recording.temperature_c is not None, device=recording.device,
        flags=tuple(recording.flags), peak_abs_accel_g=peak, clipped_fraction=clipped)


def recording_qc(recording: Recording) -> dict[str, Any]:
    """File-level figures from the decoded recording."""
    return summary_qc(summarise(recording))


def summary_qc(summary: RecordingSummary) -> dict[str, Any]:
    """File-level figures from a recording's summary."""
    n, duration_s = summary.n_samples, summary.duration_s
    measured = (n - 1) / duration_s if duration_s > 0 else 0.0
    drift = (measured / summary.sampling_rate_hz - 1.0) * 100.0 if measured else 0.0
    peak, clipped = summary.peak_abs_accel_g, summary.clipped_fraction
    return {
        "measured_rate_hz": round(measured, 4),
        "rate_drift_pct": round(drift, 4),
        "peak_abs_accel_g": round(peak, 4),
        "clipped_fraction": round(clipped, 6),
    }


_CHUNK_ROWS = CHUNK_ROWS


def _peak_and_clipped(accel: np.ndarray[Any, Any], extremes: AccelExtremes | None = None
                      ) -> tuple[float, float]:
    """Largest |a| on any axis, and the fraction of samples within ``CLIP_MARGIN_G`` of it.

    From the per-chunk extremes the reader computed (``extremes``; else computed
    here): only the chunks whose own peak comes near the recording's are searched
    for clipped samples. The clipped fraction is only meaningful near a device's
    range limit (peak above 1.5 g).
    """
    n = accel.shape[0]
    if n == 0:
        return 0.0, 0.0
    extremes = extremes or accel_extremes(accel, _CHUNK_ROWS)
    chunk_peaks = extremes.chunk_peak_g
    peak = float(np.max(chunk_peaks))
    if peak <= 1.5:
        return peak, 0.0
    limit = peak - CLIP_MARGIN_G
    rows_per_chunk = extremes.chunk_rows
    hits = 0
    for c in np.flatnonzero(chunk_peaks >= limit):
        flat = accel[c * rows_per_chunk:(c + 1) * rows_per_chunk].reshape(-1)
        rows = np.flatnonzero((flat >= limit) | (flat <= -limit)) // accel.shape[1]
        hits += int(np.count_nonzero(np.diff(rows))) + 1  # rows ascend: count distinct
    return peak, hits / n


def window_flags(summary: RecordingSummary, inputs: Mapping[str, str]) -> list[str]:
    """``outside_study_window`` when samples fall before the study's start or after its end."""
    start, end = inputs.get("study_start"), inputs.get("study_end")
    first = pd.Timestamp(summary.first_s, unit="s", tz="UTC")
    last = pd.Timestamp(summary.last_s, unit="s", tz="UTC")
    outside = ((start is not None and first < pd.Timestamp(start, tz="UTC"))
               or (end is not None and last >= pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1)))
    return [f"outside_study_window:{start or '-'}..{end or '-'}"] if outside else []


def day_validity(tables: Mapping[str, pd.DataFrame], min_wear_hours: float,
                 protocol: tuple[str | None, str | None] = (None, None)) -> pd.DataFrame:
    """One row per local day: wear hours, ``valid_day`` (1/0) and the reason when 0.

    ``protocol``: the participant's monitoring period (first and last local date, ISO;
    either may be open); a day outside it is not valid, whatever its wear.
    """
    days = tables.get(DAY_TABLE)
    if days is None or "date" not in days.columns or "n_wear_hours" not in days.columns:
        return pd.DataFrame({"date": pd.array([], dtype="string"),
                             "wear_hours": pd.Series([], dtype="float64"),
                             "valid_day": pd.Series([], dtype="int64"),
                             "exclusion_reason": pd.array([], dtype="string")})
    wear = days["n_wear_hours"].astype("float64").to_numpy()
    valid = np.where(np.isnan(wear), 0, (wear >= min_wear_hours).astype("int64"))
    reasons = [
        "no wear figure (day window not covered)" if np.isnan(w)
        else (f"worn {w:g} h < {min_wear_hours:g} h" if w < min_wear_hours else None)
        for w in wear
    ]
    first, last = protocol
    if first is not None or last is not None:
        for i, day in enumerate(days["date"].astype("string")):
            if (first is not None and str(day) < first) or (last is not None
                                                            and str(day) > last):
                valid[i] = 0
                reasons[i] = f"outside the protocol window {first or '-'}..{last or '-'}"
    return pd.DataFrame({
        "date": days["date"].astype("string").to_numpy(),
        "wear_hours": wear,
        "valid_day": valid.astype("int64"),
        "exclusion_reason": pd.array(reasons, dtype="string"),
    })


def qc_rows(uri: str, state: str, tag: str | None, message: str | None,
            qc: Mapping[str, Any] | None, days: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Rows of the study QC table for one file: one per day, or one for the whole file."""
    base = {"uri": uri, "state": state, "flags": ";".join((qc or {}).get("flags", []))}
    if state != "done" or days is None or days.empty:
        reason = message if state != "done" else "no complete day in the recording"
        return [{**base, "date": None, "wear_hours": None, "valid_day": 0,
                 "reason": f"[{tag}] {reason}" if tag else reason}]
    return [{**base, "date": str(r["date"]), "wear_hours": float(r["wear_hours"]),
             "valid_day": int(r["valid_day"]),
             "reason": None if pd.isna(r["exclusion_reason"]) else str(r["exclusion_reason"])}
            for r in days.to_dict("records")]
