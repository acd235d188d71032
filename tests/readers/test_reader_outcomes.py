"""Defined outcomes for bad and odd sensor files: which flags, or which reason.

Each case says what ``read_recording`` does with one kind of real-world
defect, so that the outcome is a decision, not an accident. The reader sees
only bytes and a URI: the content decides the format, never the name.

Choices worth knowing:

* a start before 1990 or more than a day after now is a ReaderError, not a
  flag: a wrong clock puts every day and night of the recording on the wrong
  date, which no later stage can detect or undo, so the file must not yield
  biomarkers until a person has looked at it;
* a sampling rate outside 0.05 Hz .. 10 kHz is a ReaderError: slower is epoch
  data, faster is timestamps in the wrong unit;
* damaged rows and samples are dropped and counted in a flag, the rest is read.
"""

from __future__ import annotations

import gzip
import io
import re
import time
from collections.abc import Callable

import numpy as np
import pytest

from wearflow.demo.cwa_writer import write_cwa
from wearflow.errors import ReaderError
from wearflow.readers import _common, read_recording
from wearflow.recording import DeviceInfo, Recording

CWA = "cwa/ggirread_ax3_testfile.cwa"
BIN = "geneactiv_bin/skdh_gnactv_sample.bin"
BIN_ZONE = "America/New_York"  # the sample's own header zone: no header_tz flag
START = 1_700_000_000.0  # 2023-11-14T22:13:20Z
G = 9.80665


def csv_table(
    header: str = "time,x,y,z",
    n: int = 250,
    rate_hz: float = 25.0,
    start_s: float = START,
    accel: tuple[float, float, float] = (0.05, -0.1, 0.98),
) -> bytes:
    width = header.count(",")
    extra = [1.5, 7.0, 0.0][: max(width - 3, 0)]
    cells = [f"{v:.5f}" for v in (*accel, *extra)][:width]
    rows = [",".join([f"{start_s + i / rate_hz:.6f}", *cells]) for i in range(n)]
    return ("\n".join([header, *rows]) + "\n").encode()


def read(data: bytes, uri: str = "s3://study/raw/P1_L.csv", zone: str = "UTC") -> Recording:
    return read_recording(data, uri, device_time_zone=zone)


def refused(data: bytes, uri: str = "s3://study/raw/P1_L.csv", zone: str = "UTC") -> str:
    """The one-line reason the reader gives, after checking the error names the file."""
    with pytest.raises(ReaderError) as caught:
        read_recording(data, uri, device_time_zone=zone)
    error = caught.value
    assert error.subject == uri
    assert error.message.splitlines() == [error.message]
    assert not error.message.startswith("cannot decode"), error.message
    return str(error.message)


def edit_bin(data: bytes, key: bytes, value: bytes) -> bytes:
    """Set every ``key:`` line (header and pages) to ``value``."""
    return re.sub(re.escape(key) + rb":[^\r\n]*", key + b":" + value, data)


# ------------------------------------------------------------------------------ empty, random


@pytest.mark.parametrize("name", ["P1_L.cwa", "P1_L.bin", "P1_L.csv", "P1_L.cwa.gz"])
def test_empty_file_is_refused(name: str) -> None:
    assert refused(b"", name) == "file is empty"
    assert refused(gzip.compress(b""), name) == "file is empty"


@pytest.mark.parametrize("name", ["P1_L.cwa", "P1_L.bin", "P1_L.csv"])
def test_random_bytes_are_refused_whatever_the_name(name: str) -> None:
    data = np.random.default_rng(7).bytes(8192)
    assert refused(data, name) == (
        "unrecognised format: not Axivity .cwa, GENEActiv .bin, gzip or CSV text"
    )


# ---------------------------------------------------------------------------------- truncated


def test_cwa_cut_mid_block_keeps_the_whole_blocks(real_bytes: Callable[[str], bytes]) -> None:
    data = real_bytes(CWA)[: 1024 + 10 * 512 + 100]
    recording = read(data, "P1_L.cwa")
    assert recording.flags == ("partial_block_bytes_dropped=100",)
    assert recording.n_samples == 10 * 120


@pytest.mark.parametrize(
    ("size", "reason"),
    [(600, "truncated CWA header (600 of 1024 bytes)"),
     (1024, "CWA file has a header but no data blocks"),
     (1024 + 300, "CWA file has a header but no data blocks")],
)  # fmt: skip
def test_cwa_cut_in_the_header_or_first_block_is_refused(
    real_bytes: Callable[[str], bytes], size: int, reason: str
) -> None:
    assert refused(real_bytes(CWA)[:size], "P1_L.cwa") == reason


def test_bin_cut_mid_page_keeps_the_whole_pages(real_bytes: Callable[[str], bytes]) -> None:
    data = real_bytes(BIN)
    pages = [m.start() for m in re.finditer(b"Recorded Data", data)]
    assert len(pages) == 3
    recording = read(data[: pages[2] - 100], "P1_L.bin", zone=BIN_ZONE)  # in page 2's samples
    assert recording.flags == ("pages_missing=1", "incomplete_pages_dropped=1")
    assert recording.n_samples == 300


def test_bin_cut_in_the_header_is_refused(real_bytes: Callable[[str], bytes]) -> None:
    data = real_bytes(BIN)
    assert refused(data[:800], "P1_L.bin") == (
        "GENEActiv header is truncated (no 'Number of Pages')"
    )


def test_csv_cut_mid_row_drops_that_row() -> None:
    data = csv_table(n=250)
    cut = data[: len(data) - 12]  # the last row loses its z value and part of y
    recording = read(cut)
    assert recording.flags == ("rows_with_missing_values_dropped=1",)
    assert recording.n_samples == 249


def test_gzip_cut_short_reads_what_it_held() -> None:
    packed = gzip.compress(csv_table(n=5000), mtime=0)
    recording = read(packed[: len(packed) // 2], "P1_L.csv.gz")
    assert recording.flags[-1] == "gzip_truncated"
    # The cut lands mid-row: that row is dropped (or, cut within its time, trimmed).
    assert set(recording.flags[:-1]) <= {"rows_with_missing_values_dropped=1", "trimmed_samples=1"}
    assert 1000 < recording.n_samples < 5000


# ------------------------------------------------------------------------ content decides


@pytest.mark.parametrize(
    ("seed", "name", "device_format", "n_samples"),
    [(CWA, "P1_L.csv", "axivity-cwa", 17400), (CWA, "P1_L.bin", "axivity-cwa", 17400),
     (BIN, "P1_L.cwa", "geneactiv-bin", 900), (BIN, "P1_L.csv", "geneactiv-bin", 900),
     (None, "P1_L.cwa", "csv", 250), (None, "P1_L.bin", "csv", 250)],
)  # fmt: skip
def test_wrong_extension_is_read_by_content(
    real_bytes: Callable[[str], bytes],
    seed: str | None,
    name: str,
    device_format: str,
    n_samples: int,
) -> None:
    data = csv_table() if seed is None else real_bytes(seed)
    recording = read(data, name, zone=BIN_ZONE if seed == BIN else "UTC")
    assert recording.device.format == device_format
    assert recording.n_samples == n_samples
    assert recording.flags == ()


# --------------------------------------------------------------------------------- CSV columns


@pytest.mark.parametrize(
    ("header", "reason"),
    [("time,x,y", "CSV has no z column (found: time, x, y)"),
     ("x,y,z", "CSV has no time column (found: x, y, z)"),
     ("time,a,b,c", "CSV has no x, y or z column (found: time, a, b, c)"),
     ("a,b,c", "CSV has no time and x/y/z columns (found: a, b, c)")],
)  # fmt: skip
def test_csv_missing_columns_are_named(header: str, reason: str) -> None:
    assert refused(csv_table(header)) == reason


def test_csv_extra_columns_are_ignored() -> None:
    recording = read(csv_table("time,x,y,z,light,battery,button"))
    assert recording.flags == ()
    assert recording.accel_g.shape == (250, 3)
    np.testing.assert_allclose(recording.accel_g[0], [0.05, -0.1, 0.98])


@pytest.mark.parametrize(
    "header",
    ["timestamp,X,Y,Z", "Time,accel_x,accel_y,accel_z", "datetime,x (g),y (g),z (g)",
     "Timestamp,Accelerometer X,Accelerometer Y,Accelerometer Z", "t,ax,ay,az",
     "unix_time,acc_x,acc_y,acc_z"],
)  # fmt: skip
def test_csv_renamed_columns_are_recognised(header: str) -> None:
    recording = read(csv_table(header))
    assert recording.flags == ()
    np.testing.assert_allclose(recording.accel_g[-1], [0.05, -0.1, 0.98])


@pytest.mark.parametrize(
    "header", ["time,x_m/s^2,y_m/s^2,z_m/s^2", "time,X (m/s^2),Y (m/s^2),Z (m/s^2)", "time,x,y,z"]
)
def test_csv_in_m_s2_is_converted_and_flagged(header: str) -> None:
    # The unlabelled table is recognised by its magnitude near 9.8.
    recording = read(csv_table(header, accel=(0.49, -0.98, 9.6)))
    assert recording.flags == ("converted_m_s2_to_g",)
    np.testing.assert_allclose(recording.accel_g[0], np.array([0.49, -0.98, 9.6]) / G)


def test_csv_nan_and_empty_cells_drop_their_rows() -> None:
    lines = csv_table(n=250).decode().splitlines()
    lines[10] = lines[10].rsplit(",", 1)[0] + ",nan"
    lines[20] = lines[20].replace(",-0.10000,", ",,")
    lines[30] = lines[30].replace(",0.05000,", ",NaN,")
    lines[40] = lines[40].replace(",0.05000,", ",n/a,")
    recording = read(("\n".join(lines) + "\n").encode())
    assert recording.flags == ("rows_with_missing_values_dropped=4",)
    assert recording.n_samples == 246
    assert np.all(np.isfinite(recording.accel_g))


def test_non_finite_samples_from_any_reader_are_dropped_and_flagged() -> None:
    # CSV counts its own missing cells; this is the shared guarantee in finish().
    time_s = START + np.arange(10) / 25.0
    accel = np.tile([0.0, 0.0, 1.0], (10, 1))
    accel[3, 1], accel[7, 2] = np.inf, np.nan
    device = DeviceInfo("csv")
    recording = _common.finish(
        "x", time_s=time_s, accel_g=accel, temperature_c=None, sampling_rate_hz=25.0,
        device=device, flags=[],
    )  # fmt: skip
    assert recording.flags == ("non_finite_samples_dropped=2",)
    assert recording.n_samples == 8


# ------------------------------------------------------------------------------ time and rate


def test_non_monotonic_and_duplicate_timestamps_are_trimmed() -> None:
    lines = csv_table(n=100).decode().splitlines()
    header, rows = lines[0], lines[1:]
    rows[30], rows[31] = rows[31], rows[30]  # one step back: sample 30 arrives late
    rows.insert(11, rows[10])  # a repeated row
    recording = read(("\n".join([header, *rows]) + "\n").encode())
    assert recording.flags == ("trimmed_samples=2",)
    assert recording.n_samples == 99
    assert np.all(np.diff(recording.time_s) > 0)
    assert recording.sampling_rate_hz == pytest.approx(25.0)


RATE_REASON = (
    r"implausible sampling rate {} Hz \(raw accelerometry is 0\.05 Hz to 10000 Hz: "
    r"epoch data, or timestamps in the wrong unit\?\)"
)


@pytest.mark.parametrize(
    ("rate_hz", "shown"),
    [(0.001, r"0\.001"), (1e6, r"(1\.0\d*e\+06|9\d{5}\.?\d*)")],  # microsecond quantisation
    ids=["0.001Hz", "1MHz"],
)
def test_csv_implausible_sampling_rate_is_refused(rate_hz: float, shown: str) -> None:
    reason = refused(csv_table(n=50, rate_hz=rate_hz))
    assert re.fullmatch(RATE_REASON.format(shown), reason), reason


def test_bin_implausible_sampling_rate_is_refused(real_bytes: Callable[[str], bytes]) -> None:
    data = edit_bin(real_bytes(BIN), b"Measurement Frequency", b"0.001")
    assert refused(data, "P1_L.bin", zone=BIN_ZONE).startswith("implausible sampling rate 0.001 Hz")


@pytest.mark.parametrize(
    ("data", "reason"),
    [(csv_table(start_s=0.0),
      "recording starts before 1990 (1970-01-01T00:00:00Z): the device clock was not set"),
     (b"time,x,y,z\n1970-01-01T00:00:00.000Z,0,0,1\n1970-01-01T00:00:00.040Z,0,0,1\n",
      "recording starts before 1990 (1970-01-01T00:00:00Z): the device clock was not set")],
    ids=["csv-unix-0", "csv-iso-1970"],
)  # fmt: skip
def test_csv_start_in_1970_is_refused_as_an_unset_clock(data: bytes, reason: str) -> None:
    assert refused(data) == reason


def test_bin_start_in_1970_is_refused_as_an_unset_clock(
    real_bytes: Callable[[str], bytes],
) -> None:
    data = real_bytes(BIN).replace(b"2019-05-21 16:16:", b"1970-01-01 00:00:")
    assert refused(data, "P1_L.bin") == (
        "recording starts before 1990 (1970-01-01T00:00:44Z): the device clock was not set"
    )


def test_start_more_than_a_day_in_the_future_is_refused() -> None:
    start = time.time() + 2 * 86400
    reason = refused(csv_table(start_s=start))
    assert reason.startswith("recording starts more than a day in the future (")
    assert reason.endswith("): the device clock was set wrong")


def test_start_less_than_a_day_ahead_is_accepted() -> None:
    # A device clock set in a zone east of the reader's is hours ahead, not wrong.
    assert read(csv_table(start_s=time.time() + 12 * 3600)).flags == ()


def test_cwa_start_in_the_future_is_refused() -> None:
    time_s = 2_950_000_000.0 + np.arange(500) / 50.0  # 2063-06-25
    buffer = io.BytesIO()
    write_cwa(buffer, time_s, np.tile([0.0, 0.0, 1.0], (500, 1)), None, 50.0, serial=1)
    assert refused(buffer.getvalue(), "P1_L.cwa").startswith(
        "recording starts more than a day in the future (2063-06-25T"
    )


def test_bin_start_in_the_future_is_refused(real_bytes: Callable[[str], bytes]) -> None:
    data = real_bytes(BIN).replace(b"2019-05-21 16:16:", b"2099-05-21 16:16:")
    assert "more than a day in the future (2099-05-21T" in refused(data, "P1_L.bin")


# --------------------------------------------------------------------- never worn, huge claims


def test_flat_never_worn_csv_is_read_without_flags() -> None:
    recording = read(csv_table(n=25 * 600, accel=(0.0, 0.0, 1.0)))
    assert recording.flags == ()
    assert recording.n_samples == 15000
    assert np.ptp(recording.accel_g, axis=0).max() == 0.0


def test_flat_never_worn_cwa_is_read_without_flags() -> None:
    n = 50 * 3600
    time_s = START + np.arange(n) / 50.0
    buffer = io.BytesIO()
    write_cwa(buffer, time_s, np.tile([0.0, 0.0, 1.0], (n, 1)), np.full(n, 21.0), 50.0, serial=7)
    recording = read(buffer.getvalue(), "P1_L.cwa")
    assert recording.flags == ()
    assert recording.n_samples == n
    np.testing.assert_array_equal(recording.accel_g, np.tile([0.0, 0.0, 1.0], (n, 1)))


def test_bin_header_claiming_2_31_pages_reads_the_pages_present(
    real_bytes: Callable[[str], bytes],
) -> None:
    data = edit_bin(real_bytes(BIN), b"Number of Pages", b"2147483648")
    recording = read(data, "P1_L.bin", zone=BIN_ZONE)
    assert recording.flags == ("pages_missing=2147483645",)
    assert recording.n_samples == 900


def test_bin_header_page_count_beyond_2_32_is_flagged_not_listed(
    real_bytes: Callable[[str], bytes],
) -> None:
    data = edit_bin(real_bytes(BIN), b"Number of Pages", b"1" + b"0" * 40)
    assert read(data, "P1_L.bin", zone=BIN_ZONE).flags == ("page_count_implausible",)


def test_gzip_bomb_is_refused() -> None:
    bomb = gzip.compress(bytes(20_000_000), mtime=0)  # ratio about 1000
    reason = refused(bomb, "P1_L.cwa.gz")
    assert reason.startswith("decompressed size exceeds ")
    assert "gzip bomb" in reason
