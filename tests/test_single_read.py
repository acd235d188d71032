"""The file decoded once: the calibration accepted during the first read, the later
seconds' features computed in it, only the head read again; the same results as two
whole passes, to the bit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest

import wearflow.streaming.pipeline as pipeline
from wearflow.demo.hard import generate_hard_recording
from wearflow.recording import Recording
from wearflow.streaming import recording_chunks, run_wrist_stream
from wearflow.streaming.calibrate import fit_calibration
from wearflow.streaming.chunks import ChunkLike
from wearflow.streaming.single_read import FirstRead, read_once


class _Counted:
    """A chunk factory that counts the samples it hands out, over every read."""

    def __init__(self, rec: Recording) -> None:
        self.rec, self.samples, self.reads = rec, 0, 0

    def __call__(self) -> Iterator[ChunkLike]:
        self.reads += 1
        for chunk in recording_chunks(self.rec, 1 << 17):
            self.samples += len(chunk.time_s)
            yield chunk


@pytest.fixture(scope="module")
def hard() -> Recording:
    rec, _ = generate_hard_recording(seed=7, days=2.0, sampling_rate_hz=25.0)
    return rec


@pytest.mark.parametrize("temperature", [True, False])
def test_one_read_gives_the_two_pass_tables_to_the_bit(hard: Recording, temperature: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rec = hard if temperature else replace(hard, temperature_c=None)
    once = _Counted(rec)
    single = run_wrist_stream(once, rec.sampling_rate_hz, "Europe/London")
    assert single.calibration.applied
    # the whole file once, and the head (12 h and a chunk) again: not two whole reads
    assert once.reads == 2 and once.samples < 1.4 * rec.n_samples

    def no_early_fit(chunks: object, rate_hz: float) -> FirstRead:
        first = read_once(chunks, rate_hz)  # type: ignore[arg-type]
        if first.features is not None:
            first.features.grid.close()
        return FirstRead(first.still, None, None)

    monkeypatch.setattr(pipeline, "read_once", no_early_fit)
    twice = _Counted(rec)
    both = run_wrist_stream(twice, rec.sampling_rate_hz, "Europe/London")
    assert twice.samples > 2 * rec.n_samples
    assert sorted(single.tables) == sorted(both.tables)
    for name, table in single.tables.items():
        assert table.equals(both.tables[name]), name
    assert single.flags == both.flags
    assert (single.error_before_g, single.error_after_g) == (both.error_before_g,
                                                             both.error_after_g)


def test_the_early_fit_is_the_whole_recordings_fit(hard: Recording) -> None:
    first = read_once(_Counted(hard), hard.sampling_rate_hz)
    assert first.calibration is not None and first.features is not None
    whole = fit_calibration(first.still, hard.sampling_rate_hz)
    for field in ("offset_g", "scale", "temperature_scale"):
        assert np.array_equal(getattr(first.calibration.calibration, field),
                              getattr(whole.calibration, field))
    assert first.features.n_samples == hard.n_samples
    first.features.grid.close()


def test_under_twelve_hours_the_file_is_read_again_whole(hard: Recording) -> None:
    keep = hard.time_s < hard.time_s[0] + 11 * 3600
    short = replace(hard, time_s=hard.time_s[keep], accel_g=hard.accel_g[keep],
                    temperature_c=hard.temperature_c[keep])
    first = read_once(_Counted(short), short.sampling_rate_hz)
    assert first.calibration is None and first.features is None  # the caller reads again
    counted = _Counted(short)
    result = run_wrist_stream(counted, short.sampling_rate_hz, "UTC")
    assert counted.samples == 2 * short.n_samples and result.tables
