"""ActiGraph .gt3x and .agdc through pygt3x: every real file in ../shared/data/real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wearflow.errors import ReaderError
from wearflow.readers import read_recording

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"

# name: (samples, rate Hz, first UTC time, flags that must be present)
CASES = {
    "gt3x/agread_example.gt3x": (16200, 90.0, "2019-02-14T08:58:00", ()),
    "gt3x/pygt3x_ISM_Disabled.gt3x": (9000, 30.0, "2021-03-19T15:57:00", ()),
    "gt3x/pygt3x_ISM_Enabled.gt3x": (9000, 30.0, "2021-03-19T15:57:00",
                                     ("idle_sleep_mode_samples=6810",)),
    "gt3x/pygt3x_neo.gt3x": (18004, 30.0, "1990-03-18T10:26:21", ("start_date_suspect",)),
    "gt3x/ggir_actigraph_testfile.gt3x": (53040, 30.0, "2020-08-26T10:09:00",
                                          ("header_tz=+02:00",)),
    "gt3x/readgt3x_TAS1H30182785_2019-09-17.gt3x": (215200, 100.0, "2019-09-17T18:40:00", ()),
    "gt3x/wristpy_example_actigraph_idle_sleep_mode.gt3x": (
        4590, 30.0, "2024-11-26T10:01:00", ("idle_sleep_mode_samples=720", "header_tz=-06:00")),
    "agdc/pygt3x_WRIST_rawLSB_032Hz_test.agdc": (1920, 32.0, "2017-11-01T11:45:00", ()),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_actigraph_files(name: str) -> None:
    n, rate, start, flags = CASES[name]
    path = REAL / name
    rec = read_recording(path.read_bytes(), str(path))
    assert rec.n_samples == n
    assert rec.sampling_rate_hz == rate
    assert np.datetime_as_string(np.datetime64(int(rec.time_s[0]), "s")) == start
    assert rec.device.format.startswith("actigraph-")
    assert rec.device.serial
    for flag in flags:
        assert flag in rec.flags, rec.flags
    assert np.all(np.abs(rec.accel_g) <= 8.0 + 1e-9)


def test_truncated_gt3x_is_a_reader_error() -> None:
    data = (REAL / "gt3x/agread_example.gt3x").read_bytes()
    with pytest.raises(ReaderError) as info:
        read_recording(data[: len(data) // 2], "x.gt3x")
    assert info.value.subject == "x.gt3x"
