"""The two passes over a recording's chunks, and the epoch features they keep.

Two passes, because every feature after the first step is computed on the
*calibrated* acceleration (SKDH's ``CalibrateAccelerometer`` runs first and
replaces ``accel`` for every later step), and the calibration is only known once
enough still windows have been seen (12 hours' at least). ENMO,
``max(|a| - 1, 0)``, is not linear in the samples, so calibrated ENMO cannot be
recovered exactly from uncalibrated block sums: a one-pass design would trade
exactness. Once the calibration is accepted (after the first 12 hours, usually),
pass 2 runs within pass 1's read, and only the seconds before are read again
(:mod:`wearflow.streaming.single_read`).

- Pass 1 (:func:`still_window_pass`): per 10-s block, the sums of each axis, its
  square and the temperature: the windows' mean and SD for the sphere fit.
- Pass 2 (:func:`epoch_pass`): the calibration applied sample by sample, then per
  1-s block the sums of each calibrated axis, its square, ENMO and the
  temperature. Everything later (DETACH's 60-s SDs, the 5-s arm angle and ENMO
  epochs, the 1-minute activity index) is a sum of these 1-s blocks.

Both passes hand each chunk's raw rows to a compiled kernel
(:mod:`wearflow.streaming.kernels`) that derives and sums the per-sample values
block by block, to the bit as numpy would.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from wearflow.streaming import kernels
from wearflow.streaming.blocks import BlockSums, BlockTable
from wearflow.streaming.chunks import ChunkLike, SampleChunk
from wearflow.streaming.spill import SpilledBlockSums, SpilledGrid

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SUB_CHUNK_SAMPLES = 65_536  # the passes' per-sample tables, at most this many samples
STILL_WINDOW_S = 10.0  # CalibrateAccelerometer: n10 = int(10 * fs)
FEATURE_BLOCK_S = 1.0  # DETACH's downsampled step (window_size=1)


STILL_KEEP_SD_G = 0.05
"""Pass 1 keeps the 10-s windows whose every axis' SD is below this: the sphere fit
reads only those below 0.013 g, the calibration error figure only those below 0.013 g
once calibrated (a window above 0.05 g would need a scale under 0.26 to count)."""


@dataclass(frozen=True)
class StillWindows:
    """Per 10-s window still enough to matter (:data:`STILL_KEEP_SD_G`): samples, mean
    and sample SD (ddof=1, as SKDH's ``moving_sd``) per axis, mean temperature (0
    without one), in g and deg C; ``first_start_s``: the first window's start, still or
    not (None: no samples)."""

    start_s: FloatArray
    count: npt.NDArray[np.int64]
    mean_g: FloatArray
    sd_g: FloatArray
    temperature_c: FloatArray
    n_samples: int
    has_temperature: bool
    first_start_s: float | None = None


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
        """The calibrated (n, 3) acceleration (the passes apply it in
        :mod:`~wearflow.streaming.kernels`, in the same order of operations)."""
        out = np.empty((3, accel_g.shape[0]))
        shift = None
        if temperature_c is not None and np.any(self.temperature_scale != 0.0):
            shift = temperature_c - self.temperature_mean_c
        for j in range(3):
            row = out[j]
            np.add(accel_g[:, j], self.offset_g[j], out=row)
            np.multiply(row, self.scale[j], out=row)
            if shift is not None:
                row += shift * self.temperature_scale[j]
        calibrated: FloatArray = out.T
        return calibrated


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
    sums = StillSums()
    n, has_temp = 0, False
    for chunk in sub_chunks(chunks):
        sums.add(chunk.time_s, raw_rows(chunk))
        has_temp = has_temp or chunk.temperature_c is not None
        n += len(chunk.time_s)
    return sums.windows(sums.finish(), n, has_temp)


def raw_rows(chunk: ChunkLike) -> FloatArray:
    """The kernels' input rows of a chunk (:data:`~wearflow.streaming.kernels.RAW_ROWS`):
    x, y, z in g and the temperature (0 without one)."""
    accel = np.asarray(chunk.accel_g, dtype=np.float64)
    raw = np.empty((kernels.RAW_ROWS, accel.shape[0]))
    raw[0:3] = accel.T
    raw[3] = 0.0 if chunk.temperature_c is None else chunk.temperature_c
    return raw


class StillSums(BlockSums):
    """Pass 1's 10-s sums, each window turned into its statistics as soon as it is
    complete and dropped unless still enough to matter: pass 1 keeps a few bytes per
    still window instead of every window's sums."""

    def __init__(self) -> None:
        super().__init__(STILL_WINDOW_S, kernels.STILL_COLUMNS, n_inputs=kernels.RAW_ROWS)
        self.first_start_s: float | None = None

    def _block_sums(self, columns: FloatArray, heads: IntArray) -> FloatArray:
        return kernels.still_sums(columns, heads)

    def windows(self, table: BlockTable, n_samples: int, has_temperature: bool
                ) -> StillWindows:
        """``table`` (this object's :meth:`finish` or :meth:`so_far`) as still windows."""
        stats = table.sums if table.count.size else np.empty((0, 7))
        return StillWindows(table.start_s, table.count, stats[:, 0:3], stats[:, 3:6],
                            stats[:, 6], n_samples, has_temperature, self.first_start_s)

    def _store(self, index: npt.NDArray[np.int64], count: npt.NDArray[np.int64],
               sums: FloatArray) -> None:
        if self.first_start_s is None:
            self.first_start_s = float(index[0]) * self.length_s
        n = count.astype(np.float64)[:, None]
        mean = sums[:, 0:3] / n
        with np.errstate(invalid="ignore", divide="ignore"):
            var = (sums[:, 3:6] - sums[:, 0:3] * mean) / (n - 1.0)
        sd = np.sqrt(np.maximum(var, 0.0))
        sd[count < 2] = np.nan
        keep = np.all(sd < STILL_KEEP_SD_G, axis=1)  # NaN (one sample) is not still
        if keep.any():
            stats = np.column_stack((mean[keep], sd[keep], sums[keep, 6] / n[keep, 0]))
            super()._store(index[keep], count[keep], stats)


def epoch_pass(chunks: Iterable[ChunkLike], calibration: Calibration,
               extremes: bool = False) -> EpochFeatures:
    """Pass 2: calibrated 1-s block sums (see :class:`EpochFeatures`); with ``extremes``
    also each axis' max (columns 8-10) and min (11-13) per second, for the
    acceleration-only wear detection of a recording without temperature."""
    sums = FeatureSums(calibration, extremes)
    n, last, has_temp = 0, float("nan"), False
    try:
        for chunk in sub_chunks(chunks):
            temperature = chunk.temperature_c is not None  # a whole-file fact
            sums.add_chunk(chunk.time_s, raw_rows(chunk), temperature)
            has_temp = has_temp or temperature
            n += len(chunk.time_s)
            if len(chunk.time_s):
                last = float(chunk.time_s[-1])
    except BaseException:
        sums.close()  # a file that cannot be read to its end: the table is dropped
        raise
    return EpochFeatures(sums.finish_spilled(), n, last, has_temp)


class FeatureSums(SpilledBlockSums):
    """Pass 2's 1-s sums on disk, from the raw rows (:func:`raw_rows`) by the compiled
    kernel; ``file``, ``first_block``: as :class:`SpilledBlockSums`'."""

    def __init__(self, calibration: Calibration, extremes: bool, *,
                 file: BinaryIO | None = None, first_block: int | None = None) -> None:
        width = kernels.EXTREME_COLUMNS if extremes else kernels.FEATURE_COLUMNS
        super().__init__(FEATURE_BLOCK_S, width, n_inputs=kernels.RAW_ROWS, file=file,
                         first_block=first_block)
        self.calibration, self.extremes = calibration, extremes
        self.shift = False  # the temperature term applies (set per chunk)

    def add_chunk(self, time_s: FloatArray, raw: FloatArray, has_temperature: bool) -> None:
        """Add a chunk's samples (their raw rows)."""
        self.shift = has_temperature and bool(
            np.any(self.calibration.temperature_scale != 0.0))
        self.add(time_s, raw)

    def _block_sums(self, columns: FloatArray, heads: IntArray) -> FloatArray:
        cal = self.calibration
        return kernels.feature_sums(columns, heads, cal.offset_g, cal.scale,
                                    cal.temperature_scale, cal.temperature_mean_c,
                                    shift=self.shift, extremes=self.extremes)


def sub_chunks(chunks: Iterable[ChunkLike]) -> Iterator[ChunkLike]:
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

