"""Several recordings of one wrist in one visit -> one recording, in time order.

A device restarted, a battery swapped, a second download: the recordings are
joined in the order they start. Samples of a later recording at or before the
end of the earlier ones are dropped (an overlap is never counted twice) and
flagged; a gap between recordings is kept as a gap (no samples) and flagged.
A recording wholly inside an earlier one adds nothing and is flagged.
Recordings at different sampling rates are not combined (a DataError naming them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wearflow.clock import iso_utc
from wearflow.errors import DataError
from wearflow.recording import Recording

RATE_TOLERANCE = 0.01  # relative difference of sampling rates still combined


@dataclass(frozen=True)
class Part:
    """One input recording as it went into the combination (for qc.json)."""

    uri: str
    start_utc: str
    end_utc: str
    n_samples: int
    samples_used: int


def combine_recordings(recordings: Sequence[Recording], uris: Sequence[str]
                       ) -> tuple[Recording, list[Part]]:
    """Join ``recordings`` (read from ``uris``) in time order; see the module docstring.

    Raises
    ------
    DataError
        The sampling rates differ (subject: the first file).
    """
    order = sorted(range(len(recordings)), key=lambda i: float(recordings[i].time_s[0]))
    first = recordings[order[0]]
    rates = {uris[i]: recordings[i].sampling_rate_hz for i in order}
    if any(abs(r / first.sampling_rate_hz - 1.0) > RATE_TOLERANCE for r in rates.values()):
        shown = ", ".join(f"{r:g} Hz in {u.rsplit('/', 1)[-1]}" for u, r in rates.items())
        raise DataError(f"recordings of one wrist at different sampling rates ({shown}) "
                        "cannot be combined", subject=uris[order[0]])
    period_s = 1.0 / first.sampling_rate_hz
    keep: list[np.ndarray] = []
    flags: list[str] = [f"recordings_combined={len(recordings)}"]
    parts: list[Part] = []
    end_s = -np.inf
    for i in order:
        rec, name = recordings[i], uris[i].rsplit("/", 1)[-1]
        start = int(np.searchsorted(rec.time_s, end_s, side="right"))
        if start >= rec.n_samples:
            flags.append(f"recording_inside_another:{name}")
        elif start > 0:
            flags.append(f"overlap_trimmed_s={float(end_s - rec.time_s[0]):.1f}:{name}")
        elif np.isfinite(end_s) and rec.time_s[0] - end_s > 2 * period_s:
            flags.append(f"gap_between_recordings_s={float(rec.time_s[0] - end_s):.1f}:{name}")
        keep.append(np.arange(start, rec.n_samples))
        parts.append(Part(uris[i], iso_utc(rec.time_s[0]), iso_utc(rec.time_s[-1]),
                          rec.n_samples, rec.n_samples - start))
        if start < rec.n_samples:
            end_s = max(end_s, float(rec.time_s[-1]))
    temperatures = [recordings[i].temperature_c for i in order]
    with_temperature = [t for t in temperatures if t is not None]
    if with_temperature and len(with_temperature) < len(temperatures):
        flags.append("temperature_dropped:not in every recording")
    combined = Recording(
        time_s=np.concatenate([recordings[i].time_s[k] for i, k in zip(order, keep,
                                                                         strict=True)]),
        accel_g=np.concatenate([recordings[i].accel_g[k] for i, k in zip(order, keep,
                                                                          strict=True)]),
        sampling_rate_hz=first.sampling_rate_hz,
        device=first.device,
        temperature_c=np.concatenate([t[k] for t, k in zip(with_temperature, keep,
                                                                strict=True)])
        if len(with_temperature) == len(temperatures) else None,
        flags=tuple(dict.fromkeys([*(f for i in order for f in recordings[i].flags),
                                   *flags])),
    )
    return combined, parts

