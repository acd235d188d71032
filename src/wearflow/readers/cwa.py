"""Axivity AX3/AX6 .cwa: a vectorised reader.

The reader decodes every data block at once with NumPy. Sample times come
from the per-block timestamps: each block says which sample index its
(fractional) timestamp belongs to, and samples are interpolated linearly
between those anchors within a *segment* -- a run of blocks with the same
session, consecutive sequence numbers and self-consistent times. A logging
restart or spliced file therefore starts a new segment instead of producing
zero or backwards times.

The AX3 writer used for synthetic data lives outside the product, in
:mod:`wearflow.demo.cwa_writer`.
"""

from __future__ import annotations

import numpy as np

from wearflow.errors import ReaderError
from wearflow.readers import _cwa_decode as dec
from wearflow.readers import _cwa_format as fmt
from wearflow.readers._common import finish, local_to_utc
from wearflow.recording import Recording


def read_cwa(data: bytes, uri: str, *, device_time_zone: str = "UTC") -> Recording:
    """Decode an Axivity .cwa file (AX3 packed or unpacked, AX6 accelerometer part).

    Parameters
    ----------
    data
        The whole (already decompressed) file.
    uri
        Where the bytes came from; named in every error.
    device_time_zone
        IANA zone the device clock was set in; its offset at configuration time
        converts the naive block times to UTC.

    Returns
    -------
    Recording
        Validated recording; blocks with bad checksums are skipped and counted.

    Raises
    ------
    ReaderError
        When the header is missing or no data block can be used.
    """
    if len(data) < fmt.HEADER_SIZE:
        raise ReaderError(f"truncated CWA header ({len(data)} of 1024 bytes)", subject=uri)
    n_blocks, tail = divmod(len(data) - fmt.HEADER_SIZE, fmt.BLOCK_SIZE)
    if n_blocks == 0:
        raise ReaderError("CWA file has a header but no data blocks", subject=uri)
    flags = [f"partial_block_bytes_dropped={tail}"] if tail else []
    blocks = np.frombuffer(data, fmt.BLOCK_DTYPE, count=n_blocks, offset=fmt.HEADER_SIZE)
    words = np.frombuffer(data, "<u2", count=n_blocks * 256, offset=fmt.HEADER_SIZE)
    words = words.reshape(n_blocks, 256)

    valid, capacity, flags_blocks = dec.usable_blocks(blocks, words)
    flags += flags_blocks
    kept = np.flatnonzero(valid)
    if kept.size == 0:
        raise ReaderError(f"no usable CWA data blocks ({', '.join(flags_blocks)})", subject=uri)

    good = blocks if kept.size == n_blocks else blocks[kept]  # copy only when needed
    freq = float(fmt.rate_hz(np.asarray([good["rate_code"][0]], np.int64))[0])
    counts = good["sample_count"].astype(np.int64)
    # Sample positions count skipped blocks as full, so that a hole in the file
    # stays a hole in time instead of squeezing its neighbours together.
    per_block = np.where(valid, blocks["sample_count"], capacity).astype(np.int64)
    starts = (np.cumsum(per_block) - per_block)[kept]

    times, segments = dec.sample_times(good, kept, starts, counts, freq)
    if segments > 1:
        flags.append(f"segments={segments}")

    reference = dec.config_time(data, float(times[0]))
    time_s, tz_flags = local_to_utc(times, device_time_zone, reference, uri)
    raw_temp = (good["temperature"] & 0x3FF).astype(np.float64)
    temperature = None
    if np.any(raw_temp):  # spec formula, not SKDH's; see _cwa_format.TEMPERATURE_SCALE
        temp_c = raw_temp * fmt.TEMPERATURE_SCALE + fmt.TEMPERATURE_OFFSET
        temperature = np.repeat(temp_c, counts)
    return finish(
        uri,
        time_s=time_s,
        accel_g=dec.decode_accel(good, counts),
        temperature_c=temperature,
        sampling_rate_hz=freq,
        device=dec.device_info(data),
        flags=flags + tz_flags,
    )
