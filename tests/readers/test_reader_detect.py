"""Format detection and bad input: every failure is a ReaderError naming the file."""

from __future__ import annotations

import gzip
from collections.abc import Callable

import numpy as np
import pytest

import wearflow.readers
from wearflow.errors import ReaderError
from wearflow.readers import read_recording
from wearflow.recording import Recording


def test_public_surface_is_exported() -> None:
    exported = set(wearflow.readers.__all__)
    assert exported == {"Chunk", "RecordingStream", "collect", "iter_recording", "read_csv",
                        "read_cwa", "read_geneactiv", "read_recording"}
    for name in exported:
        assert callable(getattr(wearflow.readers, name))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "file is empty"),
        (gzip.compress(b""), "file is empty"),
        (np.random.default_rng(1).bytes(4096), "unrecognised format"),
        (b"\x1f\x8b" + bytes(100), "corrupt gzip stream"),
        (gzip.compress(b"time,x,y,z\n")[:10], "truncated gzip stream with no readable content"),
        (b"MD\xfc\x03" + bytes(50), "truncated CWA header"),
        (b"Device Identity\r\nDevice Type:GENEActiv\r\n", "header is truncated"),
        (b"GENEA/1.00\r\nSerial-Number:1\r\n", "legacy GENEA"),
        (b"just some words\nand more words\n", "no time and x/y/z columns"),
    ],
    ids=[
        "empty", "empty-gzip", "random-bytes", "bad-gzip", "cut-gzip", "short-cwa",
        "short-bin", "genea", "prose",
    ],
)  # fmt: skip
def test_bad_input(data: bytes, message: str) -> None:
    with pytest.raises(ReaderError, match=message) as caught:
        read_recording(data, "s3://bucket/file")
    assert caught.value.subject == "s3://bucket/file"
    assert "\n" not in str(caught.value)


def test_truncated_gzip_keeps_what_it_held(real_bytes: Callable[[str], bytes]) -> None:
    data = real_bytes("cwa/stepcount_tiny-sample.cwa.gz")
    recording = read_recording(data[: len(data) // 2], "half.cwa.gz")
    assert recording.flags[-1] == "gzip_truncated"
    assert "partial_block_bytes_dropped" in recording.flags[0]
    assert 400_000 < recording.n_samples < 700_000


def test_nested_gzip_is_unwrapped(real_bytes: Callable[[str], bytes]) -> None:
    data = real_bytes("cwa/ggirread_ax3_testfile.cwa")
    assert read_recording(gzip.compress(gzip.compress(data)), "x").n_samples == 17400


def test_unexpected_errors_become_reader_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes, uri: str, *, device_time_zone: str = "UTC") -> Recording:
        raise KeyError("boom")

    monkeypatch.setattr(wearflow.readers, "read_cwa", broken)
    with pytest.raises(ReaderError, match=r"cannot decode \(KeyError: 'boom'\)"):
        read_recording(b"MD\xfc\x03" + bytes(2000), "x")


@pytest.mark.parametrize(
    "relative",
    [
        "cwa/ggirread_ax3_testfile.cwa",
        "cwa/skdh_ax6_sample.cwa",
        "geneactiv_bin/skdh_gnactv_sample.bin",
        "actigraph_raw_csv/agread_exampleRAW.csv",
    ],
)
def test_damaged_files_never_raise_anything_else(
    real_bytes: Callable[[str], bytes], relative: str
) -> None:
    """Truncations, byte flips and overwritten spans: a Recording or a ReaderError."""
    original = real_bytes(relative)
    rng = np.random.default_rng(11)
    outcomes = {"ok": 0, "error": 0}
    for trial in range(60):
        data = bytearray(original)
        kind = trial % 3
        if kind == 0:
            data = data[: int(rng.integers(0, len(data)))]
        elif kind == 1:
            spots = rng.integers(0, len(data), size=int(rng.integers(1, 40)))
            data_array = np.frombuffer(data, np.uint8).copy()
            data_array[spots] = rng.integers(0, 256, size=spots.size)
            data = bytearray(data_array.tobytes())
        else:
            start = int(rng.integers(0, len(data)))
            span = rng.integers(0, 256, size=min(3000, len(data) - start), dtype=np.uint8)
            data[start : start + span.size] = span.tobytes()
        try:
            recording = read_recording(bytes(data), relative)
        except ReaderError:
            outcomes["error"] += 1
            continue
        outcomes["ok"] += 1
        assert np.all(np.diff(recording.time_s) > 0)
        assert np.all(np.isfinite(recording.accel_g))
    assert outcomes["ok"] > 0
