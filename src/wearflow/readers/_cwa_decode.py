"""Decoding steps of the .cwa reader (see :mod:`wearflow.readers.cwa`)."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

from wearflow.readers import _cwa_format as fmt
from wearflow.readers import _cwa_kernels as kernels
from wearflow.readers._common import BoolArray
from wearflow.recording import DeviceInfo, FloatArray

IntArray = fmt.IntArray
Blocks = npt.NDArray[np.void]

MAX_ANCHOR_MISMATCH_S = 1.0
"""Consecutive blocks whose times disagree with their sample count by more start a segment."""

CONFIG_LOOKBACK_S = 60 * 86400.0
"""A header configuration time this far before the first sample is still trusted."""


def usable_blocks(
    blocks: Blocks, words: npt.NDArray[np.uint16]
) -> tuple[BoolArray, IntArray, list[str]]:
    """Mask of decodable blocks in the dominant format, their capacity, and flags."""
    good, erased, capacity = block_checks(blocks, words)
    flags = []
    if n_bad := int(np.count_nonzero(~good & ~erased)):
        flags.append(f"corrupt_blocks_skipped={n_bad}")
    if n_erased := int(np.count_nonzero(erased)):
        flags.append(f"erased_blocks_skipped={n_erased}")
    if np.any(good):
        # One file holds one configuration; a block in another format is not trusted.
        key = format_key(blocks)
        values, seen = np.unique(key[good], return_counts=True)
        dominant = values[np.argmax(seen)]
        other = good & (key != dominant)
        if n_other := int(np.count_nonzero(other)):
            flags.append(f"format_changed_blocks_skipped={n_other}")
        good &= ~other
    dominant_capacity = int(capacity[good][0]) if np.any(good) else 120
    return good, np.where(good, capacity, dominant_capacity), flags


def block_checks(
    blocks: Blocks, words: npt.NDArray[np.uint16]
) -> tuple[BoolArray, BoolArray, IntArray]:
    """Per block, on its own: decodable (whatever its format), erased, and its capacity."""
    axes = (blocks["axes_packing"] >> 4).astype(np.int64)
    packing = (blocks["axes_packing"] & 0x0F).astype(np.int64)
    capacity = np.where(packing == 0, 120, 480 // np.maximum(2 * axes, 1))
    is_data = (blocks["magic"] == fmt.DATA_MAGIC) & (blocks["length"] == fmt.DATA_PACKET_LENGTH)
    _, stamp_ok = fmt.unpack_timestamps(blocks["timestamp"].astype(np.int64))
    format_ok = ((axes == 3) & ((packing == 0) | (packing == 2))) | (
        ((axes == 6) | (axes == 9)) & (packing == 2)
    )
    count = blocks["sample_count"].astype(np.int64)
    checksum_ok, blank = kernels.word_checks(words)
    good = (
        is_data
        & checksum_ok
        & stamp_ok
        & format_ok
        & (blocks["rate_code"] != 0)
        & (count >= 1)
        & (count <= capacity)
    )
    erased = ~is_data & blank
    return good, erased, capacity


def word_checks_numpy(words: npt.NDArray[np.uint16]) -> tuple[BoolArray, BoolArray]:
    """The plain numpy reference of the compiled ``word_checks`` (the tests compare)."""
    return ((words.sum(axis=1, dtype=np.uint16) == 0),
            np.all(words == 0xFFFF, axis=1) | np.all(words == 0, axis=1))


def format_key(blocks: Blocks) -> IntArray:
    """The configuration a block was recorded in: rate code and axes/packing, one number."""
    return np.asarray(blocks["rate_code"].astype(np.int64) * 256 + blocks["axes_packing"],
                      dtype=np.int64)


def format_capacity(key: int) -> int:
    """Samples a block of configuration ``key`` (see :func:`format_key`) holds at most."""
    axes, packing = (key & 0xFF) >> 4, key & 0x0F
    return 120 if packing == 0 else 480 // max(2 * axes, 1)


def sample_times(
    blocks: Blocks, position: IntArray, starts: IntArray, counts: IntArray, freq: float
) -> tuple[FloatArray, int]:
    """Naive local time of every sample, and the number of segments."""
    anchor, stamp = block_anchors(blocks, starts, freq)
    breaks = segment_breaks(blocks["sequence_id"].astype(np.int64), position,
                            blocks["session_id"].astype(np.int64), stamp, anchor, freq)
    edges = np.concatenate(([0], np.flatnonzero(breaks) + 1, [len(blocks)]))

    slots = np.arange(int(counts.max()))
    in_block = slots[None, :] < counts[:, None]
    sample_pos = (starts[:, None] + slots[None, :])[in_block].astype(np.float64)
    sample_edges = np.concatenate(([0], np.cumsum(counts)))
    times = np.empty(sample_pos.shape, np.float64)
    for lo, hi in itertools.pairwise(edges):
        xp, fp = _monotonic_anchors(anchor[lo:hi].astype(np.float64), stamp[lo:hi])
        part = slice(sample_edges[lo], sample_edges[hi])
        times[part] = _interp_extrap(sample_pos[part], xp, fp, 1.0 / freq)
    return times, len(edges) - 1


def block_anchors(blocks: Blocks, starts: IntArray, freq: float) -> tuple[IntArray, FloatArray]:
    """Per block, the sample position its timestamp belongs to and that naive local time."""
    whole, _ = fmt.unpack_timestamps(blocks["timestamp"].astype(np.int64))
    stamp = whole.astype(np.float64)
    offset = blocks["timestamp_offset"].astype(np.int64)
    fractional = blocks["device_fractional"].astype(np.int64)
    has_fraction = (fractional & 0x8000) != 0
    frac16 = (fractional & 0x7FFF) << 1
    # cwa.h: with a fraction present the device shifted timestampOffset by the whole
    # samples the fraction accounts for (a shim for old readers); undo it.
    offset = offset + np.where(has_fraction, (frac16 * int(freq)) >> 16, 0)
    stamp = stamp + np.where(has_fraction, frac16 / 65536.0, 0.0)
    return starts + offset, stamp


def segment_breaks(sequence: IntArray, position: IntArray, session: IntArray,
                   stamp: FloatArray, anchor: IntArray, freq: float) -> BoolArray:
    """True between consecutive usable blocks that do not belong to one segment.

    A sequence number that does not advance with the block's place in the file,
    another session, or times that disagree with the sample count by more than
    ``MAX_ANCHOR_MISMATCH_S`` mean a logging restart or a spliced file.
    """
    expected = np.diff(anchor) / freq
    breaks: BoolArray = (
        (np.diff(sequence) != np.diff(position))
        | (np.diff(session) != 0)
        | (np.abs(np.diff(stamp) - expected) > MAX_ANCHOR_MISMATCH_S)
    )
    return breaks


def _monotonic_anchors(xp: FloatArray, fp: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Keep anchors increasing in both index and time (rarely needs the slow path)."""
    if np.all(np.diff(xp) > 0) and np.all(np.diff(fp) > 0):
        return xp, fp
    keep = [0]
    for i in range(1, len(xp)):
        if xp[i] > xp[keep[-1]] and fp[i] > fp[keep[-1]]:
            keep.append(i)
    return xp[keep], fp[keep]


def _interp_extrap(x: FloatArray, xp: FloatArray, fp: FloatArray, slope: float) -> FloatArray:
    """Linear interpolation that extends the end slopes beyond the first/last anchor."""
    first_slope = last_slope = slope
    if len(xp) >= 2:
        first_slope = (fp[1] - fp[0]) / (xp[1] - xp[0])
        last_slope = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    out = np.interp(x, xp, fp)
    before, after = x < xp[0], x > xp[-1]
    out[before] = fp[0] + (x[before] - xp[0]) * first_slope
    out[after] = fp[-1] + (x[after] - xp[-1]) * last_slope
    return out


def decode_accel(blocks: Blocks, counts: IntArray) -> FloatArray:
    """Acceleration in g for every sample of the (single-format) blocks."""
    payload = np.ascontiguousarray(blocks["payload"])
    axes = int(blocks["axes_packing"][0]) >> 4
    if int(blocks["axes_packing"][0]) & 0x0F == 0:
        packed = payload.view("<u4")
        exponent = (packed >> 30).astype(np.int32)
        fields = [((packed >> shift) & 0x3FF).astype(np.int32) for shift in (0, 10, 20)]
        raw = np.stack([((f ^ 0x200) - 0x200) << exponent for f in fields], axis=-1)
        scale = np.full(len(blocks), 1.0 / 256.0)  # packed values are always 1/256 g
    else:
        per_block = fmt.PAYLOAD_BYTES // (2 * axes)
        values = payload.view("<i2")[:, : per_block * axes].reshape(len(blocks), per_block, axes)
        raw = values[:, :, 0:3] if axes == 3 else values[:, :, 3:6]  # AX6 order: gyro, accel
        scale = 1.0 / np.left_shift(1, 8 + ((blocks["light_scale"] >> 13) & 0x07)).astype(float)
    accel = raw * scale[:, None, None]
    if np.all(counts == accel.shape[1]):  # full blocks: no mask, no second copy
        return np.asarray(accel.reshape(-1, 3), dtype=np.float64)
    in_block = np.arange(accel.shape[1])[None, :] < counts[:, None]
    return np.asarray(accel[in_block], dtype=np.float64)


def device_info(data: bytes) -> DeviceInfo:
    hardware = data[4]
    device_id = int.from_bytes(data[5:7], "little")
    upper = int.from_bytes(data[11:13], "little")
    if upper != 0xFFFF:
        device_id |= upper << 16
    if hardware in fmt.AX3_HARDWARE_TYPES:
        model = "AX3"
    elif hardware == fmt.AX6_HARDWARE_TYPE:
        model = "AX6"
    else:
        model = f"hardware-0x{hardware:02x}"
    return DeviceInfo("axivity-cwa", serial=str(device_id), model=model, firmware=str(data[41]))


def config_time(data: bytes, first_local_s: float) -> float:
    """Header 'last change' (configuration) time when plausible, else the first sample."""
    packed = np.asarray([int.from_bytes(data[37:41], "little")], np.int64)
    local, valid = fmt.unpack_timestamps(packed)
    config = float(local[0])
    if valid[0] and 0.0 <= first_local_s - config <= CONFIG_LOOKBACK_S:
        return config
    return first_local_s
