"""The two passes over a recording's chunks, and the epoch features they keep.

Two passes, because every feature after the first step is computed on the
*calibrated* acceleration (SKDH's ``CalibrateAccelerometer`` runs first and
replaces ``accel`` for every later step), and the calibration is only known once
the still windows of the whole recording have been seen. ENMO,
``max(|a| - 1, 0)``, is not linear in the samples, so calibrated ENMO cannot be
recovered exactly from uncalibrated block sums: a one-pass design would trade
exactness for nothing but a second read of the file (0.3 s for a 7-day .cwa).

- Pass 1 (:func:`still_window_pass`): per 10-s block, the sums of each axis, its
  square and the temperature: the windows' mean and SD for the sphere fit.
- Pass 2 (:func:`epoch_pass`): the calibration applied sample by sample, then per
  1-s block the sums of each calibrated axis, its square, ENMO and the
  temperature. Everything later (DETACH's 60-s SDs, the 5-s arm angle and ENMO
  epochs, the 1-minute activity index) is a sum of these 1-s blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wearflow.streaming.blocks import BlockSums
from wearflow.streaming.chunks import ChunkLike, SampleChunk
from wearflow.streaming.spill import SpilledBlockSums, SpilledGrid

FloatArray = npt.NDArray[np.float64]

SUB_CHUNK_SAMPLES = 65_536  # the passes' per-sample tables, at most this many samples
STILL_WINDOW_S = 10.0  # CalibrateAccelerometer: n10 = int(10 * fs)
FEATURE_BLOCK_S = 1.0  # DETACH's downsampled step (window_size=1)


@dataclass(frozen=True)
class StillWindows:
    """Per 10-s window: samples, mean and sample SD (ddof=1, as SKDH's ``moving_sd``)
    per axis, mean temperature (0 without one), in g and deg C."""

    start_s: FloatArray
    count: npt.NDArray[np.int64]
    mean_g: FloatArray
    sd_g: FloatArray
    temperature_c: FloatArray
    n_samples: int
    has_temperature: bool


@dataclass(frozen=True)
class Calibration:
    """``a = (y + offset_g) * scale + (T - temperature_mean_c) * temperature_scale``
    (SKDH's notation); identity by default."""

    offset_g: FloatArray
    scale: FloatArray
    temperature_scale: FloatArray
    temperature_mean_c: float

    @classmethod
    def identity(cls) -> Calibration:
        return cls(np.zeros(3), np.ones(3), np.zeros(3), 0.0)

    def apply(self, accel_g: FloatArray, temperature_c: FloatArray | None) -> FloatArray:
        """The calibrated (n, 3) acceleration."""
        out = np.empty((3, accel_g.shape[0]))
        self.apply_into(accel_g, temperature_c, out)
        calibrated: FloatArray = out.T
        return calibrated

    def apply_into(self, accel_g: FloatArray, temperature_c: FloatArray | None,
                   out: FloatArray) -> None:
        """The calibrated axes, written axis by axis into the rows ``out[0:3]`` of the
        pass's (columns, n) table: no (n, 3) temporaries, no transposition."""
        shift = None
        if temperature_c is not None and np.any(self.temperature_scale != 0.0):
            shift = temperature_c - self.temperature_mean_c
        for j in range(3):
            row = out[j]
            np.add(accel_g[:, j], self.offset_g[j], out=row)
            np.multiply(row, self.scale[j], out=row)
            if shift is not None:
                row += shift * self.temperature_scale[j]


@dataclass(frozen=True)
class EpochFeatures:
    """Pass 2's 1-s blocks, on disk (close ``grid`` when done). Columns of the grid's
    sums: x, y, z (g), x², y², z² (g²), ENMO (g, ``max(|a| - 1, 0)`` per sample),
    temperature (deg C; 0 without one); with ``extremes``, also the max (8-10) and min
    (11-13) of x, y, z (g)."""

    grid: SpilledGrid
    n_samples: int
    last_time_s: float
    has_temperature: bool


def still_window_pass(chunks: Iterable[ChunkLike]) -> StillWindows:
    """Pass 1: the 10-s window statistics CalibrateAccelerometer's sphere fit reads."""
    sums = BlockSums(STILL_WINDOW_S, 7)
    n, has_temp = 0, False
    for chunk in _sub_chunks(chunks):
        a = np.asarray(chunk.accel_g, dtype=np.float64)
        cols = np.empty((7, a.shape[0]))
        for j in range(3):
            np.copyto(cols[j], a[:, j])
        np.square(cols[0:3], out=cols[3:6])
        cols[6] = 0.0 if chunk.temperature_c is None else chunk.temperature_c
        has_temp = has_temp or chunk.temperature_c is not None
        sums.add(chunk.time_s, cols)
        n += a.shape[0]
    table = sums.finish()
    count = table.count.astype(np.float64)[:, None]
    mean = table.sums[:, 0:3] / count
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (table.sums[:, 3:6] - table.sums[:, 0:3] * mean) / (count - 1.0)
    sd = np.sqrt(np.maximum(var, 0.0))
    sd[table.count < 2] = np.nan
    return StillWindows(table.start_s, table.count, mean, sd, table.sums[:, 6] / count[:, 0],
                        n, has_temp)


def epoch_pass(chunks: Iterable[ChunkLike], calibration: Calibration,
               extremes: bool = False) -> EpochFeatures:
    """Pass 2: calibrated 1-s block sums (see :class:`EpochFeatures`); with ``extremes``
    also each axis' max (columns 8-10) and min (11-13) per second, for the
    acceleration-only wear detection of a recording without temperature."""
    width = 14 if extremes else 8
    reducers = (np.add,) * 8 + ((np.maximum,) * 3 + (np.minimum,) * 3 if extremes else ())
    sums = SpilledBlockSums(FEATURE_BLOCK_S, width, reducers)
    n, last, has_temp = 0, float("nan"), False
    try:
        for chunk in _sub_chunks(chunks):
            sums.add(chunk.time_s, _calibrated_columns(chunk, calibration, width))
            has_temp = has_temp or chunk.temperature_c is not None
            n += len(chunk.time_s)
            if len(chunk.time_s):
                last = float(chunk.time_s[-1])
    except BaseException:
        sums.close()  # a file that cannot be read to its end: the table is dropped
        raise
    return EpochFeatures(sums.finish_spilled(), n, last, has_temp)


def _calibrated_columns(chunk: ChunkLike, calibration: Calibration, width: int) -> FloatArray:
    """Pass 2's per-sample columns of a chunk (the order of :class:`EpochFeatures`)."""
    temp = chunk.temperature_c
    accel = np.asarray(chunk.accel_g, dtype=np.float64)
    cols = np.empty((width, accel.shape[0]))
    calibration.apply_into(accel, temp, cols)
    if width > 8:  # the extremes
        cols[8:11] = cols[0:3]
        cols[11:14] = cols[0:3]
    np.square(cols[0:3], out=cols[3:6])
    norm = cols[6]
    np.add(cols[3], cols[4], out=norm)
    norm += cols[5]
    np.sqrt(norm, out=norm)
    norm -= 1.0
    np.maximum(norm, 0.0, out=norm)
    cols[7] = 0.0 if temp is None else temp
    return cols


def _sub_chunks(chunks: Iterable[ChunkLike]) -> Iterator[ChunkLike]:
    """The chunks cut to at most :data:`SUB_CHUNK_SAMPLES` samples (views): the passes'
    tables of per-sample columns stay small whatever the reader's chunk size, and the
    block sums do not depend on where chunks are cut (:class:`BlockSums`)."""
    for chunk in chunks:
        n = len(chunk.time_s)
        if n <= SUB_CHUNK_SAMPLES:
            yield chunk
            continue
        for lo in range(0, n, SUB_CHUNK_SAMPLES):
            part = slice(lo, lo + SUB_CHUNK_SAMPLES)
            temperature = chunk.temperature_c
            yield SampleChunk(chunk.time_s[part], chunk.accel_g[part],
                        None if temperature is None else temperature[part])

