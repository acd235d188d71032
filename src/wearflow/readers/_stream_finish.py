""":func:`wearflow.readers._common.finish`, one chunk at a time.

The streaming readers push their decoded samples through a :class:`StreamFinisher`,
which applies the whole-file clean-up with carried state so that the chunks it
returns, concatenated, equal what ``finish`` returns for the whole file: samples
with a non-finite time or acceleration dropped and counted, samples whose time
does not exceed every earlier time dropped and counted (the running maximum is
carried across chunks), gaps flagged (the last kept time is carried), the
sampling rate and the first finite sample's time checked, and the flags in the
same order (the reader's, then ``non_finite_samples_dropped``,
``trimmed_samples``, the gaps).
"""

from __future__ import annotations

import math

import numpy as np

from wearflow.errors import ReaderError
from wearflow.readers._common import MAX_GAP_FLAGS, check_sampling_rate, check_start
from wearflow.readers.chunks import Chunk
from wearflow.recording import FloatArray


class StreamFinisher:
    """The whole-file clean-up of one recording, applied chunk by chunk."""

    def __init__(self, uri: str, sampling_rate_hz: float) -> None:
        self.uri = uri
        self.sampling_rate_hz = sampling_rate_hz
        self._gap_threshold_s = max(1.0, 3.0 / sampling_rate_hz)
        self._n_seen = 0
        self._n_non_finite = 0
        self._n_trimmed = 0
        self._running_max_s = -math.inf  # the latest finite time so far (kept or not)
        self._last_kept_s: float | None = None
        self._gaps: list[str] = []
        self._n_gaps = 0

    def push(self, time_s: FloatArray, accel_g: FloatArray, temperature_c: FloatArray | None,
             segment: int) -> Chunk | None:
        """The cleaned chunk of these samples (None when none is kept)."""
        self._n_seen += time_s.shape[0]
        if time_s.size == 0:
            return None
        # min and max show a NaN or infinity: the row mask is only built (a costlier
        # pass) for a chunk that has one
        if not (np.isfinite(accel_g.min()) and np.isfinite(accel_g.max())
                and np.isfinite(time_s.min()) and np.isfinite(time_s.max())):
            finite = np.isfinite(time_s) & np.all(np.isfinite(accel_g), axis=1)
            self._n_non_finite += int(finite.size - np.count_nonzero(finite))
            time_s, accel_g = time_s[finite], accel_g[finite]
            temperature_c = None if temperature_c is None else temperature_c[finite]
            if time_s.size == 0:
                return None
        if self._running_max_s == -math.inf:  # the first finite sample of the file
            check_sampling_rate(self.sampling_rate_hz, self.uri)
            check_start(float(time_s[0]), self.uri)
        keep = self._increasing(time_s)
        if not np.all(keep):
            self._n_trimmed += int(keep.size - np.count_nonzero(keep))
            time_s, accel_g = time_s[keep], accel_g[keep]
            temperature_c = None if temperature_c is None else temperature_c[keep]
            if time_s.size == 0:
                return None
        self._flag_gaps(time_s)
        return Chunk(
            time_s=np.ascontiguousarray(time_s, dtype=np.float64),
            accel_g=np.ascontiguousarray(accel_g, dtype=np.float64),
            temperature_c=(None if temperature_c is None
                           else np.ascontiguousarray(temperature_c, dtype=np.float64)),
            segment=segment,
        )

    def _increasing(self, time_s: FloatArray) -> np.ndarray:
        """True for samples later than every finite sample before them, in this file."""
        running = np.maximum.accumulate(time_s)
        before = np.empty_like(running)
        before[0] = self._running_max_s
        np.maximum(running[:-1], self._running_max_s, out=before[1:])
        self._running_max_s = max(self._running_max_s, float(running[-1]))
        keep: np.ndarray = time_s > before
        return keep

    def _flag_gaps(self, time_s: FloatArray) -> None:
        if self._last_kept_s is None:
            steps = np.diff(time_s)
        else:
            steps = np.diff(time_s, prepend=self._last_kept_s)
        self._last_kept_s = float(time_s[-1])
        where = np.flatnonzero(steps > self._gap_threshold_s)
        room = MAX_GAP_FLAGS - len(self._gaps)
        self._gaps.extend(f"gap_s={steps[i]:.1f}" for i in where[:max(room, 0)])
        self._n_gaps += int(where.size)

    def flags(self, reader_flags: list[str]) -> tuple[str, ...]:
        """The file's flags once every sample was pushed, as ``finish`` orders them.

        Raises
        ------
        ReaderError
            No samples, or none with a finite time and acceleration (``finish``'s reasons).
        """
        if self._n_seen == 0:
            raise ReaderError("no samples could be decoded", subject=self.uri)
        if self._running_max_s == -math.inf:
            raise ReaderError("no sample has a finite time and acceleration", subject=self.uri)
        flags = list(reader_flags)
        if self._n_non_finite:
            flags.append(f"non_finite_samples_dropped={self._n_non_finite}")
        if self._n_trimmed:
            flags.append(f"trimmed_samples={self._n_trimmed}")
        flags.extend(self._gaps)
        if self._n_gaps > MAX_GAP_FLAGS:
            flags.append(f"gaps_not_listed={self._n_gaps - MAX_GAP_FLAGS}")
        return tuple(flags)
