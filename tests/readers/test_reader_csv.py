"""CSV reader: time formats, column names, units, ordering and ActiLife exports."""

from __future__ import annotations

import gzip
from collections.abc import Callable

import numpy as np
import pytest

from reader_helpers import ACTILIFE_HEADER
from wearflow.errors import ReaderError
from wearflow.readers import read_recording

START = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def table(header: str, times: list[str], rows: np.ndarray, sep: str = ",") -> bytes:
    lines = [header.replace(",", sep)]
    lines += [sep.join([t, *(f"{v:.6f}" for v in row)]) for t, row in zip(times, rows, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def accel(n: int, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(5)
    values = rng.normal(0.0, 0.2, (n, 3))
    values[:, 1] += 1.0
    return values * scale


def iso(seconds: np.ndarray, suffix: str = "Z", shift_h: float = 0.0) -> list[str]:
    stamps = (seconds + shift_h * 3600) * 1e6
    text = np.datetime_as_string(stamps.astype("datetime64[us]"), unit="ms")
    return [f"{t}{suffix}" for t in text]


N = 500
TIMES = START + np.arange(N) / 25.0


@pytest.mark.parametrize(
    ("header", "times", "zone"),
    [
        ("time,x,y,z", iso(TIMES), "UTC"),
        ("timestamp,X,Y,Z", iso(TIMES, "+02:00", shift_h=2), "UTC"),
        ("Time,accel_x,accel_y,accel_z", iso(TIMES, "", shift_h=1), "Europe/Berlin"),
        ("unix_time,Accelerometer X,Accelerometer Y,Accelerometer Z", list(map(str, TIMES)), "UTC"),
        ("time,ax,ay,az", [str(round(t * 1000)) for t in TIMES], "UTC"),
    ],
    ids=["iso-z", "iso-offset", "naive-in-zone", "unix-s", "unix-ms"],
)
def test_time_formats_and_column_names(header: str, times: list[str], zone: str) -> None:
    values = accel(N)
    recording = read_recording(table(header, times, values), "x.csv", device_time_zone=zone)
    assert recording.flags == ()
    assert recording.sampling_rate_hz == pytest.approx(25.0)
    np.testing.assert_allclose(recording.time_s, TIMES, atol=1e-3)
    np.testing.assert_allclose(recording.accel_g, values, atol=1e-6)
    assert recording.device.format == "csv"


def test_semicolons_temperature_and_gzip() -> None:
    values = np.column_stack([accel(N), np.full(N, 31.5)])
    data = table("timestamp;x;y;z;temperature_c", iso(TIMES), values, sep=";")
    recording = read_recording(gzip.compress(data), "x.csv.gz")
    assert recording.temperature_c is not None
    np.testing.assert_allclose(recording.temperature_c, 31.5)


@pytest.mark.parametrize(
    ("header", "scale", "flag"),
    [
        ("time,x_m/s^2,y_m/s^2,z_m/s^2", 9.80665, "converted_m_s2_to_g"),
        ("time,x (m/s^2),y (m/s^2),z (m/s^2)", 9.80665, "converted_m_s2_to_g"),
        ("time,X [m/s²],Y [m/s²],Z [m/s²]", 9.80665, "converted_m_s2_to_g"),
        ("time,x,y,z", 9.80665, "converted_m_s2_to_g"),  # found from |a| near 9.8
        ("time,x_mg,y_mg,z_mg", 1000.0, "converted_mg_to_g"),
    ],
)
def test_units(header: str, scale: float, flag: str) -> None:
    values = accel(N)
    recording = read_recording(table(header, iso(TIMES), values * scale), "x.csv")
    assert recording.flags == (flag,)
    np.testing.assert_allclose(recording.accel_g, values, atol=1e-6)


def test_unknown_units_are_rejected() -> None:
    with pytest.raises(ReaderError, match="not in g or m/s"):
        read_recording(table("time,x,y,z", iso(TIMES), accel(N, 4096.0)), "x.csv")


def test_non_increasing_and_missing_rows_are_dropped_in_file_order() -> None:
    times = TIMES.copy()
    times[100] = times[99]  # duplicate
    times[200:203] = times[150]  # clock stepped back for three rows
    values = accel(N)
    text = table("time,x,y,z", iso(times), values).decode().splitlines()
    text[301] = text[301].rsplit(",", 1)[0] + ","  # empty z on data row 300
    recording = read_recording("\n".join(text).encode(), "x.csv")
    assert recording.flags == ("rows_with_missing_values_dropped=1", "trimmed_samples=4")
    assert recording.n_samples == N - 5
    assert np.all(np.diff(recording.time_s) > 0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"a,b,c\n1,2,3\n", r"no time and x/y/z columns \(found: a, b, c\)"),
        (b"time,x,y,z\nyesterday,0,0,1\nnoon,0,0,1\n", "does not parse as ISO 8601"),
        (b"time,x,y,z\n2020-01-01T00:00:00Z,0,0,1\n", "at least two valid rows"),
        (b"time,x,y,z\n", "no data rows"),
        (b"time,x,y,z\n0,0,0,1\n1,0,0,1\n", "starts before 1990"),
        (b"time,x,y,z\n5,0,0,1\n5,0,0,1\n", "identical"),
        (b"time,x,y,z\n,0,0,1\n,0,0,1\n", "time column is empty"),
    ],
)
def test_bad_tables(data: bytes, message: str) -> None:
    with pytest.raises(ReaderError, match=message):
        read_recording(data, "x.csv")


def test_text_starting_like_a_cwa_header_is_still_csv() -> None:
    values = accel(N)
    rows = [
        f"7,{t},{x:.5f},{y:.5f},{z:.5f}" for t, (x, y, z) in zip(iso(TIMES), values, strict=True)
    ]
    recording = read_recording("\n".join(["MD_id,time,x,y,z", *rows]).encode(), "x.csv")
    assert recording.n_samples == N


def test_actilife_timestamps_in_another_format_fall_back_to_the_header_clock(
    real_bytes: Callable[[str], bytes],
) -> None:
    text = real_bytes("actigraph_raw_csv/agread_example-IMU.csv").decode()
    text = text.replace("2019-02-14T", "2/14/2019 ")
    recording = read_recording(text.encode(), "imu.csv")
    assert recording.n_samples == 2300 and recording.flags == ()
    assert recording.time_s[0] == 1550134680.0  # Start Date 2/14/2019, Start Time 08:58:00


def test_naive_times_across_dst_are_flagged() -> None:
    times = 1679792400.0 + np.arange(N) * 10.0  # 2023-03-26 01:00Z: Berlin springs forward
    data = table("time,x,y,z", iso(times, "", shift_h=1), accel(N))
    recording = read_recording(data, "x.csv", device_time_zone="Europe/Berlin")
    assert recording.flags == ("dst_change_not_applied",)
    np.testing.assert_allclose(recording.time_s, times, atol=1e-3)


def test_actilife_day_first_dates_without_column_names() -> None:
    header = ACTILIFE_HEADER
    body = "\n".join("0.1,0.2,0.97" for _ in range(90))
    recording = read_recording((header + body).encode(), "raw.csv", device_time_zone="UTC")
    assert recording.n_samples == 90 and recording.sampling_rate_hz == 30.0
    assert recording.time_s[0] == 1612339200.0  # 2021-02-03T08:00:00Z, day first
    assert recording.device.serial == "TAS0000" and recording.device.model == "ActiGraph GT3X+"
