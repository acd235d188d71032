"""GENEActiv .bin reader: agreement with SKDH, page-time handling and damaged pages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from wearflow.errors import ReaderError
from wearflow.readers import read_recording

# Largest |SKDH time - our time| per file. SKDH takes every page time literally;
# we fit one clock per run of pages (page times are quantised), so they differ by
# the quantisation where page times are inconsistent, and by 2.2 ms per page where
# SKDH uses the printed 66.7 Hz instead of the true 600/9 Hz.
SKDH_TIME_TOLERANCE_S = {
    "actfast_cmi_geneactiv.bin": 1e-6,
    "geneacore_100650Hz_file.bin": 1e-6,
    "geneacore_1008667Hz.bin": 0.503,  # 1-s page times alternate 4 s / 5 s steps
    "geneacore_20Hz_file.bin": 1e-6,
    "geneacore_667Hz.bin": 0.0023,
    "geneacore_Multi_page_reset_config_time.bin": 1e-6,
    "geneacore_Not_a_GENEActiv_bin_file.bin": 1e-6,
    "geneacore_Not_contiguous.bin": 1e-6,
    "geneacore_One_page_bin_file.bin": 1e-6,
    "ggir_history_TESTfile.bin": 1e-6,
    "skdh_gnactv_sample.bin": 0.501,  # first page time is 0.5 s before the others' clock
    "skdh_history_TestACH20200305-PKMA_back_048877.bin": 0.501,
    "wristpy_example_geneactiv.bin": 1e-6,
}


# SKDH warns when the header rate ("66.70 Hz", parsed as 66) differs from the page rate.
SKDH_RATE_WARNING = "ignore:Block fs is not the same as header fs:RuntimeWarning"


@pytest.mark.filterwarnings(SKDH_RATE_WARNING)
@pytest.mark.parametrize("name", sorted(SKDH_TIME_TOLERANCE_S))
def test_matches_skdh(
    real_bytes: Callable[[str], bytes], real_path: Callable[[str], Path], name: str
) -> None:
    from skdh.io import ReadBin

    relative = f"geneactiv_bin/{name}"
    ours = read_recording(real_bytes(relative), relative)
    theirs = ReadBin().predict(file=str(real_path(relative)), tz_name="UTC")
    np.testing.assert_allclose(ours.accel_g, theirs["accel"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours.temperature_c, theirs["temperature"])
    assert np.max(np.abs(theirs["time"] - ours.time_s)) <= SKDH_TIME_TOLERANCE_S[name]


@pytest.mark.filterwarnings(SKDH_RATE_WARNING)
def test_skdh_time_goes_backwards_where_ours_does_not(
    real_bytes: Callable[[str], bytes], real_path: Callable[[str], Path]
) -> None:
    from skdh.io import ReadBin

    relative = "geneactiv_bin/geneacore_1008667Hz.bin"
    theirs = ReadBin().predict(file=str(real_path(relative)), tz_name="UTC")
    assert np.count_nonzero(np.diff(theirs["time"]) <= 0) == 146
    ours = read_recording(real_bytes(relative), relative)
    np.testing.assert_allclose(np.diff(ours.time_s), 0.015, atol=1e-6)  # float64 at 1.7e9 s


def test_matches_skdh_expected_output(real_bytes: Callable[[str], bytes], real_dir: Path) -> None:
    ours = read_recording(real_bytes("geneactiv_bin/skdh_gnactv_sample.bin"), "gnactv")
    reference = np.load(real_dir / "expected/skdh_gnactv_data_expected.npz")
    np.testing.assert_allclose(ours.accel_g, reference["accel"], atol=5e-5)  # npz: 4 decimals
    np.testing.assert_array_equal(ours.temperature_c, reference["temperature"])
    difference = reference["time"] - ours.time_s
    assert np.all(difference[:300] == pytest.approx(-0.5))  # first page, see tolerance table
    assert np.all(np.abs(difference[300:]) < 1e-6)


def test_header_time_zone_agrees_with_the_device_zone(real_bytes: Callable[[str], bytes]) -> None:
    data = real_bytes("geneactiv_bin/skdh_gnactv_sample.bin")  # header: GMT -04:00, May
    recording = read_recording(data, "x", device_time_zone="America/New_York")
    assert recording.flags == ()
    start = datetime.fromtimestamp(recording.time_s[0], UTC)
    assert start.isoformat() == "2019-05-21T20:16:44+00:00"


def test_corrupt_page_in_the_middle_is_skipped(real_bytes: Callable[[str], bytes]) -> None:
    data = real_bytes("geneactiv_bin/skdh_gnactv_sample.bin")
    lines = data.split(b"\n")
    hex_rows = [i for i, line in enumerate(lines) if len(line.rstrip(b"\r")) == 3600]
    row = bytearray(lines[hex_rows[1]])
    row[100] = ord("G")
    lines[hex_rows[1]] = bytes(row)
    recording = read_recording(b"\n".join(lines), "x", device_time_zone="America/New_York")
    assert recording.n_samples == 600
    assert recording.flags == ("corrupt_pages_skipped=1", "gap_s=6.0")


def test_page_time_jumping_back_is_trimmed(real_bytes: Callable[[str], bytes]) -> None:
    data = real_bytes("geneactiv_bin/geneacore_20Hz_file.bin")  # 7 pages of 15 s
    text = data.replace(b"Page Time:2025-01-11 11:18:48:000", b"Page Time:2025-01-11 11:17:40:000")
    recording = read_recording(text, "x")
    # Page 6 is stamped 68 s early: it lies wholly before the end of page 5, so its
    # samples go, and page 7 (stamped on time) follows a 15 s hole.
    assert recording.flags == ("trimmed_samples=300", "gap_s=15.0")
    assert recording.n_samples == 1800
    assert np.all(np.diff(recording.time_s) > 0)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ((b"x gain:25522", b"x gain:0"), "calibration gain is zero"),
        ((b"y offset:-1129", b"y shift:-1129"), "header lacks y offset"),
        ((b"Page Time:", b"Page Tim3:"), r"no decodable data pages \(incomplete_pages_dropped=1"),
    ],
)
def test_bad_headers(
    real_bytes: Callable[[str], bytes], edit: tuple[bytes, bytes], message: str
) -> None:
    data = real_bytes("geneactiv_bin/skdh_gnactv_sample.bin").replace(*edit)
    with pytest.raises(ReaderError, match=message):
        read_recording(data, "x")
