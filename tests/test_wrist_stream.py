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
    rec, _ = generate_recording(seed=11, days=0.012, sampling_rate_hz=25.0)
    return rec


@pytest.mark.parametrize("chunk", [1, 7, 250, 1001, 10**9])
def test_features_do_not_depend_on_chunk_size(short_recording: Recording, chunk: int) -> None:
    cal = Calibration(np.array([0.01, -0.02, 0.005]), np.array([1.01, 0.99, 1.0]),
                      np.array([0.001, 0.0, -0.002]), 30.0)
    whole = epoch_pass(recording_chunks(short_recording, 10**9), cal, extremes=True)
    parts = epoch_pass(recording_chunks(short_recording, chunk), cal, extremes=True)
    with whole.grid, parts.grid:
        a, b = whole.grid.window(0, whole.grid.n), parts.grid.window(0, parts.grid.n)
    assert a.first_s == b.first_s and a.n == b.n > 0
    assert np.array_equal(a.count, b.count)
    assert np.array_equal(a.sums, b.sums)  # to the bit
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


def test_spilled_block_sums_equal_the_sparse_ones() -> None:
    """Written to disk as rows of their second: the same blocks, to the bit, zeros where
    no sample fell (a hole in the file), whatever window is read back."""
    from wearflow.streaming.spill import SpilledBlockSums

    rng = np.random.default_rng(9)
    t = np.cumsum(rng.uniform(0.001, 0.3, 3000)) + 1.7e9
    t[1500:] += 40.0  # a gap of empty blocks
    cols = rng.normal(size=(3, t.size))
    sparse, spilled = BlockSums(1.0, 3), SpilledBlockSums(1.0, 3)
    for i in range(0, t.size, 211):
        sparse.add(t[i:i + 211], cols[:, i:i + 211])
        spilled.add(t[i:i + 211], cols[:, i:i + 211])
    ref = sparse.finish()
    with spilled.finish_spilled() as grid:
        assert grid.first_s == float(ref.index[0])
        assert grid.n == ref.index[-1] - ref.index[0] + 1
        got = grid.window(-10, grid.n + 10)  # clipped to the table
        assert got.first_s == grid.first_s and got.n == grid.n
        rows = ref.index - ref.index[0]
        assert np.array_equal(got.count[rows], ref.count)
        assert np.array_equal(got.sums[rows], ref.sums)
        empty = np.setdiff1d(np.arange(got.n), rows)
        assert empty.size > 30 and not got.count[empty].any() and not got.sums[empty].any()
        part = grid.window(100, 700)
        assert part.first_s == grid.first_s + 100
        assert np.array_equal(part.sums, got.sums[100:700])


def test_spilled_blocks_refuse_time_going_back() -> None:
    from wearflow.streaming.spill import SpilledBlockSums

    spilled = SpilledBlockSums(1.0, 1)
    spilled.add(np.array([100.2, 101.5, 102.1]), np.ones((1, 3)))
    with pytest.raises(ValueError, match="time order"):
        spilled.add(np.array([50.0, 51.0]), np.ones((1, 2)))
    spilled.close()


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


# ---------------------------------------------------------------- rule for rule against SKDH

def test_cole_kripke_is_skdh_s() -> None:
    from skdh.sleep.sleep_classification import compute_sleep_predictions

    from wearflow.streaming.sleep import cole_kripke

    rng = np.random.default_rng(2)
    for _ in range(20):
        act = np.abs(rng.normal(0.0, 0.05, 600)) * (rng.random(600) < 0.3)
        assert np.array_equal(cole_kripke(act), compute_sleep_predictions(act, sf=0.243))


def test_bout_minutes_are_skdh_s() -> None:
    from skdh.activity.endpoints import get_activity_bouts

    from wearflow.streaming.activity import bout_minutes

    rng = np.random.default_rng(4)
    for _ in range(20):
        metric = np.abs(rng.normal(0.0, 0.15, 1500)) * (rng.random(1500) < 0.7)
        for lo, hi in ((0.11, 1e5), (-1e5, 0.05), (0.05, 0.11)):
            for b in (1, 5, 10):
                assert bout_minutes(metric, lo, hi, b, 0.8) == pytest.approx(
                    get_activity_bouts(metric, lo, hi, 5, b, 0.8, False, 4))


def test_block_rules_are_skdh_s() -> None:
    from skdh.sleep.utility import arg_longest_bout, drop_min_blocks

    from wearflow.streaming.sleep import _drop_min_blocks, _longest

    rng = np.random.default_rng(6)
    for _ in range(50):
        arr = np.repeat(rng.random(40) < 0.5, rng.integers(1, 30, 40))
        mine = _drop_min_blocks(arr, 12, True, False)
        theirs = drop_min_blocks(arr.copy(), 12, drop_value=1, replace_value=0, skip_bounds=True)
        assert np.array_equal(mine, theirs.astype(bool))
        start, end = arg_longest_bout(mine, 1)
        assert _longest(mine) == (None if start is None else (start, end))


def test_calibration_matches_skdh_on_a_miscalibrated_recording() -> None:
    from skdh.preprocessing import CalibrateAccelerometer

    from wearflow.streaming.calibrate import fit_calibration

    rec, _ = generate_recording(seed=3, days=1.0, sampling_rate_hz=25.0)
    skdh_cal = CalibrateAccelerometer(min_hours=12, sd_criteria=0.013, sphere_crit=0.3,
                                      max_iter=1000, tol=1e-10)
    theirs = skdh_cal.predict(time=rec.time_s, accel=rec.accel_g, fs=rec.sampling_rate_hz,
                              temperature=rec.temperature_c, apply=False)
    mine = fit_calibration(still_window_pass(recording_chunks(rec, 50_000)),
                           rec.sampling_rate_hz)
    assert mine.applied
    np.testing.assert_allclose(mine.calibration.offset_g, theirs["offset"], atol=2e-3)
    np.testing.assert_allclose(mine.calibration.scale, theirs["scale"], atol=2e-3)


# ---------------------------------------------------------------- against builtin:wrist

@pytest.fixture(scope="module")
def both_solutions() -> tuple[dict[str, object], dict[str, object]]:
    from wearflow.config import SolutionConfig
    from wearflow.solutions.skdh import SkdhSolution

    rec, truth = generate_recording(seed=8, days=2.0, sampling_rate_hz=25.0,
                                    time_zone="Europe/Berlin")
    stream = streaming.run_wrist_stream(lambda: recording_chunks(rec, 100_003),
                                        rec.sampling_rate_hz, truth.time_zone).tables
    builtin = SkdhSolution.from_config(SolutionConfig(name="wrist", pipeline="builtin:wrist"))
    ref = builtin.run(rec, {"time_zone": truth.time_zone}).tables
    return dict(stream), dict(ref)


def test_same_tables_and_columns_as_builtin(
        both_solutions: tuple[dict, dict]) -> None:  # type: ignore[type-arg]
    stream, ref = both_solutions
    assert set(stream) <= set(ref)
    for name, table in stream.items():
        missing = [c for c in table.columns if c not in ref[name].columns]  # type: ignore[attr-defined]
        assert not missing, (name, missing)
    assert list(stream["minute_series"].columns) == list(ref["minute_series"].columns)  # type: ignore[attr-defined]
    assert list(stream["sleep"].columns) == list(ref["sleep"].columns)  # type: ignore[attr-defined]


def test_agrees_with_builtin_within_the_stated_tolerances(
        both_solutions: tuple[dict, dict]) -> None:  # type: ignore[type-arg]
    stream, ref = both_solutions
    a = stream["activity_level_classification"].set_index("date")  # type: ignore[attr-defined]
    b = ref["activity_level_classification"].set_index("date")  # type: ignore[attr-defined]
    assert list(a.index) == list(b.index)
    assert np.all(np.abs(a.wear_minutes - b.wear_minutes) / 60 <= 0.25)
    for level in ("mvpa", "sed", "light", "mod", "vig"):
        col = f"wake_{level}_5s_epoch_min"
        ok = a[col].notna() & b[col].notna()
        assert (a[col].isna() == b[col].isna()).all()
        diff = np.abs(a[col][ok] - b[col][ok])
        assert np.all(diff <= np.maximum(5.0, 0.1 * b[col][ok])), (level, diff)
    for col, tol in (("wake_intensity_gradient", 0.1), ("wake_max_acc_6min_g", 0.005),
                     ("wake_max_acc_60min_g", 0.005), ("wake_max_acc_300min_g", 0.005),
                     ("wake_threshold_equal_avg_duration_g", 0.001),
                     ("wake_sed_avg_duration", 2.0), ("wake_slpa_avg_duration", 10.0)):
        assert (a[col].isna() == b[col].isna()).all()
        assert np.all(np.abs(a[col] - b[col]).dropna() <= tol), col
    s = stream["sleep"].set_index("date")  # type: ignore[attr-defined]
    r = ref["sleep"].set_index("date")  # type: ignore[attr-defined]
    assert list(s.index) == list(r.index)
    onset = np.abs(s.tso_start_timestamp - r.tso_start_timestamp) / 60
    wake = np.abs(s.tso_start_timestamp + 60 * s.tso_duration_min
                  - r.tso_start_timestamp - 60 * r.tso_duration_min) / 60
    assert np.all(onset <= 15) and np.all(wake <= 15)
    assert np.all(np.abs(s.total_sleep_time_min - r.total_sleep_time_min) <= 30)


# Two to three times the largest stream - builtin:wrist difference over 5 days (this recording and
# seed 3, 3 days, 50 Hz): the inputs differ (epochs on the clock grid, an epoch only when
# wholly inside a segment), so the windows cover slightly different epochs. Sample
# entropy (r = 1 g) and the power spectral sum do not move. docs/wrist-stream.md.
SIGNAL_FEATURE_TOLERANCE = {"signal_entropy": 0.05, "sample_entropy": 1e-9,
                            "permutation_entropy": 0.005, "power_spectral_sum": 1e-6,
                            "spectral_flatness": 0.15, "spectral_entropy": 0.002,
                            "sparc": 0.4}


def test_signal_features_agree_with_builtin(
        both_solutions: tuple[dict, dict]) -> None:  # type: ignore[type-arg]
    from wearflow.streaming.signal_features import SIGNAL_FEATURES, signal_feature_columns

    stream, ref = both_solutions
    a = stream["activity_level_classification"]  # type: ignore[attr-defined]
    b = ref["activity_level_classification"]  # type: ignore[attr-defined]
    cols = signal_feature_columns()
    assert len(cols) == 21 and set(cols) <= set(a.columns) and set(cols) <= set(b.columns)
    # builtin:wrist's column order, for every column the stream has
    assert list(a.columns) == [c for c in b.columns if c in a.columns]
    a, b = a.set_index("date"), b.set_index("date")
    assert a[cols].notna().to_numpy().any()
    for col in cols:
        assert (a[col].isna() == b[col].isna()).all(), col
        tol = SIGNAL_FEATURE_TOLERANCE[next(f for f in SIGNAL_FEATURES if col.endswith(f))]
        assert np.all(np.abs(a[col] - b[col]).dropna() <= tol), (col, a[col], b[col])


def test_builtin_wrist_stream_is_a_solution(short_recording: Recording) -> None:
    from wearflow.config import SolutionConfig
    from wearflow.errors import SolutionError
    from wearflow.solutions import StreamSolution, load_solution

    solution = load_solution(SolutionConfig(name="ws", pipeline="builtin:wrist-stream"))
    assert isinstance(solution, StreamSolution)
    assert solution.fingerprint == StreamSolution.from_config(
        SolutionConfig(name="ws", pipeline="builtin:wrist-stream")).fingerprint
    result = solution.run(short_recording, {"time_zone": "Europe/Berlin"})
    assert {"sleep", "activity_level_classification", "minute_series"} <= set(result.tables)
    assert any(f.startswith("warning:CalibrateAccelerometer") for f in result.flags)
    with pytest.raises(SolutionError):
        StreamSolution.from_config(SolutionConfig(name="ws", pipeline="builtin:wrist-stream",
                                                  environment=("numpy",)))


def test_wear_time_rescoring_is_skdh_s() -> None:
    from skdh.preprocessing import AccelThresholdWearDetection

    from wearflow.streaming.wear_accel import modify_wear_times

    rng = np.random.default_rng(9)
    for _ in range(50):
        nonwear = np.repeat(rng.random(30) < 0.5, rng.integers(1, 40, 30))
        theirs = AccelThresholdWearDetection._modify_wear_times(nonwear, 15, True, [0, 0])
        mine = modify_wear_times(nonwear, 15, True, (0, 0))
        assert np.array_equal(mine[0], theirs[0]) and np.array_equal(mine[1], theirs[1])


def test_sleep_fragmentation_is_skdh_s() -> None:
    from skdh.sleep import endpoints as ept

    from wearflow.solutions.skdh_core import tidy_column
    from wearflow.streaming.fragmentation import sleep_fragmentation

    rng = np.random.default_rng(12)
    classes = (ept.AverageSleepDuration, ept.AverageWakeDuration,
               ept.SleepWakeTransitionProbability, ept.WakeSleepTransitionProbability,
               ept.SleepGiniIndex, ept.WakeGiniIndex, ept.SleepAverageHazard,
               ept.WakeAverageHazard, ept.SleepPowerLawDistribution,
               ept.WakePowerLawDistribution)
    for size in (1, 2, 7, 480):
        pred = (rng.random(size) < 0.8).astype(np.int64)
        starts = np.flatnonzero(np.r_[True, pred[1:] != pred[:-1]])
        lengths = np.diff(np.r_[starts, pred.size])
        mine = sleep_fragmentation(pred)
        for cls in classes:
            endpoint = cls()
            theirs = endpoint.predict(sleep_predictions=pred, lengths=lengths, starts=starts,
                                      values=pred[starts])
            assert mine[tidy_column(endpoint.name)] == pytest.approx(theirs, nan_ok=True)


def test_agrees_with_builtin_on_a_hard_recording() -> None:
    """A 2-day 25 Hz recording of wearflow.demo.hard (restless nights, a nap, day and
    night non-wear, drift, a 0.05 g-scale calibration error, gaps). Enforced against
    builtin:wrist: wear per day within 0.25 h, light/moderate/vigorous/MVPA minutes
    within 5 min or 10%, TSO onset and wake within 15 min; against the truth, MVPA at
    least the planted walking minus 5 min. Not enforced (docs/wrist-stream.md, harder
    data): TST and sedentary minutes, which move with the rare night (3 of 42) whose
    end differs when it breaks into blocks; truth's sleep window and wear, which both
    solutions miss the same way (SKDH's 30-minute still mask, late re-wear detection at
    night)."""
    from wearflow.config import SolutionConfig
    from wearflow.demo.hard import generate_hard_recording
    from wearflow.solutions.skdh import SkdhSolution

    rec, truth = generate_hard_recording(seed=7, days=2.0, sampling_rate_hz=25.0)
    stream = streaming.run_wrist_stream(lambda: recording_chunks(rec, 100_003),
                                        rec.sampling_rate_hz, truth.time_zone).tables
    builtin = SkdhSolution.from_config(SolutionConfig(name="wrist", pipeline="builtin:wrist"))
    ref = builtin.run(rec, {"time_zone": truth.time_zone}).tables
    a = stream["activity_level_classification"].set_index("date")
    b = ref["activity_level_classification"].set_index("date")
    assert list(a.index) == list(b.index)
    assert np.all(np.abs(a.wear_minutes - b.wear_minutes) / 60 <= 0.25)
    for level in ("light", "mod", "vig", "mvpa"):
        col = f"wake_{level}_5s_epoch_min"
        ok = a[col].notna() & b[col].notna()
        diff = np.abs(a[col][ok] - b[col][ok])
        assert np.all(diff <= np.maximum(5.0, 0.1 * b[col][ok])), (level, diff)
    s = stream["sleep"].set_index("date").dropna(subset=["tso_start_timestamp"])
    r = ref["sleep"].set_index("date").dropna(subset=["tso_start_timestamp"])
    both = s.index.intersection(r.index)
    assert len(both) >= 1
    onset = np.abs(s.tso_start_timestamp[both] - r.tso_start_timestamp[both]) / 60
    assert np.all(onset <= 15), onset
    wake = np.abs((s.tso_start_timestamp + 60 * s.tso_duration_min)[both]
                  - (r.tso_start_timestamp + 60 * r.tso_duration_min)[both]) / 60
    assert np.all(wake <= 15), wake
    walked = {d.date.isoformat(): d.mvpa_min for d in truth.days}
    for day, row in a.iterrows():
        if not np.isnan(row.wake_mvpa_5s_epoch_min) and str(day) in walked:
            assert row.wake_mvpa_5s_epoch_min >= walked[str(day)] - 5.0, day


def test_the_scheduler_estimates_the_stream_solution_at_its_own_footprint() -> None:
    from wearflow.config import SolutionConfig
    from wearflow.memory import (
        DEFAULT_BYTES_PER_SAMPLE,
        GB,
        STREAM_BYTES_PER_SAMPLE,
        estimate_peak_bytes,
    )

    stream = SolutionConfig(name="w", pipeline="builtin:wrist-stream")
    reference = SolutionConfig(name="w", pipeline="builtin:wrist")
    assert stream.bytes_per_sample == STREAM_BYTES_PER_SAMPLE < DEFAULT_BYTES_PER_SAMPLE
    assert reference.bytes_per_sample == DEFAULT_BYTES_PER_SAMPLE
    # what the study file says wins
    assert SolutionConfig(name="w", pipeline="builtin:wrist-stream",
                          bytes_per_sample=90).bytes_per_sample == 90
    # a 7-day 100 Hz .cwa (387 MB): fewer GB reserved per task, so more tasks fit
    size = 387 * 10**6
    assert (estimate_peak_bytes("P1_L.cwa", size, stream.bytes_per_sample)
            < 0.5 * estimate_peak_bytes("P1_L.cwa", size, reference.bytes_per_sample))
    assert estimate_peak_bytes("P1_L.cwa", size, stream.bytes_per_sample) < 7 * GB


def test_a_streamed_task_is_estimated_at_a_chunk_and_its_seconds() -> None:
    """A streamed task reserves the worker, a chunk and a day, and what little it keeps
    per second (a week at 100 Hz about 0.55 GB, a fortnight hardly more, against 10 GB
    read whole); a short file no more than a whole-file read of it; gt3x and combined
    recordings per sample."""
    from wearflow.config import SolutionConfig
    from wearflow.memory import GB, estimate_peak_bytes, streamed_task_bytes
    from wearflow.plan import task_memory_bytes

    stream = SolutionConfig(name="w", pipeline="builtin:wrist-stream")
    reference = SolutionConfig(name="w", pipeline="builtin:wrist")
    week, fortnight = 387 * 10**6, 774 * 10**6  # 7 and 14 days at 100 Hz, .cwa
    weekly = task_memory_bytes(stream, [("P1_L.cwa", week)])
    assert weekly == streamed_task_bytes("P1_L.cwa", week)
    assert 0.5 * GB < weekly < 0.6 * GB
    assert weekly < task_memory_bytes(stream, [("P1_L.cwa", fortnight)]) < 0.65 * GB
    assert task_memory_bytes(reference, [("P1_L.cwa", week)]) > 9 * GB
    for name in ("P1_L.bin", "P1_L.csv", "P1_L.csv.gz", "P1_L.cwa.gz"):  # they stream
        assert task_memory_bytes(stream, [(name, week)]) == streamed_task_bytes(name, week)
    hour = 2 * 10**6  # a 1-hour .cwa: its whole-file estimate is the smaller
    assert (task_memory_bytes(stream, [("P1_L.cwa", hour)])
            == estimate_peak_bytes("P1_L.cwa", hour, stream.bytes_per_sample)
            < streamed_task_bytes("P1_L.cwa", hour))
    # a .gt3x and two recordings combined are read whole: estimated per sample
    assert task_memory_bytes(stream, [("P1_L.gt3x", week)]) > 2 * GB
    two = task_memory_bytes(stream, [("P1_L.cwa", week), ("P1_L2.cwa", week)])
    assert two > 2 * GB


def test_mean_run_lengths_equal_the_run_by_run_reference() -> None:
    """The equal-average-duration threshold's run lengths, all thresholds at once, equal
    SKDH's rule computed run by run (mean of the run lengths, 0.0 without runs)."""
    from wearflow.streaming.activity_endpoints import (
        EQUAL_DURATION_THRESHOLDS_G,
        _mean_run_lengths,
        _true_runs,
    )
    from wearflow.streaming.fragmentation import average_duration

    rng = np.random.default_rng(1)
    thresholds = EQUAL_DURATION_THRESHOLDS_G[::7]
    for _ in range(20):
        minutes = [np.abs(rng.normal(0.0, 0.03, size=int(rng.integers(0, 300))))
                   for _ in range(int(rng.integers(0, 4)))]
        expected = []
        for thresh in thresholds:
            le: list[int] = []
            gt: list[int] = []
            for m in minutes:
                a, b = _true_runs(m <= thresh)
                le.extend(a)
                gt.extend(b)
            expected.append((average_duration(np.asarray(le, dtype=np.int64)),
                             average_duration(np.asarray(gt, dtype=np.int64))))
        got_le, got_gt = _mean_run_lengths(minutes, thresholds)
        assert np.array_equal(got_le, [e[0] for e in expected])
        assert np.array_equal(got_gt, [e[1] for e in expected])


@pytest.mark.parametrize("rate_hz", [12.5, 20.0, 25.0, 50.0, 100.0])
def test_downsample_gain_is_what_skdh_s_resampling_does_to_a_constant(rate_hz: float) -> None:
    """SKDH's Sleep low-passes (cheby1, forwards and backwards) before taking 20 Hz: a
    constant comes out 0.9886 of itself above 20 Hz, unchanged at or below."""
    from skdh.utility.internal import apply_resample

    from wearflow.streaming.sleep import downsample_gain

    assert (downsample_gain(rate_hz) == 1.0) == (rate_hz <= 20.0)
    if rate_hz == 20.0:
        return  # SKDH does not resample at all
    t = np.arange(int(600 * rate_hz)) / rate_hz + 1.7e9
    out = apply_resample(goal_fs=20.0, time=t, data=(np.full(t.size, 30.0),), indices=(),
                         aa_filter=True, fs=rate_hz)
    middle = out[1][0][out[1][0].size // 3: 2 * out[1][0].size // 3]
    assert np.allclose(middle, 30.0 * downsample_gain(rate_hz), rtol=1e-9, atol=0)


def test_median_like_means_follow_skdh_s_running_medians() -> None:
    """The 5-s mean of running 5-s medians (SKDH's Sleep, at 20 Hz) against ours from 1-s
    sums: a posture step reaches the same window, a 1-s twitch is in neither, and the
    values agree within the noise."""
    from skdh.utility import moving_mean, moving_median

    from wearflow.streaming.blocks import block_sums_reference
    from wearflow.streaming.sleep import _median_like_means

    rng = np.random.default_rng(3)
    fs, n_s = 20, 600
    t = np.arange(n_s * fs) / fs
    x = np.where(t < 301.3, 0.2, 0.6) + rng.normal(0.0, 0.004, t.size)
    x[(t >= 150.0) & (t < 151.0)] += 0.8  # a twitch of a second
    accel = np.stack([x, -x, x * 0.5], axis=1)
    skdh = moving_mean(moving_median(accel, 5 * fs, skip=1, axis=0), 5 * fs, 5 * fs, axis=0)
    blocks = block_sums_reference(t, accel.T, 1.0)
    ours = _median_like_means(0, blocks.count.astype(float), blocks.sums, skdh.shape[0])
    step = np.flatnonzero(np.diff(skdh[:, 0] > 0.4))
    assert step.size == 1
    assert np.array_equal(step, np.flatnonzero(np.diff(ours[:, 0] > 0.4)))
    assert ours[28:32, 0].max() < 0.25 and skdh[28:32, 0].max() < 0.25  # no twitch
    still = np.r_[0:25, 35:55, 66:110]
    assert np.abs(ours[still] - skdh[still]).max() < 0.003
