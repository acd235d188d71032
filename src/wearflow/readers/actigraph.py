"""ActiGraph .gt3x (zip container) and .agdc (SQLite) files, through pygt3x.

pygt3x decodes the raw activity records and applies the device's calibration.
Its timestamps are the device's naive local clock; they are converted to UTC
with ``device_time_zone`` like every other device format (a differing zone in
the file's own header is flagged, ``header_tz``). Idle-sleep-mode periods,
when the device stopped sampling because it lay still, come back filled with
the last sample as ActiLife does; their count is flagged
(``idle_sleep_mode_samples=N``). The subject name stored in the header is
never read into wearflow: participant ids come from file names only.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
import zipfile
from io import BytesIO
from typing import Any

import numpy as np

from wearflow.errors import ReaderError, one_line
from wearflow.readers._common import finish, local_to_utc, zone_offset_s
from wearflow.recording import DeviceInfo, Recording

SQLITE_MAGIC = b"SQLite format 3\x00"
SUSPECT_BEFORE_S = 662688000.0  # 1991-01-01: the legacy NEO firmware's 1990 dates


def is_gt3x(data: bytes) -> bool:
    """A zip container holding ActiGraph's ``info.txt``."""
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            return "info.txt" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def is_agdc(data: bytes) -> bool:
    return data.startswith(SQLITE_MAGIC)


def read_actigraph(data: bytes, uri: str, *, device_time_zone: str = "UTC") -> Recording:
    """Decode an ActiGraph .gt3x or .agdc file (see the module docstring)."""
    suffix = ".agdc" if is_agdc(data) else ".gt3x"
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="wearflow-actigraph-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        frame, info = _decode(path, uri)
    finally:
        os.unlink(path)
    if frame.empty:
        raise ReaderError("the ActiGraph file holds no samples", subject=uri)
    local_s = frame.index.to_numpy(dtype=np.float64)
    accel = frame[["X", "Y", "Z"]].to_numpy(dtype=np.float64)
    time_s, flags = local_to_utc(local_s, device_time_zone, float(local_s[0]), uri)
    idle = int(frame["IdleSleepMode"].sum()) if "IdleSleepMode" in frame.columns else 0
    if idle:
        flags.append(f"idle_sleep_mode_samples={idle}")
    header_s = _offset_s(str(getattr(info, "timezone", "") or ""))
    if header_s is not None and header_s != zone_offset_s(device_time_zone, float(local_s[0]),
                                                          uri):
        sign, hours, minutes = "-" if header_s < 0 else "+", *divmod(abs(header_s) // 60, 60)
        flags.append(f"header_tz={sign}{hours:02d}:{minutes:02d}")
    if time_s[0] < SUSPECT_BEFORE_S:
        flags.append("start_date_suspect")  # legacy firmware writes 1990 dates
    rate = float(getattr(info, "sample_rate", 0) or 0) or _measured_rate(local_s)
    device = DeviceInfo(format="actigraph-" + suffix[1:],
                        serial=str(getattr(info, "serial_number", "") or "") or None,
                        model=str(getattr(info, "device_type", "") or "") or None,
                        firmware=str(getattr(info, "firmware", "") or "") or None)
    return finish(uri, time_s=time_s, accel_g=accel, temperature_c=None,
                  sampling_rate_hz=rate, device=device, flags=flags)


def _decode(path: str, uri: str) -> tuple[Any, Any]:
    try:
        from pygt3x.reader import FileReader

        # pygt3x prints short-second notices to stdout and raises pandas deprecation
        # warnings: neither is the user's concern
        with (warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()),
              FileReader(path) as reader):
            warnings.simplefilter("ignore")
            return reader.to_pandas(), reader.info
    except ReaderError:
        raise
    except Exception as exc:  # pygt3x raises many types on damaged files
        raise ReaderError(one_line(f"ActiGraph file cannot be decoded ({type(exc).__name__}: "
                                   f"{exc})"), subject=uri) from None


def _measured_rate(local_s: np.ndarray[Any, Any]) -> float:
    steps = np.diff(local_s)
    steps = steps[steps > 0]
    return float(1.0 / np.median(steps)) if steps.size else 0.0


def _offset_s(text: str) -> int | None:
    """'-05:00:00' / '02:00:00' -> seconds east of UTC; None when absent or unreadable."""
    if not text:
        return None
    sign = -1 if text.startswith("-") else 1
    parts = text.lstrip("+-").split(":")
    try:
        return sign * (int(parts[0]) * 3600 + int(parts[1] if len(parts) > 1 else 0) * 60)
    except ValueError:
        return None
