"""The streaming wrist kernels: chunk-size invariance, numpy references, agreement
with the planted truth of synthetic recordings (tolerances: docs/wrist-stream.md)."""

from __future__ import annotations

import numpy as np
import pytest

import wearflow.streaming as streaming
from wearflow.demo.synthetic import generate_recording
from wearflow.recording import Recording
from wearflow.streaming.blocks import BlockSums, block_sums_reference
from wearflow.streaming.chunks import recording_chunks
from wearflow.streaming.features import Calibration, epoch_pass, still_window_pass


def test_public_names_are_exported() -> None:
    assert sorted(streaming.__all__) == sorted(
        n for n in dir(streaming) if (not n.startswith("_") and n[0].isupper())
        or n in {"recording_chunks", "run_wrist_stream"})


@pytest.fixture(scope="module")
def short_recording() -> Recording:
    rec, _ = generate_recording(seed=11, days=0.05, sampling_rate_hz=25.0)
    return rec


@pytest.mark.parametrize("chunk", [1, 7, 250, 1001, 10**9])
def test_features_do_not_depend_on_chunk_size(short_recording: Recording, chunk: int) -> None:
    cal = Calibration(np.array([0.01, -0.02, 0.005]), np.array([1.01, 0.99, 1.0]),
                      np.array([0.001, 0.0, -0.002]), 30.0)
    whole = epoch_pass(recording_chunks(short_recording, 10**9), cal)
    parts = epoch_pass(recording_chunks(short_recording, chunk), cal)
    assert np.array_equal(whole.blocks.index, parts.blocks.index)
    assert np.array_equal(whole.blocks.count, parts.blocks.count)
    assert np.array_equal(whole.blocks.sums, parts.blocks.sums)  # to the bit
    still_a = still_window_pass(recording_chunks(short_recording, 10**9))
    still_b = still_window_pass(recording_chunks(short_recording, chunk))
    assert np.array_equal(still_a.mean_g, still_b.mean_g)
    assert np.array_equal(still_a.sd_g, still_b.sd_g, equal_nan=True)


def test_block_sums_match_the_reference() -> None:
    rng = np.random.default_rng(5)
    t = np.cumsum(rng.uniform(0.001, 0.3, 5000)) + 1.7e9
    cols = rng.normal(size=(3, t.size))
    acc = BlockSums(1.0, 3)
    for i in range(0, t.size, 333):
        acc.add(t[i:i + 333], cols[:, i:i + 333])
    got, ref = acc.finish(), block_sums_reference(t, cols, 1.0)
    assert np.array_equal(got.index, ref.index)
    assert np.array_equal(got.count, ref.count)
    np.testing.assert_allclose(got.sums, ref.sums, rtol=1e-12, atol=1e-12)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def test_agrees_with_planted_truth() -> None:
    """Two 2-day recordings: wear per day within 0.25 h, sleep onset/wake within 15 min."""
    for seed in (3, 8):
        rec, truth = generate_recording(seed=seed, days=2.0, sampling_rate_hz=25.0)
        out = streaming.run_wrist_stream(lambda rec=rec: recording_chunks(rec, 65_536),
                                         rec.sampling_rate_hz, truth.time_zone)
        sleep = out.tables["sleep"]
        for bed, wake in truth.sleep:
            near = sleep[(sleep.tso_start_timestamp - bed).abs() < 3600]
            assert len(near) == 1
            start = float(near.tso_start_timestamp.iloc[0])
            end = start + 60 * float(near.tso_duration_min.iloc[0])
            assert abs(start - bed) <= 15 * 60 and abs(end - wake) <= 15 * 60
        wear = out.tables["detach_wear"]
        bouts = [(float(np.datetime64(s[:-1]).astype("datetime64[ms]").astype(np.int64)) / 1e3,
                  float(np.datetime64(e[:-1]).astype("datetime64[ms]").astype(np.int64)) / 1e3)
                 for s, e in zip(wear.start_utc, wear.end_utc, strict=True)]
        t0, t1 = float(rec.time_s[0]), float(rec.time_s[-1])
        for day0 in np.arange(t0, t1, 86400.0):
            day = (day0, min(day0 + 86400.0, t1))
            found = sum(_overlap(b, day) for b in bouts)
            planted = (day[1] - day[0]) - sum(_overlap(b, day) for b in truth.non_wear)
            assert abs(found - planted) <= 0.25 * 3600
