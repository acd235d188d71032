"""Regression snapshots: every real .cwa, .bin and raw CSV file and what it decodes to.

Each file is pinned by the sha256 prefix from the data MANIFEST, so a changed
input fails loudly instead of silently moving the expected numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from reader_helpers import sha12
from wearflow.errors import ReaderError
from wearflow.readers import read_recording


class Ok(NamedTuple):
    n_samples: int
    sampling_rate_hz: float
    start_utc: str  # first sample, millisecond precision, default device_time_zone UTC
    flags: tuple[str, ...]
    duration_s: float
    has_temperature: bool


class Err(NamedTuple):
    reason: str


UNRECOGNISED = Err("unrecognised format: not Axivity .cwa, GENEActiv .bin, gzip or CSV text")

CASES: list[tuple[str, str, Ok | Err]] = [
    # ActiLife RAW exports (10-line header; no timestamps except the IMU file).
    ("actigraph_raw_csv/activityindex_sample_GT3X+.csv.gz", "3eeff00185f7",
     Ok(1006080, 30.0, "2012-06-27T10:54:00.000", (), 33535.97, False)),
    ("actigraph_raw_csv/agread_TestID_LeftWrist_RAW.csv", "7ecfba0a57ab",
     Ok(24000, 80.0, "2015-11-12T15:45:00.000", (), 299.99, False)),
    ("actigraph_raw_csv/agread_example-IMU.csv", "3aa058559ab1",
     Ok(2300, 100.0, "2019-02-14T08:58:00.000", (), 22.99, True)),
    ("actigraph_raw_csv/agread_exampleRAW.csv", "75ce07187625",
     Ok(10800, 90.0, "2019-02-14T08:58:00.000", (), 119.99, False)),
    # Axivity.
    ("cwa/casson_example.cwa", "6de70712e5bc",
     Ok(218400, 100.0, "2019-05-31T16:00:06.315", (), 2163.20, True)),
    ("cwa/ggirread_ax3_testfile.cwa", "602c8169484f",
     Ok(17400, 100.0, "2019-02-26T10:55:05.985", (), 176.00, True)),
    ("cwa/ggirread_ax3_testfile_corrupt_blocks_0_13_14_142_143_144.cwa", "24cd187dd277",
     Ok(16680, 100.0, "2019-02-26T10:55:07.199", ("corrupt_blocks_skipped=6", "gap_s=2.4"),
        171.14, True)),
    ("cwa/ggirread_ax6_testfile.cwa", "c7dca51d8c35",
     Ok(11320, 100.0, "2019-12-23T21:04:06.695", (), 114.29, True)),
    ("cwa/openmovement_example-610-steps.cwa", "86cfffde13b6",
     Ok(71400, 100.0, "2012-03-27T11:14:57.494", (), 724.73, True)),
    ("cwa/skdh_ax3_sample.cwa", "2804b81ac165",
     Ok(58800, 200.0, "2020-02-12T09:03:37.472", (), 298.11, True)),
    ("cwa/skdh_ax6_sample.cwa", "3196d627a738",
     Ok(10360, 100.0, "2019-10-29T09:03:06.301", (), 105.27, True)),
    ("cwa/stepcount_tiny-sample.cwa.gz", "b49ace733e10",
     Ok(1021800, 100.0, "2023-06-08T12:21:04.477", ("segments=2", "gap_s=242.6"), 10709.46,
        True)),
    # Legacy GENEA is a different binary container.
    ("genea_bin/ggirread_genea_testfile.bin", "47bbae899a33",
     Err("legacy GENEA (2010) binary format is not supported")),
    # GENEActiv (header zone flags appear because the default device zone is UTC).
    ("geneactiv_bin/actfast_cmi_geneactiv.bin", "f711ac2cb171",
     Ok(6000, 60.0, "2024-04-30T15:13:30.000", ("header_tz=-05:00",), 99.98, True)),
    ("geneactiv_bin/geneacore_100650Hz_file.bin", "5cd7858712e9",
     Ok(46200, 50.0, "2023-06-16T12:02:10.000", ("header_tz=+01:00",), 923.98, True)),
    ("geneactiv_bin/geneacore_1008667Hz.bin", "81f4b38bd4ff",
     Ok(87900, 600.0 / 9, "2023-06-16T13:37:11.000", ("header_tz=+01:00",), 1318.48, True)),
    ("geneactiv_bin/geneacore_20Hz_file.bin", "5870080fb7ee",
     Ok(2100, 20.0, "2025-01-11T11:17:33.000", (), 104.95, True)),
    ("geneactiv_bin/geneacore_667Hz.bin", "8667d745345e",
     Ok(4200, 600.0 / 9, "2025-01-11T10:03:05.500", (), 62.98, True)),
    ("geneactiv_bin/geneacore_Incomplete_bin_file.bin", "f8320fd73305",
     Ok(2700, 10.0, "2021-04-26T07:00:00.500",
        ("incomplete_pages_dropped=1", "header_tz=+01:00"), 269.90, True)),
    ("geneactiv_bin/geneacore_Multi_page_reset_config_time.bin", "4b8b734e9426",
     Ok(2700, 10.0, "2021-04-26T07:00:00.500", ("header_tz=+01:00",), 269.90, True)),
    ("geneactiv_bin/geneacore_Not_a_GENEActiv_bin_file.bin", "65376cac4bc5",
     Ok(5700, 100.0, "2024-09-18T10:14:17.000",
        ("device_type=Activinsights_Band", "header_tz=+01:00"), 56.99, True)),
    ("geneactiv_bin/geneacore_Not_contiguous.bin", "6fdbe8367831",
     Ok(2700, 10.0, "2021-04-26T07:00:00.500", ("header_tz=+01:00", "gap_s=36000.1"),
        36269.90, True)),
    ("geneactiv_bin/geneacore_One_page_bin_file.bin", "d00e236d793b",
     Ok(300, 100.0, "2024-09-18T10:14:17.000", ("header_tz=+01:00",), 2.99, True)),
    ("geneactiv_bin/geneacore_One_page_reset_config_time.bin", "7a3654bb0c64",
     Ok(300, 100.0, "2024-09-18T10:14:17.000", ("header_tz=+01:00",), 2.99, True)),
    ("geneactiv_bin/geneacore_Short_header.bin", "098db0f530c9",
     Err("GENEActiv header is truncated (no 'Number of Pages')")),
    ("geneactiv_bin/geneacore_Zero_data_pages.bin", "a5ef66a3ecb4",
     Err("no data pages (header says 0)")),
    ("geneactiv_bin/ggir_history_TESTfile.bin", "8838d431b2ec",
     Ok(31200, 100.0, "2012-05-23T16:47:50.000", ("header_tz=+01:00",), 311.99, True)),
    ("geneactiv_bin/ggirread_GENEActiv_testfile.bin", "d43da6d611f4",
     Ok(4800, 600.0 / 7, "2013-05-30T10:12:54.500",
        ("pages_missing=222031", "incomplete_pages_dropped=1", "header_tz=+01:00"), 55.99,
        True)),
    ("geneactiv_bin/skdh_gnactv_sample.bin", "cbd8549b352f",
     Ok(900, 50.0, "2019-05-21T16:16:44.000", ("header_tz=-04:00",), 17.98, True)),
    ("geneactiv_bin/skdh_history_TestACH20200305-PKMA_back_048877.bin", "935f7ccd8655",
     Ok(6600, 50.0, "2020-03-05T14:27:43.000", ("header_tz=-05:00",), 131.98, True)),
    ("geneactiv_bin/wristpy_example_geneactiv.bin", "bc69df963c48",
     Ok(27300, 60.0, "2025-03-17T12:37:33.000", ("header_tz=-05:00",), 454.98, True)),
    # Generic CSV (ms timestamps at 80 Hz: 12/13 ms steps).
    ("generic_csv/oxwar_nhanes_like_sample_80Hz.csv.gz", "7141d3c74196",
     Ok(359999, 80.0, "2000-01-07T12:30:00.000", (), 4499.98, False)),
    # Parmay Matrix .BIN files are not a supported format.
    ("matrix_bin/ggirread_mtx_100Hz_acc_HR_temp.BIN", "59e7f488bad7", UNRECOGNISED),
    ("matrix_bin/ggirread_mtx_12.5Hz_acc.BIN", "e61dd0bd0bb2", UNRECOGNISED),
    ("matrix_bin/ggirread_mtx_12.5Hz_acc_gyro.BIN", "fa3ce977646c", UNRECOGNISED),
    ("matrix_bin/ggirread_mtx_25Hz_acc_HR.BIN", "308a1cd34a93", UNRECOGNISED),
    ("matrix_bin/ggirread_mtx_corrupted.bin", "a239f3c75c17", UNRECOGNISED),
    ("matrix_bin/ggirread_mtx_corrupted_full.bin", "0e2e0ccaf183", UNRECOGNISED),
]  # fmt: skip


@pytest.mark.parametrize(("relative", "sha", "expected"), CASES, ids=[c[0] for c in CASES])
def test_real_file(
    real_bytes: Callable[[str], bytes], relative: str, sha: str, expected: Ok | Err
) -> None:
    data = real_bytes(relative)
    assert sha12(data) == sha, "input changed: update the MANIFEST and this snapshot"
    if isinstance(expected, Err):
        with pytest.raises(ReaderError) as caught:
            read_recording(data, relative)
        assert caught.value.message == expected.reason
        assert caught.value.subject == relative
        return
    recording = read_recording(data, relative)
    start = datetime.fromtimestamp(recording.time_s[0], UTC).replace(tzinfo=None)
    assert recording.n_samples == expected.n_samples
    assert recording.sampling_rate_hz == pytest.approx(expected.sampling_rate_hz, rel=1e-9)
    assert start.isoformat(timespec="milliseconds") == expected.start_utc
    assert recording.flags == expected.flags
    assert recording.duration_s == pytest.approx(expected.duration_s, abs=0.01)
    assert (recording.temperature_c is not None) == expected.has_temperature
    # The invariants every reader promises, beyond Recording.validate.
    assert np.all(np.diff(recording.time_s) > 0)
    assert np.all(np.isfinite(recording.accel_g))
    assert recording.accel_g.dtype == np.float64 and recording.time_s.dtype == np.float64
    assert float(np.median(np.linalg.norm(recording.accel_g, axis=1))) < 2.5


def test_every_real_sensor_file_is_covered(real_dir: Path) -> None:
    root = real_dir
    folders = ("cwa", "geneactiv_bin", "genea_bin", "matrix_bin", "generic_csv",
               "actigraph_raw_csv")  # fmt: skip
    present = {str(p.relative_to(root)) for f in folders for p in (root / f).iterdir()}
    assert present == {case[0] for case in CASES}
