"""An AX3 .cwa writer, for synthetic data: the demo study and tests.

Outside the product on purpose: wearflow reads sensor files, it never writes
them. The format's layout (block dtype, packed timestamps, rate codes) comes
from :mod:`wearflow.readers._cwa_format`, the same description the reader uses.
"""

from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from wearflow.errors import ReaderError
from wearflow.readers import _cwa_format as fmt
from wearflow.readers._common import zone_offset_s
from wearflow.recording import FloatArray

__all__ = ["write_cwa"]

Blocks = npt.NDArray[np.void]

WRITE_RANGE_G = 8
WRITE_SAMPLES_PER_BLOCK = 80  # unpacked int16 x/y/z: 480 payload bytes / 6
WRITE_UNITS_PER_G = 256  # cwa.h: unpacked AX3 values are 1/256 g (scale bits 0)
CWA_FIRST_S = 946684800.0  # 2000-01-01: packed years count from 2000 in 6 bits
CWA_END_S = 2966371200.0  # 2064-01-01


def write_cwa(
    path_or_fileobj: str | os.PathLike[str] | BinaryIO,
    time_s: FloatArray,
    accel_g: FloatArray,
    temperature_c: FloatArray | None,
    sampling_rate_hz: float,
    *,
    serial: int,
    device_time_zone: str = "UTC",
) -> None:
    """Write an AX3 .cwa file (unpacked int16 blocks, +-8 g, 1/256 g units).

    Parameters
    ----------
    path_or_fileobj
        Destination path or a binary file object.
    time_s
        Strictly increasing UTC seconds, one per sample.
    accel_g
        (n, 3) acceleration in g; values beyond +-8 g are clipped like the device does.
    temperature_c
        (n,) temperature, or None (stored as "no reading").
    sampling_rate_hz
        A rate the AX3 can encode: 3200 / 2**k Hz (6.25 ... 3200).
    serial
        Device id, 0 .. 2**32 - 1.
    device_time_zone
        IANA zone the simulated device clock is set in (one offset, as a real clock).

    Raises
    ------
    ValueError
        For inconsistent shapes, non-increasing or non-finite values, or an
        unsupported rate.

    Notes
    -----
    Each block holds 80 samples and stamps its first sample with a whole
    second, a 15-bit fraction and the backwards-compatible offset shim of
    cwa.h. A time gap longer than two sample periods starts a new block, so
    gaps survive the round trip (SKDH 0.17, which ignores per-block sample
    counts, reads such short blocks padded with zeros).
    """
    time_s, accel_g, temps, code = _checked(time_s, accel_g, temperature_c, sampling_rate_hz,
                                            serial)
    n = time_s.shape[0]
    steps = np.diff(time_s)
    try:
        local = time_s + zone_offset_s(device_time_zone, float(time_s[0]), "write_cwa")
    except ReaderError as exc:
        raise ValueError(exc.message) from exc
    if local[0] < CWA_FIRST_S or local[-1] >= CWA_END_S:
        raise ValueError("an AX3 clock covers the years 2000 to 2063 only")
    run_starts = np.concatenate(([0], np.flatnonzero(steps > 2.0 / sampling_rate_hz) + 1))
    run_ends = np.append(run_starts[1:], n)
    per = WRITE_SAMPLES_PER_BLOCK
    run_blocks = -(-(run_ends - run_starts) // per)  # ceiling division
    block_base = np.cumsum(run_blocks) - run_blocks
    first = np.concatenate(
        [np.arange(lo, hi, per) for lo, hi in zip(run_starts, run_ends, strict=True)]
    )
    counts = np.minimum(np.repeat(run_ends, run_blocks) - first, per)

    blocks = _blocks(local, first, counts, code, temps, accel_g, run_starts, run_ends,
                     block_base, sampling_rate_hz)
    content = _header_block(serial, code, int(np.floor(local[0]))) + blocks.tobytes()
    if isinstance(path_or_fileobj, str | os.PathLike):
        with open(path_or_fileobj, "wb") as handle:
            handle.write(content)
    else:
        path_or_fileobj.write(content)


def _checked(time_s: FloatArray, accel_g: FloatArray, temperature_c: FloatArray | None,
             sampling_rate_hz: float, serial: int
             ) -> tuple[FloatArray, FloatArray, FloatArray | None, int]:
    """:func:`write_cwa`'s arguments as float arrays, and the AX3 rate code; or why not."""
    time_s = np.asarray(time_s, dtype=np.float64)
    accel_g = np.asarray(accel_g, dtype=np.float64)
    n = time_s.shape[0]
    code = fmt.rate_code_for(sampling_rate_hz, WRITE_RANGE_G)
    if code is None:
        raise ValueError(f"an AX3 cannot record at {sampling_rate_hz} Hz (3200/2**k only)")
    if time_s.ndim != 1 or n == 0 or accel_g.shape != (n, 3):
        raise ValueError("time_s must be (n,) and accel_g (n, 3) with n > 0")
    if not (np.all(np.isfinite(time_s)) and np.all(np.isfinite(accel_g))):
        raise ValueError("time_s and accel_g must be finite")
    if not np.all(np.diff(time_s) > 0):
        raise ValueError("time_s must be strictly increasing")
    if not 0 <= serial < 2**32:
        raise ValueError("serial must fit in 32 bits")
    temps = None if temperature_c is None else np.asarray(temperature_c, dtype=np.float64)
    if temps is not None and (temps.shape != (n,) or not np.all(np.isfinite(temps))):
        raise ValueError("temperature_c must be finite with shape (n,)")
    return time_s, accel_g, temps, code


def _blocks(local: FloatArray, first: npt.NDArray[np.int64], counts: npt.NDArray[np.int64],
            code: int, temps: FloatArray | None, accel_g: FloatArray,
            run_starts: npt.NDArray[np.int64], run_ends: npt.NDArray[np.int64],
            block_base: npt.NDArray[np.int64], sampling_rate_hz: float) -> Blocks:
    """The data blocks: stamps, header fields, temperature, samples and checksums."""
    per = WRITE_SAMPLES_PER_BLOCK
    n_blocks = len(first)
    blocks = np.zeros(n_blocks, dtype=fmt.BLOCK_DTYPE)
    _stamp_blocks(blocks, local[first], sampling_rate_hz)
    blocks["magic"] = fmt.DATA_MAGIC
    blocks["length"] = fmt.DATA_PACKET_LENGTH
    blocks["session_id"] = 1
    blocks["sequence_id"] = np.arange(n_blocks)
    blocks["events"][block_base] = 1  # b0: logging (re)started
    blocks["battery"] = 0xB4
    blocks["rate_code"] = code
    blocks["axes_packing"] = 0x32
    blocks["sample_count"] = counts
    if temps is not None:
        raw = np.rint((temps[first] - fmt.TEMPERATURE_OFFSET) / fmt.TEMPERATURE_SCALE)
        blocks["temperature"] = np.clip(raw, 1, 1023)
    limit = WRITE_RANGE_G * WRITE_UNITS_PER_G
    values = np.rint(accel_g * WRITE_UNITS_PER_G)
    np.clip(values, -limit, limit - 1, out=values)
    payload = np.zeros((n_blocks * per, 3), dtype="<i2")
    for lo, hi, base in zip(run_starts, run_ends, block_base, strict=True):
        payload[base * per : base * per + hi - lo] = values[lo:hi]
    blocks["payload"] = payload.reshape(n_blocks, -1).view(np.uint8)
    words = blocks.view("<u2").reshape(n_blocks, 256)
    blocks["checksum"] = (-words[:, :255].sum(axis=1, dtype=np.uint16)).astype(np.uint16)
    return blocks


def _stamp_blocks(blocks: Blocks, first_local: FloatArray, freq: float) -> None:
    """Whole second, 15-bit fraction and shimmed offset for each block's first sample."""
    whole = np.floor(first_local)
    # Round the fraction up so that readers ignoring it (the shim) land on the right
    # whole sample when samples sit on a whole-second grid; costs < 31 us.
    fraction = np.ceil((first_local - whole) * 32768.0 - 1e-6).astype(np.int64)
    fraction = np.clip(fraction, 0, 32768)
    carry = fraction == 32768
    whole, fraction = whole + carry, np.where(carry, 0, fraction)
    blocks["timestamp"] = fmt.pack_timestamps(whole.astype(np.int64))
    blocks["device_fractional"] = 0x8000 | fraction
    blocks["timestamp_offset"] = -(((fraction << 1) * int(freq)) >> 16)


def _header_block(serial: int, rate_code: int, config_local: int) -> bytes:
    header = bytearray(b"\xff" * fmt.HEADER_SIZE)
    header[0:2] = fmt.HEADER_MAGIC
    header[2:4] = (fmt.HEADER_SIZE - 4).to_bytes(2, "little")
    header[4] = 0x17  # AX3
    header[5:7] = (serial & 0xFFFF).to_bytes(2, "little")
    header[7:11] = (1).to_bytes(4, "little")  # session id, as in the data blocks
    header[11:13] = (serial >> 16).to_bytes(2, "little")
    header[13:17] = (0).to_bytes(4, "little")  # logging start: always
    header[21:25] = (0).to_bytes(4, "little")  # capacity: unlimited
    header[26] = 0  # do not flash the LED
    header[35] = 0x00  # accelerometer only
    header[36] = rate_code
    packed = fmt.pack_timestamps(np.asarray([config_local], np.int64))
    header[37:41] = int(packed[0]).to_bytes(4, "little")  # last change = configuration
    header[41] = 45  # firmware revision of recent AX3 devices
    header[64:512] = b" " * 448  # empty annotation text
    return bytes(header)
