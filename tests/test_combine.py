"""Several recordings of one wrist -> one, in time order, nothing counted twice."""

from __future__ import annotations

import numpy as np
import pytest

from wearflow.combine import combine_recordings
from wearflow.errors import DataError
from wearflow.recording import DeviceInfo, Recording

T0 = 1_780_000_000.0


def _rec(start_s: float, seconds: float, rate_hz: float = 10.0,
         temperature: bool = True) -> Recording:
    t = T0 + start_s + np.arange(int(seconds * rate_hz)) / rate_hz
    return Recording(time_s=t, accel_g=np.tile([0.0, 0.0, 1.0], (t.size, 1)),
                     sampling_rate_hz=rate_hz, device=DeviceInfo(format="test"),
                     temperature_c=np.full(t.size, 30.0) if temperature else None)


def test_overlap_inside_and_gap_are_handled_and_flagged() -> None:
    a, inside, later = _rec(0, 100), _rec(20, 30), _rec(90, 110)  # a ends at 99.9 s
    gap = _rec(300, 10)
    combined, parts = combine_recordings([later, gap, inside, a],
                                         ["f:///c", "f:///d", "f:///b", "f:///a"])
    t = combined.time_s
    assert np.all(np.diff(t) > 0)  # one strictly increasing time line
    assert t[0] == a.time_s[0] and t[-1] == gap.time_s[-1]
    assert t.size == 1000 + 1000 + 100  # a, later after a's end, gap: inside adds nothing
    assert "recordings_combined=4" in combined.flags
    assert "recording_inside_another:b" in combined.flags
    assert any(f.startswith("overlap_trimmed_s=9.9:c") for f in combined.flags)
    assert any(f.startswith("gap_between_recordings_s=100.1:d") for f in combined.flags)
    assert [p.uri for p in parts] == ["f:///a", "f:///b", "f:///c", "f:///d"]
    assert [p.samples_used for p in parts] == [1000, 0, 1000, 100]
    assert combined.temperature_c is not None and combined.temperature_c.size == t.size


def test_temperature_missing_in_one_recording_is_dropped_and_said() -> None:
    combined, _ = combine_recordings([_rec(0, 10), _rec(20, 10, temperature=False)],
                                     ["f:///a", "f:///b"])
    assert combined.temperature_c is None
    assert "temperature_dropped:not in every recording" in combined.flags


def test_different_rates_are_refused_naming_the_files() -> None:
    with pytest.raises(DataError, match=r"10 Hz in a, 25 Hz in b") as info:
        combine_recordings([_rec(0, 10), _rec(20, 10, rate_hz=25.0)], ["f:///a", "f:///b"])
    assert info.value.subject == "f:///a"
