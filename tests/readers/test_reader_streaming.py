"""The streaming read equals the whole-file read: every real file, every hostile input.

``iter_recording`` must give, concatenated, exactly what ``read_recording``
gives for the same bytes (samples, times, temperature, flags, device, rate),
or the same one-line ReaderError naming the file. Checked on every file in
../shared/data/real/ (the known-defective ones included), at a tiny and a
large chunk size, on the hostile and corrupt inputs of the other reader tests
(their fuzz strategies, re-used), on spliced, gapped and truncated .cwa files,
and from a one-way (unseekable) stream and a Store. Memory is bounded by the
chunk, not the file (tracemalloc on a 6-hour file). CSV specifics (tables over
several pandas blocks, what is left to the whole-file read, memory in a child process)
are in test_reader_csv_streaming.
"""

from __future__ import annotations

import gzip
import io
import time
import tracemalloc
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_reader_fuzz import (
    PREFIXES,
    SEEDS,
    URIS,
    bin_with_extreme_fields,
    cwa_with_extreme_fields,
    fuzz_settings,
    maybe_gzipped,
    mutated,
)

from reader_helpers import synthetic_signal
from wearflow.demo.cwa_writer import write_cwa
from wearflow.errors import ReaderError, StorageError
from wearflow.readers import Chunk, collect, iter_recording, read_recording
from wearflow.readers import _cwa_format as fmt
from wearflow.recording import Recording
from wearflow.storage import Store

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pygt3x on odd files

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
REAL_FILES = sorted(
    p.relative_to(REAL).as_posix() for p in REAL.rglob("*")
    if p.is_file() and p.name != "MANIFEST.md" and p.parent.name != "expected"
)
def diff_settings(max_examples: int) -> settings:
    """The reader fuzz settings; each example reads twice, so twice the deadline."""
    return settings(fuzz_settings(max_examples), deadline=4000)


STREAMED_FOLDERS = ("cwa/", "geneactiv_bin/", "actigraph_raw_csv/", "generic_csv/")
"""Every file here streams natively (the CSVs of other folders are refused by both paths)."""


class OneWay(io.RawIOBase):
    """A stream that cannot seek, as a pipe or a socket."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        return self._inner.readinto(buffer)


def outcome(read: object) -> Recording | tuple[str, str | None]:
    """The Recording, or the error's (message, subject)."""
    try:
        result = read() if callable(read) else read
    except ReaderError as exc:
        assert exc.message.splitlines() == [exc.message]
        return exc.message, exc.subject
    assert isinstance(result, Recording)
    return result


def streamed(data: bytes | BinaryIO, uri: str, chunk_s: float = 3600.0, **kw: object
             ) -> Recording:
    """The streamed chunks, checked one by one, concatenated into a Recording."""
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    stream = iter_recording(source, uri, chunk_s=chunk_s, **kw)  # type: ignore[arg-type]
    chunks = list(stream)
    check_chunks(chunks)
    temps = [c.temperature_c for c in chunks]
    return Recording(
        time_s=np.concatenate([c.time_s for c in chunks]),
        accel_g=np.concatenate([c.accel_g for c in chunks]),
        sampling_rate_hz=stream.sampling_rate_hz,
        device=stream.device,
        temperature_c=None if temps[0] is None else np.concatenate(temps),  # type: ignore[arg-type]
        flags=stream.flags,
    ).validate(uri)


def check_chunks(chunks: list[Chunk]) -> None:
    """Each chunk is non-empty, well shaped, later than the one before, one segment."""
    last = -np.inf
    segment = 0
    for chunk in chunks:
        n = chunk.n_samples
        assert n > 0
        assert chunk.accel_g.shape == (n, 3) and chunk.accel_g.dtype == np.float64
        assert chunk.time_s.dtype == np.float64
        assert chunk.temperature_c is None or chunk.temperature_c.shape == (n,)
        assert chunk.time_s[0] > last and np.all(np.diff(chunk.time_s) > 0)
        assert chunk.segment >= segment
        last, segment = float(chunk.time_s[-1]), chunk.segment
    assert len({c.temperature_c is None for c in chunks}) <= 1


def assert_same(whole: Recording | tuple[str, str | None],
                stream: Recording | tuple[str, str | None]) -> None:
    if isinstance(whole, tuple) or isinstance(stream, tuple):
        assert whole == stream
        return
    np.testing.assert_array_equal(stream.time_s, whole.time_s, strict=True)
    np.testing.assert_array_equal(stream.accel_g, whole.accel_g, strict=True)
    if whole.temperature_c is None:
        assert stream.temperature_c is None
    else:
        assert stream.temperature_c is not None
        np.testing.assert_array_equal(stream.temperature_c, whole.temperature_c, strict=True)
    assert stream.flags == whole.flags
    assert stream.device == whole.device
    assert stream.sampling_rate_hz == whole.sampling_rate_hz


def both(data: bytes, uri: str, chunk_s: float = 3600.0, **kw: object) -> None:
    whole = outcome(lambda: read_recording(data, uri, **kw))  # type: ignore[arg-type]
    assert_same(whole, outcome(lambda: streamed(data, uri, chunk_s, **kw)))


# ------------------------------------------------------------------------- every real file


@pytest.mark.parametrize("chunk_s", [0.7, 3600.0])
@pytest.mark.parametrize("relative", REAL_FILES)
def test_every_real_file_streams_as_it_reads_whole(relative: str, chunk_s: float) -> None:
    path = REAL / relative
    whole = outcome(lambda: read_recording(path.read_bytes(), relative))
    with path.open("rb") as fh:
        assert_same(whole, outcome(lambda: streamed(fh, relative, chunk_s)))
    if relative.startswith(STREAMED_FOLDERS):
        with path.open("rb") as fh:
            assert iter_recording(fh, relative).method == "streamed"


def test_real_restart_is_a_new_segment() -> None:
    relative = "cwa/stepcount_tiny-sample.cwa.gz"
    with (REAL / relative).open("rb") as fh:
        chunks = list(iter_recording(fh, relative, chunk_s=600.0))
    assert sorted({c.segment for c in chunks}) == [0, 1]
    first_of_second = next(c for c in chunks if c.segment == 1)
    last_of_first = [c for c in chunks if c.segment == 0][-1]
    assert first_of_second.time_s[0] - last_of_first.time_s[-1] == pytest.approx(242.6, abs=0.05)


# ----------------------------------------------------------------- hostile and corrupt input


@diff_settings(120)
@given(data=maybe_gzipped(mutated(SEEDS["cwa"])), uri=st.sampled_from(URIS),
       chunk_s=st.sampled_from([0.3, 5.0, 3600.0]))
def test_mutated_cwa_streams_as_it_reads_whole(data: bytes, uri: str, chunk_s: float) -> None:
    both(data, uri, chunk_s)


@diff_settings(150)
@given(data=maybe_gzipped(cwa_with_extreme_fields()), chunk_s=st.sampled_from([0.3, 3600.0]))
def test_cwa_fields_at_extremes_stream_as_they_read_whole(data: bytes, chunk_s: float) -> None:
    both(data, "P1_L.cwa", chunk_s)


@diff_settings(100)
@given(prefix=st.sampled_from(PREFIXES), rest=st.binary(max_size=3000))
def test_arbitrary_bytes_behind_each_signature(prefix: bytes, rest: bytes) -> None:
    both(prefix + rest, "upload", 1.0)


@diff_settings(120)
@given(data=maybe_gzipped(mutated(SEEDS["bin"])), uri=st.sampled_from(URIS),
       chunk_s=st.sampled_from([1.0, 3600.0]))
def test_mutated_bin_streams_as_it_reads_whole(data: bytes, uri: str, chunk_s: float) -> None:
    both(data, uri, chunk_s)


@diff_settings(150)
@given(data=maybe_gzipped(bin_with_extreme_fields()), chunk_s=st.sampled_from([1.0, 3600.0]))
def test_bin_fields_at_extremes_stream_as_they_read_whole(data: bytes, chunk_s: float) -> None:
    both(data, "P1_L.bin", chunk_s)


@diff_settings(60)
@given(data=maybe_gzipped(mutated(SEEDS["csv"])))
def test_mutated_csv_streams_as_it_reads_whole(data: bytes) -> None:
    both(data, "P1_L.csv", 2.0)


CWA = "cwa/ggirread_ax3_testfile.cwa"


@pytest.mark.parametrize(
    "cut", [0, 2, 600, 1024, 1024 + 300, 1024 + 10 * 512, 1024 + 10 * 512 + 100, None]
)
def test_cut_cwa(cut: int | None) -> None:
    data = (REAL / CWA).read_bytes()[:cut]
    both(data, "P1_L.cwa", 1.0)
    both(gzip.compress(data, mtime=0), "P1_L.cwa.gz", 1.0)


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.3, 0.7, 0.999])
def test_cut_gzip_of_a_cwa(fraction: float) -> None:
    packed = gzip.compress((REAL / CWA).read_bytes(), mtime=0)
    both(packed[: int(len(packed) * fraction)], "P1_L.cwa.gz", 2.0)


@pytest.mark.parametrize(
    "data",
    [b"", gzip.compress(b""), b"\x1f\x8b" + bytes(100), gzip.compress(b"time,x,y,z\n")[:10],
     b"MD\xfc\x03" + bytes(50), b"MD\xfc\x03" + bytes(1020) + bytes(4 * 512),
     b"MD\xfc\x03" + bytes(1020)
     + np.random.default_rng(3).integers(0, 256, 4 * 512, dtype=np.uint8).tobytes(),
     (REAL / CWA).read_bytes() + b"\xff" * 2048,
     gzip.compress(gzip.compress((REAL / CWA).read_bytes(), mtime=0), mtime=0),
     gzip.compress((REAL / CWA).read_bytes(), mtime=0) * 2],
    ids=["empty", "empty-gzip", "bad-gzip", "cut-gzip", "short-cwa", "zero-blocks",
         "garbage-blocks", "erased-tail", "gzip-in-gzip", "two-members"],
)
def test_defined_outcomes(data: bytes) -> None:
    both(data, "s3://study/raw/P1_L.cwa", 1.0)


BIN = "geneactiv_bin/skdh_gnactv_sample.bin"


def long_bin(n_pages: int, *, jump_at: int | None = None, back_at: int | None = None) -> bytes:
    """A GENEActiv file of ``n_pages`` pages (50 Hz, 6 s each) built from a real one's
    header and first page; page times may jump forward or back (new runs of pages)."""
    data = (REAL / BIN).read_bytes()
    start = data.index(b"Recorded Data")
    page = data[start:data.index(b"Recorded Data", start + 1)]
    head = data[:start].replace(b"Number of Pages:3", b"Number of Pages:%d" % n_pages)
    base = np.datetime64("2019-05-21T16:16:43.500", "ms")
    pages, shift = [], 0
    for k in range(n_pages):
        shift += 3_600_000 if k == jump_at else 0
        shift -= 60_000 if k == back_at else 0
        stamp = str(base + np.timedelta64(k * 6000 + shift, "ms")).replace("T", " ")
        stamp = stamp[:19] + ":" + stamp[20:23]
        pages.append(page.replace(b"Page Time:2019-05-21 16:16:43:500",
                                  b"Page Time:" + stamp.encode())
                     .replace(b"Sequence Number:0", b"Sequence Number:%d" % k))
    return head + b"".join(pages)


@pytest.mark.parametrize("chunk_s", [5.0, 61.0, 3600.0])
@pytest.mark.parametrize(("jump_at", "back_at"), [(None, None), (400, None), (None, 700)])
def test_long_bin_runs(chunk_s: float, jump_at: int | None, back_at: int | None) -> None:
    data = long_bin(1000, jump_at=jump_at, back_at=back_at)  # 100 min: long runs fit a rate
    both(data, "P1_L.bin", chunk_s, device_time_zone="America/New_York")
    assert iter_recording(io.BytesIO(data), "x").method == "streamed"


@pytest.mark.parametrize("cut", [0, 500, 1375, 1400, 5000, 9000, -1])
def test_cut_bin(cut: int) -> None:
    data = (REAL / BIN).read_bytes()[:cut]
    both(data, "P1_L.bin", 1.0)
    both(gzip.compress(data, mtime=0), "P1_L.bin.gz", 1.0)


def test_a_span_far_beyond_the_samples_is_cut_without_empty_chunks() -> None:
    rows = [f"{1_700_000_000 + i / 25:.2f},0,0,1" for i in range(250)]
    data = "\n".join(["time,x,y,z", *rows, "1e15,0,0,1", ""]).encode()
    both(data, "far.csv", 1.0)
    sizes = [c.n_samples for c in iter_recording(io.BytesIO(data), "far.csv", chunk_s=1.0)]
    assert sizes == [25] * 10 + [1]


def test_gzip_bomb_stops_at_the_same_cap() -> None:
    bomb = gzip.compress(b"MD\xfc\x03" + bytes(1020) + bytes(8 << 20), mtime=0)
    both(bomb, "bomb.cwa.gz", 60.0, max_decompressed_bytes=1 << 20)
    both(bomb, "bomb.cwa.gz", 60.0)


def _cwa(time_s: np.ndarray, accel: np.ndarray, temp: np.ndarray | None, fs: float) -> bytes:
    buffer = io.BytesIO()
    write_cwa(buffer, time_s, accel, temp, fs, serial=7)
    return buffer.getvalue()


def test_spliced_session_going_back_in_time() -> None:
    fs = 50.0
    t_a, acc_a, temp_a = synthetic_signal(6000, fs)
    t_b, acc_b, temp_b = synthetic_signal(6000, fs, start_s=t_a[0] + 60.0, seed=1)
    spliced = _cwa(t_a, acc_a, temp_a, fs) + _cwa(t_b, acc_b, temp_b, fs)[fmt.HEADER_SIZE:]
    for chunk_s in (0.5, 7.0, 3600.0):
        both(spliced, "spliced", chunk_s)
    segments = {c.segment for c in iter_recording(io.BytesIO(spliced), "spliced", chunk_s=7.0)}
    assert segments == {0, 1}


def test_gaps_zones_and_rates() -> None:
    for fs in (12.5, 100.0, 400.0):
        time_s, accel, temp = synthetic_signal(int(fs * 300), fs, start_s=1_711_846_000.0)
        time_s[len(time_s) // 3:] += 600.0
        data = _cwa(time_s, accel, temp, fs)
        for zone in ("UTC", "Europe/London", "America/New_York"):
            both(data, "gap", 13.0, device_time_zone=zone)  # 2024-03-31: a DST change
    both(data, "gap", 13.0, device_time_zone="Mars/Olympus_Mons")


def test_start_in_the_future_is_refused_the_same_way() -> None:
    time_s = 2_950_000_000.0 + np.arange(500) / 50.0
    both(_cwa(time_s, np.tile([0.0, 0.0, 1.0], (500, 1)), None, 50.0), "P1_L.cwa", 1.0)


def test_an_unseekable_stream_and_a_store(tmp_path: Path) -> None:
    data = (REAL / "cwa/stepcount_tiny-sample.cwa.gz").read_bytes()
    whole = read_recording(data, "x")
    assert_same(whole, streamed(OneWay(data), "x", 900.0))  # type: ignore[arg-type]
    (tmp_path / "P1_L.cwa.gz").write_bytes(data)
    store = Store(str(tmp_path))
    with store.open("P1_L.cwa.gz") as fh:
        assert_same(whole, streamed(fh, "x", 900.0))
    with pytest.raises(StorageError, match="file not found"):
        store.open("missing.cwa")


def test_stream_facts_wait_for_the_stream() -> None:
    stream = iter_recording((REAL / CWA).open("rb"), CWA, chunk_s=10.0)
    with pytest.raises(RuntimeError, match="no chunk yet"):
        _ = stream.sampling_rate_hz
    chunks = iter(stream)
    next(chunks)
    assert stream.sampling_rate_hz == 100.0 and stream.device.format == "axivity-cwa"
    with pytest.raises(RuntimeError, match="not finished"):
        _ = stream.flags
    list(chunks)
    assert stream.flags == ()
    assert_same(read_recording((REAL / CWA).read_bytes(), CWA),
                collect(iter_recording((REAL / CWA).open("rb"), CWA, chunk_s=10.0)))
    with pytest.raises(RuntimeError, match="already iterated"):
        iter(stream)
    with pytest.raises(ValueError, match="chunk_s"):
        iter_recording(io.BytesIO(b""), "x", chunk_s=0.0)


# ------------------------------------------------------------------------------ bounded memory


def test_memory_is_bounded_by_the_chunk_not_the_file() -> None:
    fs = 100.0
    n = int(6 * 3600 * fs)  # 6 hours: 2.16 million samples
    time_s, accel, temp = synthetic_signal(n, fs)
    data = _cwa(time_s, accel, temp, fs)
    del time_s, accel, temp
    tracemalloc.start()
    try:
        began = time.perf_counter()
        samples = 0
        for chunk in iter_recording(io.BytesIO(data), "long", chunk_s=600.0):
            samples += chunk.n_samples
        streamed_peak = tracemalloc.get_traced_memory()[1]
        assert time.perf_counter() - began < 120
        packed = gzip.compress(data, compresslevel=1, mtime=0)
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for chunk in iter_recording(io.BytesIO(packed), "long.gz", chunk_s=600.0):
            samples += chunk.n_samples
        gzip_peak = tracemalloc.get_traced_memory()[1] - base
        del packed
        tracemalloc.reset_peak()
        read_recording(data, "long")
        whole_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert samples == 2 * n
    # 10 minutes at 100 Hz is 60,000 samples, about 2.4 MB as float64: allow ten times that
    assert streamed_peak < 25e6, streamed_peak
    assert gzip_peak < 30e6, gzip_peak  # plus a compressed and an inflated MiB
    assert whole_peak > 8 * streamed_peak


def test_bin_memory_is_bounded_by_the_chunk_not_the_file() -> None:
    data = long_bin(7200, jump_at=3000)  # 12 hours at 50 Hz, 27 MB
    tracemalloc.start()
    try:
        samples = sum(c.n_samples for c in iter_recording(io.BytesIO(data), "x", chunk_s=600.0))
        streamed_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        read_recording(data, "x")
        whole_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert samples == 7200 * 300
    # the census keeps 24 bytes a page (0.2 MB here); a chunk is 30,000 samples
    assert streamed_peak < 25e6, streamed_peak
    assert whole_peak > 6 * streamed_peak
