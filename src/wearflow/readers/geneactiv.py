"""GENEActiv .bin reader.

A .bin file is text: a header of ``key:value`` lines (calibration gains and
offsets, measurement frequency, number of pages), then pages of ten lines,
``Recorded Data`` ... ``Page Time`` ... ``Temperature`` ... ``Measurement
Frequency`` and one line of 3600 hex digits: 300 samples of 12 digits
(12-bit two's-complement x, y, z; 10-bit light, button and a reserved bit).
Calibrated g = (raw * 100 - offset) / gain.

Page times are quantised (to 0.5 s or 1 s, depending on firmware), so taking
each page time literally makes pages overlap or leave holes. Instead every
contiguous run of pages gets one linear clock, ``t = c + sample / rate``,
with ``c`` the median of what the page times imply; a page time that breaks
the run by more than ``RUN_BREAK_S`` starts a new run (flagged as a gap).
"""

from __future__ import annotations

import binascii
import itertools
import math
import re

import numpy as np
import numpy.typing as npt

from wearflow.errors import ReaderError
from wearflow.readers._common import (
    MAX_SAMPLING_RATE_HZ,
    MIN_SAMPLING_RATE_HZ,
    check_sampling_rate,
    finish,
    local_to_utc,
    zone_offset_s,
)
from wearflow.recording import DeviceInfo, FloatArray, Recording

SAMPLES_PER_PAGE = 300
HEX_PER_PAGE = 3600
RUN_BREAK_S = 2.0
"""Page times may be quantised to 1 s; a larger disagreement is a real clock jump."""
LONG_RUN_S = 3600.0
"""Runs this long estimate their rate from the page times (quantisation averages out)."""
MAX_RATE_DEVIATION = 0.002
RESIDUAL_FLAG_S = 2.0
CONFIG_LOOKBACK_S = 60 * 86400.0
MAX_FLAG_VALUE_CHARS = 40
MAX_DECLARED_PAGES = 2**32
"""A page count beyond this is a corrupt header field, not a count (flagged, not listed)."""

IntArray = npt.NDArray[np.int64]

_REQUIRED = ("x gain", "x offset", "y gain", "y offset", "z gain", "z offset")
_ZONE = re.compile(r"GMT\s*([+-])?(\d{1,2}):(\d{2})")
_CONFIG_STAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_PAGE_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{1,3}")


def read_geneactiv(data: bytes, uri: str, *, device_time_zone: str = "UTC") -> Recording:
    """Decode a GENEActiv (or same-container Activinsights) .bin file.

    Parameters
    ----------
    data
        The whole (already decompressed) file.
    uri
        Where the bytes came from; named in every error.
    device_time_zone
        IANA zone the device clock was set in.

    Returns
    -------
    Recording
        Validated recording with per-page temperature.

    Raises
    ------
    ReaderError
        For a short header, no data pages, or no decodable page.
    """
    lines = data.split(b"\n")
    starts = [i for i, line in enumerate(lines) if is_page_start(line)]
    header, flags, gain, offset = header_facts(
        lines[: starts[0] if starts else len(lines)], len(starts), uri)
    ordinal, page_local, temps, freqs, packed, page_flags = _parse_pages(lines, starts, uri)
    flags += page_flags
    accel = _calibrate(packed, gain, offset)

    local_s, residual = _page_clock(ordinal, page_local, freqs)
    if residual > RESIDUAL_FLAG_S:
        flags.append(f"page_time_residual_s={residual:.1f}")
    reference = _reference_time(header.get("Config Time", ""), float(page_local[0]))
    time_s, tz_flags = local_to_utc(local_s, device_time_zone, reference, uri)
    flags += tz_flags + _header_zone_flag(header, device_time_zone, reference, uri)
    return finish(
        uri,
        time_s=time_s,
        accel_g=accel,
        temperature_c=np.repeat(temps, SAMPLES_PER_PAGE),
        sampling_rate_hz=_true_rate(float(freqs[0])),
        device=device_info(header),
        flags=flags,
    )


def is_page_start(line: bytes) -> bool:
    return line.startswith(b"Recorded Data") and line.rstrip(b"\r") == b"Recorded Data"


def header_facts(header_lines: list[bytes], n_pages: int, uri: str
                 ) -> tuple[dict[str, str], list[str], list[float], list[float]]:
    """The header's values, its flags, calibration gains and offsets; or why it is refused.

    ``n_pages`` counts every page start in the file, decodable or not.
    """
    header = _parse_header(header_lines)
    if "Number of Pages" not in header:
        raise ReaderError("GENEActiv header is truncated (no 'Number of Pages')", subject=uri)
    missing = [key for key in (*_REQUIRED, "Measurement Frequency") if key not in header]
    if missing:
        raise ReaderError(f"GENEActiv header lacks {', '.join(missing)}", subject=uri)
    declared = _number(header["Number of Pages"], uri)
    if not n_pages:
        raise ReaderError(f"no data pages (header says {declared:g})", subject=uri)
    flags = []
    if declared > MAX_DECLARED_PAGES:
        flags.append("page_count_implausible")
    elif declared > n_pages:
        flags.append(f"pages_missing={int(declared) - n_pages}")
    device_type = header.get("Device Type", "")
    if device_type != "GENEActiv":
        label = re.sub(r"[^A-Za-z0-9.+-]+", "_", device_type)[:MAX_FLAG_VALUE_CHARS]
        flags.append(f"device_type={label or 'unknown'}")

    gain = [_number(header[f"{axis} gain"], uri) for axis in "xyz"]
    offset = [_number(header[f"{axis} offset"], uri) for axis in "xyz"]
    if 0.0 in gain:
        raise ReaderError("GENEActiv calibration gain is zero", subject=uri)
    return header, flags, gain, offset


def device_info(header: dict[str, str]) -> DeviceInfo:
    device_type = header.get("Device Type", "")
    model = f"{device_type} {header.get('Device Model', '')}".strip()
    return DeviceInfo(
        "geneactiv-bin",
        serial=header.get("Device Unique Serial Code") or None,
        model=model or None,
        firmware=header.get("Device Firmware Version") or None,
    )


def _parse_header(lines: list[bytes]) -> dict[str, str]:
    header: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.decode("latin-1").rstrip("\r").partition(":")
        if sep:
            header.setdefault(key.strip(), value.replace("\x00", "").strip())
    return header


def _number(text: str, uri: str) -> float:
    match = re.match(r"\s*[-+]?\d+(\.\d*)?", text)
    if match is None:
        raise ReaderError(f"GENEActiv header value {text[:40]!r} is not a number", subject=uri)
    value = float(match.group())
    if not math.isfinite(value):
        raise ReaderError(f"GENEActiv header value {text[:40]!r} is out of range", subject=uri)
    return value


def _parse_pages(
    lines: list[bytes], starts: list[int], uri: str
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray, npt.NDArray[np.uint8], list[str]]:
    """Page ordinals, naive page times, temperatures, frequencies and packed samples."""
    ordinals, stamps, temps, freqs = [], [], [], []
    hexes: list[memoryview] = []
    incomplete = corrupt = 0
    implausible_rates: list[float] = []
    for k, i in enumerate(starts):
        fields = page_fields(lines[i:i + 10])
        if fields is None:
            if k == len(starts) - 1:
                incomplete += 1
            else:
                corrupt += 1
            continue
        stamp, temp, freq, hex_line = fields
        if not MIN_SAMPLING_RATE_HZ <= freq <= MAX_SAMPLING_RATE_HZ:
            implausible_rates.append(freq)
            corrupt += 1
            continue
        ordinals.append(k)
        stamps.append(stamp)
        temps.append(temp)
        freqs.append(freq)
        hexes.append(hex_line)
    packed, page_ok = _unhex(hexes)
    local, time_ok = _page_seconds(stamps)
    page_ok &= time_ok
    corrupt += int(np.count_nonzero(~page_ok))
    flags = [f"incomplete_pages_dropped={incomplete}"] if incomplete else []
    if corrupt:
        flags.append(f"corrupt_pages_skipped={corrupt}")
    if not np.any(page_ok):
        if implausible_rates:  # the clearer reason when pages agree on a rate nobody records at
            check_sampling_rate(implausible_rates[0], uri)
        raise ReaderError(f"no decodable data pages ({', '.join(flags)})", subject=uri)
    return (
        np.asarray(ordinals, np.int64)[page_ok],
        local[page_ok],
        np.asarray(temps, np.float64)[page_ok],
        np.asarray(freqs, np.float64)[page_ok],
        packed[page_ok],
        flags,
    )


def page_fields(page: list[bytes]) -> tuple[str, float, float, memoryview] | None:
    """Page time (ISO-like), temperature, frequency and hex line of the page whose 10 lines
    (fewer at the end of the file) are ``page``; None when they do not parse."""
    try:
        hex_line = memoryview(page[9])[:HEX_PER_PAGE]  # no copy; drops a "\r"
        if len(hex_line) != HEX_PER_PAGE or len(page[9].rstrip(b"\r")) != HEX_PER_PAGE:
            raise ValueError("short page")
        stamp = page[3].removeprefix(b"Page Time:").decode("ascii").strip()
        day, clock = stamp.split(" ")
        temp = float(page[5].removeprefix(b"Temperature:"))
        freq = float(page[8].removeprefix(b"Measurement Frequency:"))
        if not (freq > 0 and math.isfinite(freq)):
            raise ValueError("bad frequency")
    except (ValueError, UnicodeDecodeError, IndexError):
        return None
    return f"{day}T{clock[:8]}.{clock[9:12] or '0'}", temp, freq, hex_line


def _unhex(hexes: list[memoryview]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """(pages, 1800) bytes from the hex lines, and which pages decoded."""
    size = HEX_PER_PAGE // 2
    packed = bytearray(len(hexes) * size)
    ok = np.ones(len(hexes), dtype=bool)
    for row, line in enumerate(hexes):
        try:
            packed[row * size : (row + 1) * size] = binascii.a2b_hex(line)
        except binascii.Error:
            ok[row] = False
    return np.frombuffer(packed, np.uint8).reshape(len(hexes), size), ok


def _calibrate(packed: npt.NDArray[np.uint8], gain: list[float], offset: list[float]) -> FloatArray:
    """g from 6-byte samples: 12-bit two's-complement x, y, z then light and flags.

    Read bytes (0, 1), (1, 2) and (3, 4) as big-endian int16: x and z sit in the
    top 12 bits (an arithmetic shift by 4 sign-extends them), y in the low 12.
    """
    buffer = np.ascontiguousarray(packed)
    n = buffer.size // 6
    accel = np.empty((n, 3), dtype=np.float64)
    column = np.empty(n, dtype=np.float64)
    for axis, (start, low_bits) in enumerate(((0, False), (1, True), (3, False))):
        word = np.ndarray((n,), dtype=">i2", buffer=buffer, offset=start, strides=(6,))
        raw = word.astype(np.int16)
        signed = (raw << 4) >> 4 if low_bits else raw >> 4
        np.multiply(signed, 100.0 / gain[axis], out=column)
        column -= offset[axis] / gain[axis]
        accel[:, axis] = column
    return accel


def _page_seconds(stamps: list[str]) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Naive seconds since 1970 for ISO-like page times; invalid ones are masked."""
    # Only the page-time shape is parsed: NumPy would also take (and warn about) zones.
    well_formed = all(_PAGE_STAMP.fullmatch(stamp) for stamp in stamps)
    try:
        if not well_formed:
            raise ValueError("a page time is malformed")
        parsed = np.array(stamps, dtype="datetime64[ms]")
        ok = np.ones(len(stamps), dtype=bool)
    except ValueError:
        values, flags = [], []
        for stamp in stamps:
            try:
                if not _PAGE_STAMP.fullmatch(stamp):
                    raise ValueError(stamp)
                values.append(np.datetime64(stamp, "ms"))
                flags.append(True)
            except ValueError:
                values.append(np.datetime64(0, "ms"))
                flags.append(False)
        parsed, ok = np.array(values, dtype="datetime64[ms]"), np.array(flags, dtype=bool)
    return parsed.astype(np.int64) / 1000.0, ok


def _true_rate(freq: float) -> float:
    # GENEActiv rates are 600/n Hz but the file prints them rounded (66.7, 85.7):
    # over a week 66.7 instead of 66.667 Hz would drift by 5 minutes.
    divisor = round(600.0 / freq)
    if divisor == 0:  # above 1200 Hz: not a GENEActiv rate; finish() judges it
        return freq
    snapped = 600.0 / divisor
    return snapped if abs(snapped - freq) / freq < 1e-3 else freq


def _page_clock(
    ordinal: IntArray, page_local: FloatArray, freqs: FloatArray
) -> tuple[FloatArray, float]:
    """Sample times (naive local seconds) and the largest page-time residual."""
    edges, run_start, run_rate, residual = page_runs(ordinal, page_local, freqs)
    times = np.empty((len(ordinal), SAMPLES_PER_PAGE))
    for r, (lo, hi) in enumerate(itertools.pairwise(edges)):
        times[lo:hi] = page_times(ordinal[lo:hi], run_start[r], run_rate[r])
    return times.ravel(), residual


def page_runs(
    ordinal: IntArray, page_local: FloatArray, freqs: FloatArray
) -> tuple[IntArray, list[float], list[float], float]:
    """Runs of contiguous pages (edges into the pages), each run's clock (start, rate),
    and the largest page-time residual."""
    rates = np.array([_true_rate(f) for f in freqs])
    first_sample = ordinal * SAMPLES_PER_PAGE
    expected = np.diff(first_sample) / rates[:-1]
    breaks = (np.diff(rates) != 0) | (np.abs(np.diff(page_local) - expected) > RUN_BREAK_S)
    edges = np.concatenate(([0], np.flatnonzero(breaks) + 1, [len(ordinal)]))
    residual = 0.0
    starts, run_rates = [], []
    for lo, hi in itertools.pairwise(edges):
        index, stamp, rate = first_sample[lo:hi], page_local[lo:hi], rates[lo]
        if stamp[-1] - stamp[0] >= LONG_RUN_S:
            fitted = 1.0 / np.polyfit(index.astype(np.float64), stamp, 1)[0]
            if abs(fitted / rate - 1.0) <= MAX_RATE_DEVIATION:
                rate = fitted
        start = float(np.median(stamp - index / rate))
        residual = max(residual, float(np.max(np.abs(stamp - start - index / rate))))
        starts.append(start)
        run_rates.append(rate)
    return edges, starts, run_rates, residual


def page_times(ordinal: IntArray, start: float, rate: float) -> FloatArray:
    """(pages, 300) naive local sample times of pages of one run."""
    index = ordinal * SAMPLES_PER_PAGE
    within = np.arange(SAMPLES_PER_PAGE)
    times: FloatArray = start + (index[:, None] + within[None, :]) / rate
    return times


def _reference_time(config_time: str, first_local_s: float) -> float:
    """Configuration time when plausible (not a reset clock), else the first page."""
    stamp = config_time.strip()
    if _CONFIG_STAMP.match(stamp):
        try:
            config = float(np.datetime64(stamp[:10] + "T" + stamp[11:19], "s").astype(np.int64))
        except ValueError:
            return first_local_s
        if 0.0 <= first_local_s - config <= CONFIG_LOOKBACK_S:
            return config
    return first_local_s


def _header_zone_flag(header: dict[str, str], zone: str, reference: float, uri: str) -> list[str]:
    """Flag the header's own UTC offset when it disagrees with ``device_time_zone``."""
    match = _ZONE.search(header.get("Time Zone", ""))
    if match is None:
        return []
    sign = -1.0 if match.group(1) == "-" else 1.0
    stated = sign * (int(match.group(2)) * 3600 + int(match.group(3)) * 60)
    if stated == zone_offset_s(zone, reference, uri):
        return []
    return [f"header_tz={match.group(1) or '+'}{int(match.group(2)):02d}:{match.group(3)}"]
