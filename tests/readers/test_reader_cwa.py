"""Axivity .cwa reader: agreement with SKDH, its known defects, and edge cases."""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from reader_helpers import synthetic_signal
from wearflow.demo.cwa_writer import write_cwa
from wearflow.errors import ReaderError
from wearflow.readers import _cwa_format as fmt
from wearflow.readers import read_recording
from wearflow.readers.cwa import read_cwa

CLEAN = [
    "cwa/casson_example.cwa",
    "cwa/ggirread_ax3_testfile.cwa",
    "cwa/ggirread_ax6_testfile.cwa",
    "cwa/openmovement_example-610-steps.cwa",
    "cwa/skdh_ax3_sample.cwa",
    "cwa/skdh_ax6_sample.cwa",
]
CORRUPT = "cwa/ggirread_ax3_testfile_corrupt_blocks_0_13_14_142_143_144.cwa"


def skdh_read(path: Path) -> dict[str, np.ndarray]:
    from skdh.io import ReadCwa

    # tz_name="UTC" states what our default assumes and keeps SKDH from warning.
    result: dict[str, np.ndarray] = ReadCwa().predict(file=str(path), tz_name="UTC")
    return result


@pytest.mark.parametrize("relative", CLEAN)
def test_matches_skdh_on_clean_files(
    real_bytes: Callable[[str], bytes], real_path: Callable[[str], Path], relative: str
) -> None:
    ours = read_recording(real_bytes(relative), relative)
    theirs = skdh_read(real_path(relative))
    np.testing.assert_array_equal(ours.accel_g, theirs["accel"])
    # SKDH ignores the 15-bit fraction of a second in each block and anchors the
    # block at the whole second at the shimmed offset, then chains blocks end to
    # start: its times run up to a sample period (or two, across a chain) early.
    # We use the fraction and interpolate between block anchors (cwa.h, OM's loader).
    period = 1.0 / ours.sampling_rate_hz
    difference = theirs["time"] - ours.time_s
    assert abs(float(np.median(difference))) < period
    assert float(np.max(np.abs(difference))) < 2 * period


def test_times_match_open_movement_interpolation(real_bytes: Callable[[str], bytes]) -> None:
    """Open Movement's loader (cwa_load.py): np.interp over (block sample + offset, time)."""
    data = real_bytes("cwa/casson_example.cwa")
    ours = read_recording(data, "casson")
    n = (len(data) - fmt.HEADER_SIZE) // fmt.BLOCK_SIZE
    blocks = np.frombuffer(data, fmt.BLOCK_DTYPE, count=n, offset=fmt.HEADER_SIZE)
    whole, _ = fmt.unpack_timestamps(blocks["timestamp"].astype(np.int64))
    fraction = (blocks["device_fractional"].astype(np.int64) & 0x7FFF) * 2
    index = np.arange(n) * 120 + blocks["timestamp_offset"] + (fraction * 100) // 65536
    reference = np.interp(np.arange(n * 120), index, whole + fraction / 65536)
    # Interior identical; at the ends OM clamps where we extend the end slopes.
    np.testing.assert_array_equal(ours.time_s[200:-200], reference[200:-200])


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("cwa/skdh_ax3_sample.cwa", "expected/skdh_ax3_data_expected.npz"),
        ("cwa/skdh_ax6_sample.cwa", "expected/skdh_ax6_data_expected.npz"),
    ],
)
def test_matches_skdh_expected_outputs(
    real_bytes: Callable[[str], bytes], real_dir: Path, relative: str, expected: str
) -> None:
    ours = read_recording(real_bytes(relative), relative)
    reference = np.load(real_dir / expected)
    np.testing.assert_allclose(ours.accel_g, reference["accel"], atol=1e-6)  # npz rounds AX6
    period = 1.0 / ours.sampling_rate_hz
    assert np.max(np.abs(reference["time"] - ours.time_s)) < 2 * period
    assert ours.sampling_rate_hz == float(reference["fs"][0])
    # Temperature differs only by the formula: undo ours (spec) and apply SKDH's.
    assert ours.temperature_c is not None
    raw = (ours.temperature_c - fmt.TEMPERATURE_OFFSET) / fmt.TEMPERATURE_SCALE
    np.testing.assert_allclose((raw - 171.0) / 3.142, reference["temperature"], atol=1e-6)
    assert 2.0 < float(np.median(reference["temperature"] - ours.temperature_c)) < 2.6


def test_temperature_follows_the_spec_formula() -> None:
    # cwa.h / ax3-auxiliary.md: MCP9700 at 10 mV/degC + 0.5 V, 10-bit ADC over 3 V.
    raw = 256.0
    assert raw * fmt.TEMPERATURE_SCALE + fmt.TEMPERATURE_OFFSET == 25.0


def test_logging_restart_keeps_time_increasing(
    real_bytes: Callable[[str], bytes], tmp_path: Path
) -> None:
    data = gzip.decompress(real_bytes("cwa/stepcount_tiny-sample.cwa.gz"))
    ours = read_recording(data, "tiny")
    assert ours.flags == ("segments=2", "gap_s=242.6")
    assert np.all(np.diff(ours.time_s) > 0) and ours.time_s.min() > 1.6e9
    gap_at = int(np.argmax(np.diff(ours.time_s)))
    after = ours.n_samples - gap_at - 1
    assert after == 93_000  # 775 blocks of 120 after the sequence reset

    # SKDH 0.17 indexes samples by sequence number, so after the reset it writes the
    # post-restart blocks over the start and leaves the tail at time 0 (field notes).
    path = tmp_path / "tiny.cwa"
    path.write_bytes(data)
    theirs = skdh_read(path)
    assert np.count_nonzero(theirs["time"] == 0) == after
    np.testing.assert_array_equal(theirs["accel"][:after], ours.accel_g[-after:])


def test_corrupt_blocks_are_skipped_and_counted(real_bytes: Callable[[str], bytes]) -> None:
    clean = read_recording(real_bytes("cwa/ggirread_ax3_testfile.cwa"), "clean")
    damaged = read_recording(real_bytes(CORRUPT), "damaged")
    assert damaged.flags == ("corrupt_blocks_skipped=6", "gap_s=2.4")
    keep = np.ones(145, dtype=bool)
    keep[[0, 13, 14, 142, 143, 144]] = False
    kept_samples = np.repeat(keep, 120)
    np.testing.assert_array_equal(damaged.accel_g, clean.accel_g[kept_samples])
    # Skipped blocks stay holes in time; their neighbours keep their times.
    assert np.max(np.abs(damaged.time_s - clean.time_s[kept_samples])) < 1e-3


def test_skdh_rejects_the_corrupt_file(real_path: Callable[[str], Path]) -> None:
    with pytest.raises(RuntimeError, match="Bad block"):
        skdh_read(real_path(CORRUPT))


def test_device_time_zone_uses_offset_at_configuration(real_bytes: Callable[[str], bytes]) -> None:
    data = real_bytes("cwa/casson_example.cwa")  # 2019-05-31: London is on BST (+01:00)
    utc = read_recording(data, "x")
    london = read_recording(data, "x", device_time_zone="Europe/London")
    np.testing.assert_allclose(utc.time_s - london.time_s, 3600.0)
    assert london.flags == ()
    with pytest.raises(ReaderError, match="unknown device time zone"):
        read_recording(data, "x", device_time_zone="Mars/Olympus_Mons")


def test_spliced_session_going_back_in_time_is_trimmed() -> None:
    fs = 50.0
    t_a, acc_a, temp_a = synthetic_signal(6000, fs)  # 120 s
    t_b, acc_b, temp_b = synthetic_signal(6000, fs, start_s=t_a[0] + 60.0, seed=1)
    first, second = io.BytesIO(), io.BytesIO()
    write_cwa(first, t_a, acc_a, temp_a, fs, serial=7)
    write_cwa(second, t_b, acc_b, temp_b, fs, serial=7)
    spliced = first.getvalue() + second.getvalue()[fmt.HEADER_SIZE :]  # sequence restarts
    recording = read_cwa(spliced, "spliced")
    overlap = int(np.count_nonzero(t_b <= t_a[-1]))
    assert recording.flags == ("segments=2", f"trimmed_samples={overlap}")
    assert recording.n_samples == 12000 - overlap
    np.testing.assert_allclose(recording.time_s[-1], t_b[-1], atol=1e-4)


def test_truncated_and_empty_cwa(real_bytes: Callable[[str], bytes]) -> None:
    data = real_bytes("cwa/ggirread_ax3_testfile.cwa")
    cut = read_recording(data[: 1024 + 10 * 512 + 100], "cut")
    assert cut.n_samples == 10 * 120
    assert cut.flags == ("partial_block_bytes_dropped=100",)
    with pytest.raises(ReaderError, match=r"truncated CWA header \(600 of 1024 bytes\)"):
        read_recording(data[:600], "x")
    with pytest.raises(ReaderError, match="header but no data blocks"):
        read_recording(data[:1024], "x")
    erased = read_recording(data + b"\xff" * 2048, "x")
    assert erased.flags == ("erased_blocks_skipped=4",)


def test_no_usable_block() -> None:
    header = b"MD\xfc\x03" + bytes(1020)
    garbage = np.random.default_rng(3).integers(0, 256, 4 * 512, dtype=np.uint8).tobytes()
    with pytest.raises(ReaderError, match=r"no usable CWA data blocks \(corrupt_blocks_skipped=4"):
        read_recording(header + garbage, "x")

