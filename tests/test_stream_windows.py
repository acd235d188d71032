"""The streaming wrist algorithms read the on-disk 1-s table a day at a time: the same
results as from the whole table at once, and never more than a day (plus margins) in
memory, so a 14-day recording needs what a 1-day one needs."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

import wearflow.streaming as streaming
from wearflow.demo.hard import generate_hard_recording
from wearflow.recording import Recording
from wearflow.streaming.chunks import recording_chunks
from wearflow.streaming.features import Calibration, EpochFeatures, epoch_pass
from wearflow.streaming.spill import SpilledGrid
from wearflow.streaming.wear import detach_wear

DAY_S = 86_400


@pytest.fixture(scope="module")
def hard() -> Iterator[tuple[Recording, EpochFeatures]]:
    """3 days of wearflow.demo.hard at 25 Hz: non-wear by day and night, gaps, naps."""
    rec, _ = generate_hard_recording(seed=7, days=3.0, sampling_rate_hz=25.0)
    features = epoch_pass(recording_chunks(rec, 100_003), Calibration.identity())
    with features.grid:
        yield rec, features


def test_windowed_detach_finds_the_whole_recording_s_bouts(
        hard: tuple[Recording, EpochFeatures]) -> None:
    """Read 997 s at a time (a window edge near every bout edge) with the default hour
    on either side: the bouts of the whole table read at once, to the second. Without
    the margin the rules' look-ahead is cut at the edges and the bouts change."""
    _, features = hard
    grid, last = features.grid, features.last_time_s
    whole = detach_wear(grid, last, window_s=10 * DAY_S)
    assert whole.shape[0] >= 3  # the planted non-wear splits wear into bouts
    np.testing.assert_array_equal(detach_wear(grid, last, window_s=997), whole)
    np.testing.assert_array_equal(detach_wear(grid, last), whole)
    assert not np.array_equal(detach_wear(grid, last, window_s=997, margin_s=0), whole)


def test_minute_series_read_an_hour_at_a_time_equals_one_read(
        hard: tuple[Recording, EpochFeatures]) -> None:
    from wearflow.streaming.minutes import minute_series

    _, features = hard
    grid, last = features.grid, features.last_time_s
    wear = detach_wear(grid, last)
    days = np.array([[grid.first_s, last]])
    whole = minute_series(grid, last, wear, [], days, window_s=10 * DAY_S)
    hourly = minute_series(grid, last, wear, [], days, window_s=3600)
    assert whole["moderate_s"].sum() > 0 and whole["enmo_g"].notna().sum() > 1000
    pd.testing.assert_frame_equal(hourly, whole)


def test_the_pipeline_never_holds_more_than_a_day_of_seconds(
        hard: tuple[Recording, EpochFeatures], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read of the 1-s table is at most a day and DETACH's two hours of margin
    (the whole 3-day table is never read at once), and the tables are complete."""
    rec, _ = hard
    sizes: list[int] = []
    read = SpilledGrid.window

    def counted(self: SpilledGrid, lo: int, hi: int) -> object:
        window = read(self, lo, hi)
        sizes.append(window.n)
        return window

    monkeypatch.setattr(SpilledGrid, "window", counted)
    out = streaming.run_wrist_stream(lambda: recording_chunks(rec, 100_003),
                                     rec.sampling_rate_hz, "UTC")
    assert max(sizes) <= DAY_S + 2 * 3600 + 1
    assert sum(sizes) > 3 * DAY_S * 0.9  # everything was read
    assert len(out.tables["minute_series"]) > 3 * 24 * 60 * 0.9
    assert out.tables["detach_wear"].shape[0] >= 3


def test_a_recording_without_temperature_and_an_hours_long_gap_runs() -> None:
    """Acceleration-only wear reads 60-minute windows: one that falls wholly in a gap
    has no samples and is not non-wear (it used to fail on the empty window)."""
    rec, _ = generate_hard_recording(seed=3, days=1.0, sampling_rate_hz=25.0)
    keep = (rec.time_s < rec.time_s[0] + 6 * 3600) | (rec.time_s > rec.time_s[0] + 9 * 3600)
    cut = Recording(rec.time_s[keep], rec.accel_g[keep], rec.sampling_rate_hz, rec.device)
    out = streaming.run_wrist_stream(lambda: recording_chunks(cut, 100_003),
                                     cut.sampling_rate_hz, "UTC")
    assert any(f.startswith("substituted:DETACH") for f in out.flags)
    wear = out.tables["detach_wear"]
    assert len(wear) >= 1 and wear["duration_h"].sum() > 0


def test_freed_heap_memory_goes_back_to_the_system_here() -> None:
    """On glibc (this Debian machine, the image) the pipeline's heap trimming is live:
    a day's freed arrays are returned, not kept resident for the next day."""
    from wearflow._heap import _trim, release_free_heap

    assert _trim() is not None
    release_free_heap()


def test_a_gap_of_days_leaves_its_nights_empty_and_unworn() -> None:
    """Three days without a sample (the device off, then on again): the nights inside
    the gap have no sleep window, the gap is not counted as wear, the days around it are
    analysed. (Both a DETACH window and a noon-to-noon window with no sample used to
    fail on interpolating nothing.)"""
    rec, truth = generate_hard_recording(seed=5, days=5.0, sampling_rate_hz=25.0)
    t0 = float(rec.time_s[0])
    gap = (t0 + 1.2 * DAY_S, t0 + 4.2 * DAY_S)
    keep = (rec.time_s < gap[0]) | (rec.time_s > gap[1])
    assert rec.temperature_c is not None
    cut = Recording(rec.time_s[keep], rec.accel_g[keep], rec.sampling_rate_hz, rec.device,
                    rec.temperature_c[keep])
    out = streaming.run_wrist_stream(lambda: recording_chunks(cut, 100_003),
                                     cut.sampling_rate_hz, truth.time_zone)
    sleep = out.tables["sleep"]
    assert sleep["tso_start"].notna().tolist() == [True, False, False, False, True]
    wear = out.tables["detach_wear"]
    starts = pd.to_datetime(wear["start_utc"]).astype("int64") / 1e9
    ends = pd.to_datetime(wear["end_utc"]).astype("int64") / 1e9
    assert not ((starts < gap[1] - 3600) & (ends > gap[0] + 3600)).any()
    days = out.tables["activity_level_classification"]
    assert days["wear_minutes"].iloc[2:4].eq(0).all() and days["wear_minutes"].iloc[0] > 0


def test_a_window_shorter_than_an_epoch_has_no_epochs(
        hard: tuple[Recording, EpochFeatures]) -> None:
    """The day-at-a-time reads end with whatever seconds are left: a last window of 3 s
    (a recording starting 1 s past a minute, hard seed 107) has no 5-s epoch, not an
    error."""
    from wearflow.streaming.activity import epochs

    _, features = hard
    tail = features.grid.window(0, 3)
    count, sums = tail.coarse(5)
    assert count.shape == (0,) and sums.shape == (0, tail.sums.shape[1])
    assert tail.coarse(5, offset=4)[1].shape == (0, tail.sums.shape[1])
    t5, enmo, _, _ = epochs(tail)
    assert t5.size == enmo.size == 0
