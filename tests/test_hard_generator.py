"""The hard generator (wearflow.demo.hard): its planted truth is consistent with its
arrays and deterministic for a seed."""

from __future__ import annotations

import numpy as np
import pytest

from wearflow.demo.hard import HardTruth, generate_hard_recording
from wearflow.errors import ConfigError, WearflowError
from wearflow.recording import Recording


@pytest.fixture(scope="module")
def hard() -> tuple[Recording, HardTruth]:
    return generate_hard_recording(seed=5, days=3.0, sampling_rate_hz=25.0)


def _inside(truth: HardTruth, intervals: tuple[tuple[float, float], ...]) -> None:
    assert list(intervals) == sorted(intervals)
    for a, b in intervals:
        assert truth.start_utc_s <= a < b <= truth.end_utc_s


def test_truth_lies_inside_the_recording(hard: tuple[Recording, HardTruth]) -> None:
    rec, truth = hard
    for name in ("sleep", "awakenings", "naps", "non_wear", "walking", "gaps"):
        _inside(truth, getattr(truth, name))
    assert rec.time_s[0] == truth.start_utc_s and rec.time_s[-1] < truth.end_utc_s
    assert 1 <= len(truth.gaps) <= 2 and len(truth.nights) >= 2
    assert sum(bool(n.non_wear) for n in truth.nights) <= 1
    for night in truth.nights:
        if not night.non_wear:  # awakenings under the night's non-wear are dropped
            assert 2 <= len(night.awakenings) <= 5
        for a, b in night.awakenings:
            assert night.onset_utc_s <= a < b <= night.wake_utc_s and 120 <= b - a <= 600
    day_non_wear_h = [(b - a) / 3600 for a, b in truth.non_wear
                      if not any(n.onset_utc_s <= a < n.wake_utc_s for n in truth.nights)]
    assert any(2.0 <= h <= 4.0 for h in day_non_wear_h)
    for day in truth.days:
        assert 0.0 <= day.worn_h <= day.span_h <= 24.0
    assert max(abs(o) for o in truth.offset_g) <= 0.05
    assert all(0.97 <= g <= 1.03 for g in truth.gain)


def test_gaps_have_no_samples_and_the_rest_is_regular(hard: tuple[Recording, HardTruth]) -> None:
    rec, truth = hard
    for a, b in truth.gaps:
        assert not np.any((rec.time_s >= a) & (rec.time_s < b))
    step = np.diff(rec.time_s)
    assert np.count_nonzero(step > 1.5 / rec.sampling_rate_hz) == len(truth.gaps)
    assert rec.accel_g.shape == (rec.time_s.size, 3)
    assert rec.temperature_c is not None and np.all(np.isfinite(rec.temperature_c))


def test_non_wear_is_flat_and_cools(hard: tuple[Recording, HardTruth]) -> None:
    rec, truth = hard
    assert rec.temperature_c is not None
    a, b = max(truth.non_wear, key=lambda w: w[1] - w[0])
    inside = (rec.time_s >= a + 60) & (rec.time_s < b)
    assert float(np.std(rec.accel_g[inside], axis=0).max()) < 0.01  # only sensor noise
    temp = rec.temperature_c[inside]
    assert float(temp[-1000:].mean()) < float(temp[:1000].mean()) - 3.0


def test_deterministic_for_a_seed() -> None:
    rec1, truth1 = generate_hard_recording(seed=9, days=1.0, sampling_rate_hz=100.0)
    rec2, truth2 = generate_hard_recording(seed=9, days=1.0, sampling_rate_hz=100.0)
    assert truth1 == truth2
    assert np.array_equal(rec1.time_s, rec2.time_s)
    assert np.array_equal(rec1.accel_g, rec2.accel_g)
    _, truth3 = generate_hard_recording(seed=10, days=1.0, sampling_rate_hz=100.0)
    assert truth3 != truth1


@pytest.mark.parametrize("kwargs", [{"sampling_rate_hz": 12.5}, {"sampling_rate_hz": 200.0},
                                    {"days": 0.1}, {"time_zone": "Mars/Base"}])
def test_bad_arguments_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        generate_hard_recording(seed=1, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, WearflowError)
