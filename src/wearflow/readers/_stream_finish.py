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
import numpy.typing as npt

from wearflow.errors import ReaderError
from wearflow.readers import _finish_kernels as kernels
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
        plain, gaps = kernels.plain_chunk(time_s, accel_g, self._gap_threshold_s)
        if plain and self._running_max_s > -math.inf and time_s[0] > self._running_max_s:
            # the usual chunk: finite, increasing, after the last one (one compiled scan)
            self._running_max_s = float(time_s[-1])
            self._flag_gaps(time_s, gaps, time_s[gaps + 1] - time_s[gaps])
            return self._chunk(time_s, accel_g, temperature_c, segment)
        # a sum is NaN or infinite when a value is (or when finite values overflow: the
        # row mask then keeps them all): the mask, a costlier pass, only for such a chunk
        with np.errstate(over="ignore", invalid="ignore"):
            all_finite = bool(np.isfinite(np.sum(accel_g)) and np.isfinite(np.sum(time_s)))
        if not all_finite:
            finite = np.isfinite(time_s) & np.all(np.isfinite(accel_g), axis=1)
            self._n_non_finite += int(finite.size - np.count_nonzero(finite))
            time_s, accel_g = time_s[finite], accel_g[finite]
            temperature_c = None if temperature_c is None else temperature_c[finite]
            if time_s.size == 0:
                return None
        if self._running_max_s == -math.inf:  # the first finite sample of the file
            check_sampling_rate(self.sampling_rate_hz, self.uri)
            check_start(float(time_s[0]), self.uri)
        steps = np.diff(time_s)
        if time_s[0] > self._running_max_s and (steps.size == 0 or steps.min() > 0.0):
            self._running_max_s = float(time_s[-1])  # increasing: every sample is kept
        else:
            keep = self._increasing(time_s)
            if not np.all(keep):
                self._n_trimmed += int(keep.size - np.count_nonzero(keep))
                time_s, accel_g = time_s[keep], accel_g[keep]
                temperature_c = None if temperature_c is None else temperature_c[keep]
                if time_s.size == 0:
                    return None
                steps = np.diff(time_s)
        where = np.flatnonzero(steps > self._gap_threshold_s)
        self._flag_gaps(time_s, where, steps[where])
        return self._chunk(time_s, accel_g, temperature_c, segment)

    @staticmethod
    def _chunk(time_s: FloatArray, accel_g: FloatArray, temperature_c: FloatArray | None,
               segment: int) -> Chunk:
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

    def _flag_gaps(self, time_s: FloatArray, where: npt.NDArray[np.int64],
                   over: FloatArray) -> None:
        """Flag the steps over the threshold: from the last kept time to ``time_s[0]``,
        then within the chunk (``over``: the steps after samples ``where``), in time
        order."""
        found: list[float] = []
        if self._last_kept_s is not None:
            first = float(time_s[0]) - self._last_kept_s
            if first > self._gap_threshold_s:
                found.append(first)
        self._last_kept_s = float(time_s[-1])
        room = max(MAX_GAP_FLAGS - len(self._gaps), 0)
        self._n_gaps += len(found) + int(where.size)
        found += over[:room].tolist()
        self._gaps.extend(f"gap_s={step:.1f}" for step in found[:room])

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
