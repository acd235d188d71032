"""Compiled per-sample kernels of the two passes (numba), equal to numpy's to the bit.

Each pass reduces every sample of a recording into per-block sums: pass 1 the raw
axes, their squares and the temperature per 10-s window; pass 2 the calibrated
axes, their squares, ENMO and the temperature per second (and each axis' extremes
without temperature). Done with numpy, each derived column is a temporary array
of the chunk's length, and each column one ``reduceat``: most of the passes' CPU.
Here one loop per block computes the derived values of its samples into a small
scratch table and sums each row as ``numpy.add.reduceat`` does (the first value,
plus numpy's pairwise sum of the rest: 8 running sums up to 128 values, halves
above), so the sums are numpy's to the last bit and every result downstream is
unchanged. :func:`block_sums_numpy` is the plain numpy reference the tests
compare the kernel against.

Compiled and cached as :mod:`wearflow._jit` says.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from wearflow._jit import jit as _jit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

RAW_ROWS = 4
"""The kernels' input: rows x, y, z (g) and temperature (deg C; 0 without one)."""
STILL_COLUMNS = 7
"""Pass 1's sums: x, y, z, x², y², z², temperature."""
FEATURE_COLUMNS = 8
"""Pass 2's sums: calibrated x, y, z, their squares, ENMO, temperature."""
EXTREME_COLUMNS = 14
"""Pass 2 with extremes: the 8 sums, then max x, y, z and min x, y, z."""
_PAIRWISE_BLOCK = 128  # numpy's PW_BLOCKSIZE


@_jit
def _leaf(a: FloatArray, lo: int, n: int) -> float:  # pragma: no cover - compiled
    """numpy's ``pairwise_sum`` of ``a[lo:lo + n]`` for ``n`` up to 128: 8 running sums."""
    res: float = -0.0
    if n < 8:
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    end = n - n % 8
    while i < end:
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@_jit
def _pairwise(a: FloatArray, lo: int, n: int) -> float:  # pragma: no cover - compiled
    """numpy's ``pairwise_sum`` of ``a[lo:lo + n]`` (numpy/_core/src/umath/loops_utils):
    above 128 values the sum of both halves (the first a multiple of 8), evaluated
    with a stack of its own (numba's cache breaks on recursive functions)."""
    if n <= _PAIRWISE_BLOCK:
        return _leaf(a, lo, n)
    starts = np.empty(64, np.int64)  # depth <= log2(n / 128) + 1
    sizes = np.empty(64, np.int64)
    left_done = np.zeros(64, np.bool_)
    left = np.empty(64)
    depth = 0
    starts[0], sizes[0] = lo, n
    while True:
        size = sizes[depth]
        if size > _PAIRWISE_BLOCK:  # descend into the left half
            half = size // 2
            half -= half % 8
            left_done[depth] = False
            depth += 1
            starts[depth], sizes[depth] = starts[depth - 1], half
            continue
        value = _leaf(a, starts[depth], size)
        while True:  # hand the value up until a right half is still to do
            depth -= 1
            if depth < 0:
                return value
            if left_done[depth]:
                value = left[depth] + value
                continue
            left[depth], left_done[depth] = value, True
            half = sizes[depth] // 2
            half -= half % 8
            starts[depth + 1] = starts[depth] + half
            sizes[depth + 1] = sizes[depth] - half
            left_done[depth + 1] = False
            depth += 1
            break


@_jit
def _block_sums(raw: FloatArray, heads: IntArray, mode: int, offset_g: FloatArray,
                scale: FloatArray, temperature_scale: FloatArray, temperature_mean_c: float,
                shift: bool) -> FloatArray:  # pragma: no cover - compiled
    """Per block (``heads``: each block's first sample in ``raw``'s columns) the sums of
    mode 0 (pass 1), 1 (pass 2) or 2 (pass 2 with extremes); see the module constants."""
    n = raw.shape[1]
    nb = heads.size
    width = STILL_COLUMNS if mode == 0 else (FEATURE_COLUMNS if mode == 1 else EXTREME_COLUMNS)
    out = np.empty((nb, width))
    longest = 0
    for b in range(nb):
        end = heads[b + 1] if b + 1 < nb else n
        longest = max(longest, end - heads[b])
    rows = STILL_COLUMNS if mode == 0 else FEATURE_COLUMNS
    scratch = np.empty((rows, max(longest, 1)))
    for b in range(nb):
        lo = heads[b]
        m = (heads[b + 1] if b + 1 < nb else n) - lo
        if mode == 0:  # the raw rows are summed where they are; only squares are new
            for j in range(3):
                source = raw[j]
                row = scratch[3 + j]
                for i in range(m):
                    v = source[lo + i]
                    row[i] = v * v
                out[b, j] = source[lo] + _pairwise(source, lo + 1, m - 1)
                out[b, 3 + j] = row[0] + _pairwise(row, 1, m - 1)
            out[b, 6] = raw[3, lo] + _pairwise(raw[3], lo + 1, m - 1)
            continue
        for i in range(m):
            t = raw[3, lo + i]
            for j in range(3):
                v = raw[j, lo + i]
                if mode != 0:
                    v = (v + offset_g[j]) * scale[j]
                    if shift:
                        v = v + (t - temperature_mean_c) * temperature_scale[j]
                scratch[j, i] = v
                scratch[3 + j, i] = v * v
            if mode == 0:
                scratch[6, i] = t
            else:
                e = math.sqrt((scratch[3, i] + scratch[4, i]) + scratch[5, i]) - 1.0
                scratch[6, i] = e if (e >= 0.0 or e != e) else 0.0  # np.maximum(e, 0)
                scratch[7, i] = t
        for j in range(rows):  # numpy.add.reduceat: the first value + pairwise of the rest
            out[b, j] = scratch[j, 0] + _pairwise(scratch[j], 1, m - 1)
        if mode == 2:
            for j in range(3):
                hi = scratch[j, 0]
                low = scratch[j, 0]
                for i in range(1, m):  # as np.maximum / np.minimum: NaN wins
                    v = scratch[j, i]
                    if hi == hi and (v > hi or v != v):
                        hi = v
                    if low == low and (v < low or v != v):
                        low = v
                out[b, 8 + j] = hi
                out[b, 11 + j] = low
    return out


def still_sums(raw: FloatArray, heads: IntArray) -> FloatArray:
    """Pass 1's sums per block (:data:`STILL_COLUMNS`) of ``raw`` (:data:`RAW_ROWS`)."""
    zero = np.zeros(3)
    sums: FloatArray = _block_sums(raw, heads, 0, zero, zero, zero, 0.0, False)
    return sums


def feature_sums(raw: FloatArray, heads: IntArray, offset_g: FloatArray, scale: FloatArray,
                 temperature_scale: FloatArray, temperature_mean_c: float, *,
                 shift: bool, extremes: bool) -> FloatArray:
    """Pass 2's sums per block (:data:`FEATURE_COLUMNS`, or :data:`EXTREME_COLUMNS` with
    ``extremes``) of the calibrated ``raw``; ``shift``: apply the temperature term."""
    sums: FloatArray = _block_sums(raw, heads, 2 if extremes else 1,
                                   np.ascontiguousarray(offset_g, dtype=np.float64),
                                   np.ascontiguousarray(scale, dtype=np.float64),
                                   np.ascontiguousarray(temperature_scale, dtype=np.float64),
                                   float(temperature_mean_c), bool(shift))
    return sums


def block_sums_numpy(raw: FloatArray, heads: IntArray, mode: int, offset_g: FloatArray,
                     scale: FloatArray, temperature_scale: FloatArray,
                     temperature_mean_c: float, shift: bool) -> FloatArray:
    """The plain numpy reference of the kernel: whole derived columns, one
    ``reduceat`` each (the passes' code before the kernel)."""
    n = raw.shape[1]
    if mode == 0:
        cols = np.empty((STILL_COLUMNS, n))
        cols[0:3] = raw[0:3]
        np.square(cols[0:3], out=cols[3:6])
        cols[6] = raw[3]
    else:
        cols = np.empty((EXTREME_COLUMNS if mode == 2 else FEATURE_COLUMNS, n))
        for j in range(3):
            row = cols[j]
            np.add(raw[j], offset_g[j], out=row)
            np.multiply(row, scale[j], out=row)
            if shift:
                row += (raw[3] - temperature_mean_c) * temperature_scale[j]
        if mode == 2:
            cols[8:11] = cols[0:3]
            cols[11:14] = cols[0:3]
        np.square(cols[0:3], out=cols[3:6])
        norm = cols[6]
        np.add(cols[3], cols[4], out=norm)
        norm += cols[5]
        np.sqrt(norm, out=norm)
        norm -= 1.0
        np.maximum(norm, 0.0, out=norm)
        cols[7] = raw[3]
    reducers: list[np.ufunc] = [np.add] * (FEATURE_COLUMNS if mode else STILL_COLUMNS)
    if mode == 2:
        reducers += [np.maximum] * 3 + [np.minimum] * 3
    out = np.empty((heads.size, cols.shape[0]))
    for j, reducer in enumerate(reducers):
        out[:, j] = reducer.reduceat(np.ascontiguousarray(cols[j]), heads)
    return out


@_jit
def peak_abs_g(accel_g: FloatArray) -> float:  # pragma: no cover - compiled
    """The largest |value| of an (n, 3) chunk (``np.max(np.abs(a))`` of finite samples,
    without its temporary), 0 for none."""
    peak = 0.0
    for i in range(accel_g.shape[0]):
        for j in range(accel_g.shape[1]):
            peak = max(peak, abs(accel_g[i, j]))
    return peak


@_jit
def count_clipped(accel_g: FloatArray, limit_g: float) -> int:  # pragma: no cover - compiled
    """Samples (rows) with any axis at or beyond ``±limit_g``."""
    hits = 0
    for i in range(accel_g.shape[0]):
        for j in range(accel_g.shape[1]):
            if accel_g[i, j] >= limit_g or accel_g[i, j] <= -limit_g:
                hits += 1
                break
    return hits


@_jit
def peak_and_rows_from(accel_g: FloatArray, floor_g: float
                       ) -> tuple[float, FloatArray]:  # pragma: no cover - compiled
    """The largest |value| of an (n, 3) chunk (0 for none), and each row's largest
    |value| of the rows where it is at least ``floor_g``, in one loop."""
    n = accel_g.shape[0]
    kept = np.empty(n)
    k = 0
    peak = 0.0
    for i in range(n):
        top = 0.0
        for j in range(accel_g.shape[1]):
            top = max(top, abs(accel_g[i, j]))
        peak = max(peak, top)
        kept[k] = top
        k += top >= floor_g
    return peak, kept[:k].copy()


def warm() -> None:
    """Load (or compile) the kernels for the argument types the passes use, on a few
    samples: a worker does it before its first task."""
    raw = np.zeros((RAW_ROWS, 4))
    heads = np.array([0, 2], dtype=np.int64)
    for rows in (raw, raw[:, :3]):  # a chunk's own rows, and a view after the carry
        still_sums(rows, heads)
        for extremes in (False, True):
            feature_sums(rows, heads, np.zeros(3), np.ones(3), np.zeros(3), 0.0,
                         shift=False, extremes=extremes)
    accel = np.zeros((4, 3))
    peak_abs_g(accel)
    count_clipped(accel, 1.0)
    peak_and_rows_from(accel, 1.0)
