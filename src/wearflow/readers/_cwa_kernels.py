"""Compiled steps of the streaming .cwa decode, equal to the numpy steps to the bit.

The streaming reader (:mod:`wearflow.readers._cwa_stream`) decodes every block of a
file twice per task (one pass each of the wrist solution's two). Its per-sample
steps in numpy -- each sample's position in the file's sample count, its
acceleration from the packed or int16 payload (``_cwa_decode.decode_accel``),
its time from the block anchors (``numpy.interp``) -- made a temporary array per
step and most of the reader's CPU. Here each is one loop. The whole-file reader
keeps the numpy steps, which are the references: the tests compare both on
generated blocks of every layout and, through the streaming-against-whole-file
test, on every real recording.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from wearflow._jit import jit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ByteArray = npt.NDArray[np.uint8]

PACKED_SCALE_G = 1.0 / 256.0  # packed values are always 1/256 g


@jit
def _positions(counts: IntArray, starts: IntArray) -> FloatArray:  # pragma: no cover
    """Each sample's position: its block's start plus its slot, as float64."""
    positions = np.empty(counts.sum())
    k = 0
    for b in range(counts.size):
        for s in range(counts[b]):
            positions[k + s] = float(starts[b] + s)
        k += counts[b]
    return positions


@jit
def unpack_packed(words: npt.NDArray[np.uint32], counts: IntArray, starts: IntArray
                  ) -> tuple[FloatArray, FloatArray]:
    """Positions and (n, 3) acceleration in g of packed blocks: per sample one
    little-endian 32-bit word, three 10-bit signed fields and a shared exponent,
    1/256 g per count (``words``: (blocks, 120))."""  # pragma: no cover
    positions = _positions(counts, starts)
    accel = np.empty((positions.size, 3))
    k = 0
    for b in range(counts.size):
        for s in range(counts[b]):
            word = words[b, s]
            exponent = np.int32(word >> 30)
            for j in range(3):
                field = np.int32((word >> (10 * j)) & 0x3FF)
                accel[k, j] = float(((field ^ 0x200) - 0x200) << exponent) * PACKED_SCALE_G
            k += 1
    return positions, accel


@jit
def unpack_int16(values: npt.NDArray[np.int16], counts: IntArray, starts: IntArray,
                 axes: int, scale_g: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Positions and (n, 3) acceleration in g of int16 blocks (``values``: (blocks,
    240)): ``axes`` values per sample (3, 6 or 9; the accelerometer's after the
    gyroscope's), each block's g per count in ``scale_g``."""  # pragma: no cover
    positions = _positions(counts, starts)
    accel = np.empty((positions.size, 3))
    first = 0 if axes == 3 else 3
    k = 0
    for b in range(counts.size):
        scale = scale_g[b]
        for s in range(counts[b]):
            o = s * axes + first
            for j in range(3):
                accel[k, j] = float(values[b, o + j]) * scale
            k += 1
    return positions, accel


@jit
def interp(x: FloatArray, xp: FloatArray, fp: FloatArray) -> FloatArray:
    """``numpy.interp(x, xp, fp)`` for ascending ``x`` (numpy's compiled_base.c:
    the end values outside ``xp``, ``fp[j]`` on an anchor, else the slope of the
    interval times the distance from its left anchor, plus its value)."""  # pragma: no cover
    out = np.empty(x.size)
    m = xp.size
    j = 0
    slope_j, slope = -1, 0.0  # the interval whose slope is computed (one division each)
    for i in range(x.size):
        v = x[i]
        if v != v:
            out[i] = v
            continue
        if v < xp[0]:
            out[i] = fp[0]
            continue
        if v >= xp[m - 1]:
            out[i] = fp[m - 1]
            continue
        while xp[j + 1] <= v:  # x ascends: the interval only moves right
            j += 1
        while xp[j] > v:  # (in case it does not)
            j -= 1
        if xp[j] == v:
            out[i] = fp[j]
            continue
        if j != slope_j:
            slope_j, slope = j, (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
        res = slope * (v - xp[j]) + fp[j]
        if res != res:
            res = slope * (v - xp[j + 1]) + fp[j + 1]
            if res != res and fp[j] == fp[j + 1]:
                res = fp[j]
        out[i] = res
    return out


@jit
def word_checks(words: npt.NDArray[np.uint16]) -> tuple[npt.NDArray[np.bool_],
                                                        npt.NDArray[np.bool_]]:
    """Per block of 256 little-endian words: whether they sum to 0 modulo 2^16 (the
    checksum holds), and whether all are 0xFFFF or all 0 (erased flash)."""  # pragma: no cover
    n = words.shape[0]
    checksum_ok = np.empty(n, np.bool_)
    blank = np.empty(n, np.bool_)
    for b in range(n):
        total, all_bits, any_bits = 0, 0xFFFF, 0
        for w in range(words.shape[1]):
            value = int(words[b, w])
            total += value
            all_bits &= value
            any_bits |= value
        checksum_ok[b] = (total & 0xFFFF) == 0
        blank[b] = all_bits == 0xFFFF or any_bits == 0
    return checksum_ok, blank


def warm() -> None:
    """Load (or compile) the kernels for the argument types the decode uses (blocks
    read from ``bytes`` are read-only arrays): a worker does it before its first task."""
    payload = np.zeros((1, 480), np.uint8)
    counts, starts = np.ones(1, np.int64), np.zeros(1, np.int64)
    unpack_packed(payload.view("<u4"), counts, starts)
    unpack_int16(payload.view("<i2"), counts, starts, 3, np.ones(1))
    word_checks(np.frombuffer(bytes(512), "<u2").reshape(1, 256))
    interp(np.zeros(2), np.arange(2.0), np.arange(2.0))
