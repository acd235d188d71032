"""write_cwa: valid AX3 files that both our reader and SKDH read back."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from reader_helpers import synthetic_signal
from wearflow.demo.cwa_writer import write_cwa
from wearflow.readers import _cwa_format as fmt
from wearflow.readers import read_recording

FS = 50.0


def quantised(accel_g: np.ndarray) -> np.ndarray:
    """What an AX3 stores: 1/256 g steps within +-8 g."""
    return np.asarray(np.clip(np.rint(accel_g * 256), -2048, 2047) / 256.0)


def test_two_days_round_trip_with_both_readers(tmp_path: Path) -> None:
    from skdh.io import ReadCwa

    time_s, accel, temperature = synthetic_signal(int(2 * 86400 * FS), FS)
    path = tmp_path / "two_days.cwa"
    write_cwa(path, time_s, accel, temperature, FS, serial=4_000_123)

    ours = read_recording(path.read_bytes(), str(path))
    assert ours.flags == ()
    assert ours.device.serial == "4000123" and ours.device.model == "AX3"
    assert ours.sampling_rate_hz == FS
    np.testing.assert_array_equal(ours.accel_g, quantised(accel))
    assert np.max(np.abs(ours.time_s - time_s)) < 31e-6  # 1/32768 s fraction resolution
    assert ours.temperature_c is not None
    assert np.max(np.abs(ours.temperature_c - temperature)) < 0.3  # one raw step, 0.29 degC

    theirs = ReadCwa().predict(file=str(path), tz_name="UTC")
    np.testing.assert_array_equal(theirs["accel"], quantised(accel))
    assert np.max(np.abs(theirs["time"] - time_s)) < 1e-3


def test_blocks_carry_valid_checksums_and_layout() -> None:
    time_s, accel, temperature = synthetic_signal(1000, FS)
    buffer = io.BytesIO()
    write_cwa(buffer, time_s, accel, temperature, FS, serial=1)
    data = buffer.getvalue()
    assert data[:2] == b"MD" and (len(data) - 1024) % 512 == 0
    blocks = np.frombuffer(data, fmt.BLOCK_DTYPE, offset=fmt.HEADER_SIZE)
    words = np.frombuffer(data, "<u2", offset=fmt.HEADER_SIZE).reshape(-1, 256)
    assert np.all(words.sum(axis=1, dtype=np.uint16) == 0)
    assert list(blocks["sample_count"]) == [80] * 12 + [40]
    assert np.all(blocks["axes_packing"] == 0x32) and np.all(blocks["rate_code"] == 0x49)
    assert fmt.BLOCK_DTYPE.itemsize == fmt.BLOCK_SIZE


def test_gaps_start_new_blocks_and_survive() -> None:
    time_s, accel, _ = synthetic_signal(3000, FS)
    time_s[1234:] += 600.0  # ten minutes off-wrist with the logger stopped
    buffer = io.BytesIO()
    write_cwa(buffer, time_s, accel, None, FS, serial=2)
    recording = read_recording(buffer.getvalue(), "gap")
    assert recording.flags == ("segments=2", "gap_s=600.0")
    assert recording.temperature_c is None
    assert np.max(np.abs(recording.time_s - time_s)) < 31e-6


def test_device_zone_round_trip_across_dst() -> None:
    # 2023-10-29 01:00 UTC: London leaves BST during this recording.
    time_s, accel, temperature = synthetic_signal(int(86400 * 6.25), 6.25, start_s=1698490800.0)
    buffer = io.BytesIO()
    write_cwa(buffer, time_s, accel, temperature, 6.25, serial=3, device_time_zone="Europe/London")
    recording = read_recording(buffer.getvalue(), "dst", device_time_zone="Europe/London")
    assert recording.flags == ("dst_change_not_applied",)
    assert np.max(np.abs(recording.time_s - time_s)) < 31e-6
    as_utc = read_recording(buffer.getvalue(), "dst")
    np.testing.assert_allclose(as_utc.time_s - recording.time_s, 3600.0, atol=1e-6)


def test_path_and_file_object_write_the_same_bytes(tmp_path: Path) -> None:
    time_s, accel, temperature = synthetic_signal(500, FS)
    buffer = io.BytesIO()
    write_cwa(buffer, time_s, accel, temperature, FS, serial=9)
    write_cwa(tmp_path / "x.cwa", time_s, accel, temperature, FS, serial=9)
    assert (tmp_path / "x.cwa").read_bytes() == buffer.getvalue()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sampling_rate_hz": 60.0}, "cannot record at 60.0 Hz"),
        ({"time_s": np.zeros(10)}, "strictly increasing"),
        ({"accel_g": np.zeros((10, 2))}, r"accel_g \(n, 3\)"),
        ({"accel_g": np.full((10, 3), np.nan)}, "finite"),
        ({"temperature_c": np.zeros(3)}, "temperature_c"),
        ({"serial": -1}, "32 bits"),
        ({"time_s": np.arange(10.0)}, "2000 to 2063"),
        ({"device_time_zone": "Nowhere/Atlantis"}, "unknown device time zone"),
    ],
)
def test_rejects_bad_arguments(change: dict[str, object], message: str) -> None:
    time_s, accel, temperature = synthetic_signal(10, FS)
    arguments: dict[str, object] = {
        "time_s": time_s,
        "accel_g": accel,
        "temperature_c": temperature,
        "sampling_rate_hz": FS,
        "serial": 1,
    }
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        write_cwa(io.BytesIO(), **arguments)  # type: ignore[arg-type]
