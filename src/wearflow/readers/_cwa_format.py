"""Layout of Axivity .cwa files, shared by the reader and the writer.

Source: Open Movement ``Docs/ax3/cwa.h`` and ``ax3-auxiliary.md``. All values
are little-endian. A file is a 1024-byte "MD" header followed by 512-byte
"AX" data blocks; each data block carries its own timestamp, and the 16-bit
word sum of a whole block is zero.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

BLOCK_SIZE = 512
HEADER_SIZE = 1024
HEADER_MAGIC = b"MD"
DATA_MAGIC = 0x5841  # b"AX" read as a little-endian uint16
DATA_PACKET_LENGTH = 508
PAYLOAD_BYTES = 480
AX3_HARDWARE_TYPES = (0x00, 0x17, 0xFF)
AX6_HARDWARE_TYPE = 0x64

BLOCK_DTYPE = np.dtype(
    [
        ("magic", "<u2"),  # @0 "AX"
        ("length", "<u2"),  # @2 508
        ("device_fractional", "<u2"),  # @4 top bit set: 15-bit fraction of a second
        ("session_id", "<u4"),  # @6
        ("sequence_id", "<u4"),  # @10 block counter, reset when logging restarts
        ("timestamp", "<u4"),  # @14 packed local date-time, see unpack_timestamps
        ("light_scale", "<u2"),  # @18 AAAGGGLLLLLLLLLL: accel scale, gyro scale, light
        ("temperature", "<u2"),  # @20 bottom 10 bits, raw ADC
        ("events", "u1"),  # @22
        ("battery", "u1"),  # @23
        ("rate_code", "u1"),  # @24 frequency 3200/2^(15-low nibble), range 16>>(code>>6) g
        ("axes_packing", "u1"),  # @25 high nibble axes (3/6/9), low nibble 0=packed, 2=int16
        ("timestamp_offset", "<i2"),  # @26 sample index at which `timestamp` is valid
        ("sample_count", "<u2"),  # @28
        ("payload", "u1", (PAYLOAD_BYTES,)),  # @30
        ("checksum", "<u2"),  # @510
    ]
)

# Spec (cwa.h, ax3-auxiliary.md): the MCP9700 gives 0.5 V at 0 degC and 10 mV/degC,
# sampled by a 10-bit ADC over 3 V, hence degC = raw * 3/1024 * 100 - 50 = raw * 75/256 - 50.
# SKDH 0.17 uses (raw - 171) / 3.142, which reads 2.1-2.6 degC higher at room-to-skin
# temperatures; it has no derivation in the format documents, so we follow the spec.
TEMPERATURE_SCALE = 75.0 / 256.0
TEMPERATURE_OFFSET = -50.0


def rate_hz(rate_code: IntArray) -> npt.NDArray[np.float64]:
    """Sampling frequency encoded in a rate code (``3200 / 2**(15 - low nibble)``)."""
    return np.asarray(3200.0 / np.left_shift(1, 15 - (rate_code & 0x0F)), dtype=np.float64)


def rate_code_for(sampling_rate_hz: float, range_g: int) -> int | None:
    """Rate code for a frequency and range, or None when the device cannot encode it."""
    for nibble in range(16):
        if abs(3200.0 / (1 << (15 - nibble)) - sampling_rate_hz) < 1e-9:
            shift = {16: 0, 8: 1, 4: 2, 2: 3}.get(range_g)
            return None if shift is None else (shift << 6) | nibble
    return None


def _days_from_civil(year: IntArray, month: IntArray, day: IntArray) -> IntArray:
    # Proleptic Gregorian day number since 1970-01-01 (H. Hinnant's algorithm), vectorised.
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return np.asarray(era * 146097 + doe - 719468, dtype=np.int64)


def _civil_from_days(days: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def unpack_timestamps(packed: IntArray) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """Decode packed ``YYYYYYMM MMDDDDDh hhhhmmmm mmssssss`` values (years since 2000).

    Returns naive local seconds since 1970 and a validity mask (zero, all-ones
    and out-of-range fields are invalid).
    """
    year = ((packed >> 26) & 0x3F) + 2000
    month = (packed >> 22) & 0x0F
    day = (packed >> 17) & 0x1F
    hour = (packed >> 12) & 0x1F
    minute = (packed >> 6) & 0x3F
    second = packed & 0x3F
    valid = (
        (packed != 0)
        & (packed != 0xFFFFFFFF)
        & (month >= 1)
        & (month <= 12)
        & (day >= 1)
        & (day <= 31)
        & (hour < 24)
        & (minute < 60)
        & (second < 60)
    )
    days = _days_from_civil(year, np.clip(month, 1, 12), day)
    return days * 86400 + hour * 3600 + minute * 60 + second, valid


def pack_timestamps(local_s: IntArray) -> IntArray:
    """Encode whole naive local seconds (years 2000-2063) into packed timestamps."""
    days, rest = np.divmod(local_s, 86400)
    year, month, day = _civil_from_days(days)
    hour, rest = np.divmod(rest, 3600)
    minute, second = np.divmod(rest, 60)
    return (
        ((year - 2000) << 26) | (month << 22) | (day << 17) | (hour << 12) | (minute << 6) | second
    )
