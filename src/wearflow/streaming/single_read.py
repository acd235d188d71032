"""The file decoded once: pass 2's features computed in pass 1's read once the
calibration is known, and only the head read again.

The sphere fit (:func:`~wearflow.streaming.calibrate.fit_calibration`) reads the
still windows of the first 12 hours, then of 12 more at a time until a fit is
accepted; a fit at a limit reads no window after it. So the first read tries the
fit as soon as it has gone past each limit (with the same windows, and the same
sample-count conditions, as the fit over the whole recording would), and once one
is accepted it computes the calibrated 1-s sums of every later second in the same
read, into the 1-s table on disk; afterwards only the seconds before that point
(the head: 12 hours and a chunk, usually) are decoded again, into the same table.
The table is the two-pass one to the bit (blocks are whole seconds; each second is
summed by one writer, from the same samples), and so is every result.

When no fit is accepted before the file ends (a recording under 12 hours, a sphere
never populated, temperature present in some chunks only), :func:`read_once`
returns no features, and the caller reads the file a second time, whole, as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from wearflow.streaming.blocks import block_ids
from wearflow.streaming.calibrate import (
    CalibrationParameters,
    CalibrationResult,
    calibration_limits,
    fit_at_limit,
    limit_time_s,
)
from wearflow.streaming.chunks import ChunkLike, SampleChunk
from wearflow.streaming.features import (
    EpochFeatures,
    FeatureSums,
    StillSums,
    StillWindows,
    raw_rows,
    sub_chunks,
)

ChunkFactory = Callable[[], Iterable[ChunkLike]]
BUILTIN_PARAMETERS = CalibrationParameters()


@dataclass(frozen=True)
class FirstRead:
    """Pass 1's still windows; with an accepted fit found during it, that calibration
    and the whole recording's 1-s features (else both None: read the file again)."""

    still: StillWindows
    calibration: CalibrationResult | None
    features: EpochFeatures | None


class _Fitter:
    """Tries the sphere fit at each limit once the read has gone past it."""

    def __init__(self, sampling_rate_hz: float, params: CalibrationParameters) -> None:
        self.rate_hz, self.params = sampling_rate_hz, params
        self.first_limit, self.step = calibration_limits(sampling_rate_hz, params)
        self.limit = self.first_limit

    def ready(self, sums: StillSums, n_seen: int, last_s: float) -> bool:
        """Whether the fit at the current limit can be tried now, as
        ``fit_calibration`` would try it: the recording has ``min_hours`` of samples,
        more samples than the previous (failed) limit, and every window of this
        limit is complete (a sample at or after the limit's time has been added)."""
        if n_seen < self.first_limit or sums.first_start_s is None:
            return False
        if self.limit > self.first_limit and n_seen <= self.limit - self.step:
            return False
        return last_s >= limit_time_s(sums.first_start_s, self.rate_hz, self.limit)

    def try_fit(self, sums: StillSums, n_seen: int) -> CalibrationResult | None:
        """The accepted fit at the current limit, or None (and the next limit)."""
        windows = sums.windows(sums.so_far(), n_seen, False)
        result = fit_at_limit(windows, self.rate_hz, self.limit, self.params)
        if result is not None and result.applied:
            return result
        self.limit += self.step
        return None


def read_once(chunks: ChunkFactory, sampling_rate_hz: float,
              params: CalibrationParameters = BUILTIN_PARAMETERS) -> FirstRead:
    """Pass 1, and pass 2 in the same read once the calibration is accepted; then the
    head read again (see the module docstring)."""
    still = StillSums()
    fitter = _Fitter(sampling_rate_hz, params)
    calibration: CalibrationResult | None = None
    tail: FeatureSums | None = None
    split_s = math.inf  # the tail's first second
    n, last, first_block = 0, float("nan"), None
    has_temp = mixed = False
    temperature_first: bool | None = None
    try:
        for chunk in sub_chunks(chunks()):
            size = len(chunk.time_s)
            if size == 0:
                continue
            temperature = chunk.temperature_c is not None
            if temperature_first is None:
                temperature_first = temperature
                first_block = int(block_ids(chunk.time_s[:1], 1.0)[0])
            mixed = mixed or temperature != temperature_first
            raw = raw_rows(chunk)
            if tail is not None:
                cut = int(np.searchsorted(chunk.time_s, split_s, side="left"))
                if cut < size:
                    tail.add_chunk(chunk.time_s[cut:], raw[:, cut:], temperature)
            still.add(chunk.time_s, raw)
            n += size
            last = float(chunk.time_s[-1])
            has_temp = has_temp or temperature
            while calibration is None and not mixed and fitter.ready(still, n, last):
                calibration = fitter.try_fit(still, n)
            if calibration is not None and tail is None:
                split_s = math.floor(last) + 1.0  # later samples of this second: the head
                tail = FeatureSums(calibration.calibration, extremes=not temperature_first,
                                   first_block=first_block)
    except BaseException:
        if tail is not None:
            tail.close()
        raise
    windows = still.windows(still.finish(), n, has_temp)
    if calibration is None or tail is None or mixed:
        if tail is not None:
            tail.close()
        return FirstRead(windows, None, None)
    try:
        head = FeatureSums(calibration.calibration, extremes=not temperature_first,
                           file=tail.file, first_block=first_block)
        for time_s, raw, temperature in _head(chunks, split_s):
            head.add_chunk(time_s, raw, temperature)
        grid = tail.finish_spilled(head)
    except BaseException:
        tail.close()
        raise
    return FirstRead(windows, calibration, EpochFeatures(grid, n, last, has_temp))


def _head(chunks: ChunkFactory, split_s: float
          ) -> Iterator[tuple[np.ndarray, np.ndarray, bool]]:
    """The samples before ``split_s`` (times, raw rows, temperature present), read again;
    the read stops (its file closed) at the first sample at or after it."""
    source = iter(chunks())
    try:
        for chunk in sub_chunks(source):
            if not len(chunk.time_s):
                continue
            cut = int(np.searchsorted(chunk.time_s, split_s, side="left"))
            if cut:
                part = SampleChunk(chunk.time_s[:cut], chunk.accel_g[:cut], None
                                   if chunk.temperature_c is None
                                   else chunk.temperature_c[:cut])
                yield part.time_s, raw_rows(part), part.temperature_c is not None
            if cut < len(chunk.time_s):
                return
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
