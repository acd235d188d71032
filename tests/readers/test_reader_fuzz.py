"""Fuzzing ``read_recording``: any bytes give a valid Recording or a one-line ReaderError.

The property, for every input: either a Recording that passes ``validate`` and
keeps the readers' further promises (finite acceleration, a plausible rate, a
start that is not in the future), or a ReaderError about the given URI with a
one-line message that a reader wrote on purpose -- never the catch-all
``cannot decode (SomeError: ...)`` that marks a reader bug, never another
exception. Inputs: arbitrary bytes; bit flips, truncations, inserted and
deleted runs of real files, also gzip-wrapped; header and block fields set to
extremes (with the CWA checksums recomputed so that the bad values get past
the checksum); generated CSV tables. Memory stays a bounded multiple of the
input (tracemalloc) and gzip bombs stop at the decompression cap.

Examples are derandomized (the same ones every run) and not stored, so the
suite is deterministic; set ``WEARFLOW_FUZZ_EXAMPLES=5000`` for a longer,
random search.
"""

from __future__ import annotations

import gzip
import os
import re
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wearflow.errors import ReaderError
from wearflow.readers import _cwa_format as fmt
from wearflow.readers import read_recording
from wearflow.recording import Recording

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
CWA = "cwa/ggirread_ax3_testfile.cwa"
BIN = "geneactiv_bin/skdh_gnactv_sample.bin"
URIS = ("s3://bucket/P1_L.cwa", "file:///data/P1_R.bin", "P1_L.csv", "upload")
EXAMPLES = int(os.environ.get("WEARFLOW_FUZZ_EXAMPLES", "0"))

pytestmark = pytest.mark.timeout(120)


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=EXAMPLES or max_examples,
        deadline=2000,  # ms per example; a slow path is a finding, a hang hits the timeout
        derandomize=not EXAMPLES,  # a longer search on request explores new ground
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _seed(relative: str) -> bytes:
    return (REAL / relative).read_bytes()


def _small_csv() -> bytes:
    rng = np.random.default_rng(3)
    time_s = 1_700_000_000.0 + np.arange(250) / 25.0
    accel = rng.normal(0.0, 0.3, (250, 3))
    accel[:, 2] += 1.0
    rows = [
        f"{t:.3f},{x:.4f},{y:.4f},{z:.4f},31.5" for t, (x, y, z) in zip(time_s, accel, strict=True)
    ]
    return ("time,x,y,z,temperature\n" + "\n".join(rows) + "\n").encode()


SEEDS = {"cwa": _seed(CWA), "bin": _seed(BIN), "csv": _small_csv()}


def check(data: bytes, uri: str) -> Recording | None:
    """Assert the readers' contract for one input; the Recording when one was read."""
    try:
        recording = read_recording(data, uri)
    except ReaderError as exc:
        assert exc.subject == uri
        assert exc.message and exc.message.splitlines() == [exc.message], exc.message
        assert str(exc) == f"{uri}: {exc.message}"
        assert not exc.message.startswith("cannot decode"), f"unforeseen failure: {exc.message}"
        return None
    n = recording.n_samples
    assert recording.validate(uri) is recording
    assert recording.time_s.dtype == np.float64 and recording.accel_g.dtype == np.float64
    assert np.all(np.isfinite(recording.accel_g))
    assert 0.05 <= recording.sampling_rate_hz <= 10_000.0
    assert recording.time_s[0] <= time.time() + 86400.0
    assert recording.temperature_c is None or recording.temperature_c.shape == (n,)
    assert all(flag and "\n" not in flag and len(flag) < 80 for flag in recording.flags)
    return recording


# ---------------------------------------------------------------------------- byte mutations

EXTREME_BYTES = (
    b"\x00", b"\xff", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff",
    b"\x80\x00\x00\x00", b"MD", b"AX", b"\x1f\x8b", b"\r\n", b"\n", b",", b"nan", b"-1",
    b"99999999999999999999", b"1e308", b"Recorded Data\r\n",
)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """The seed after 1-4 bit flips, truncations, insertions, deletions or overwrites."""
    data = bytearray(seed)
    ops = draw(st.lists(st.sampled_from(["flip", "cut", "insert", "delete", "overwrite"]),
                        min_size=1, max_size=4))  # fmt: skip
    for op in ops:
        n = len(data)
        if op == "cut":
            data = data[: draw(st.integers(0, n))]
        elif op == "insert":
            at = draw(st.integers(0, n))
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif n == 0:
            continue
        elif op == "flip":
            data[draw(st.integers(0, n - 1))] ^= 1 << draw(st.integers(0, 7))
        elif op == "delete":
            at = draw(st.integers(0, n - 1))
            del data[at : at + draw(st.integers(1, 1024))]
        else:
            at = draw(st.integers(0, n - 1))
            value = draw(st.sampled_from(EXTREME_BYTES))
            data[at : at + len(value)] = value
    return bytes(data)


@st.composite
def maybe_gzipped(draw: st.DrawFn, inner: st.SearchStrategy[bytes]) -> bytes:
    """The bytes as they are, gzipped, gzipped and cut short, or gzipped twice."""
    data = draw(inner)
    wrap = draw(st.sampled_from(["none", "none", "gzip", "cut", "twice"]))
    if wrap == "gzip":
        return gzip.compress(data, mtime=0)
    if wrap == "twice":
        return gzip.compress(gzip.compress(data, mtime=0), mtime=0)
    if wrap == "cut":
        packed = gzip.compress(data, mtime=0)
        return packed[: draw(st.integers(0, len(packed)))]
    return data


@fuzz_settings(150)
@given(data=st.binary(max_size=4096), uri=st.sampled_from(URIS))
def test_arbitrary_bytes(data: bytes, uri: str) -> None:
    check(data, uri)


PREFIXES = (b"MD\xfc\x03", b"MD", b"Device Identity\r\n", b"GENEA/", b"\x1f\x8b\x08\x00",
            b"time,x,y,z\n", b"\xef\xbb\xbftime;x;y;z\n", b"------------ Data File Created By "
            b"ActiGraph GT3X+ ActiLife v6 at 30 Hz\n")  # fmt: skip


@fuzz_settings(150)
@given(prefix=st.sampled_from(PREFIXES), rest=st.binary(max_size=3000))
def test_arbitrary_bytes_behind_each_format_signature(prefix: bytes, rest: bytes) -> None:
    check(prefix + rest, "upload")


@fuzz_settings(120)
@given(data=maybe_gzipped(mutated(SEEDS["cwa"])), uri=st.sampled_from(URIS))
def test_mutated_cwa(data: bytes, uri: str) -> None:
    check(data, uri)


@fuzz_settings(120)
@given(data=maybe_gzipped(mutated(SEEDS["bin"])), uri=st.sampled_from(URIS))
def test_mutated_geneactiv_bin(data: bytes, uri: str) -> None:
    check(data, uri)


@fuzz_settings(120)
@given(data=maybe_gzipped(mutated(SEEDS["csv"])), uri=st.sampled_from(URIS))
def test_mutated_csv(data: bytes, uri: str) -> None:
    check(data, uri)


# ------------------------------------------------------------------ header and field extremes

BLOCK_FIELDS = ("rate_code", "sample_count", "timestamp", "timestamp_offset", "device_fractional",
                "session_id", "sequence_id", "light_scale", "axes_packing", "temperature",
                "magic", "length")  # fmt: skip
# Packed CWA times: 2000-01-01 (an unset AX3 clock), 2063-12-31 (the last encodable, in the
# future) and 2030; then 0 and all ones, which the format reserves as invalid.
CWA_TIMES = (
    *(int(v) for v in fmt.pack_timestamps(np.array([946684800, 2966371199, 1893456000], np.int64))),
    0,
    0xFFFFFFFF,
)


def _field_value(field: str) -> st.SearchStrategy[int]:
    info = np.iinfo(fmt.BLOCK_DTYPE[field])
    special = [0, 1, int(info.max), int(info.min), int(info.max) // 2]
    if field == "rate_code":
        special += [0x40, 0x45, 0x4A, 0x4F, 0xC0, 0xCF]
    elif field == "axes_packing":
        special += [0x30, 0x32, 0x62, 0x92, 0x31]
    elif field == "timestamp":
        special += list(CWA_TIMES)
    elif field == "sample_count":
        special += [80, 81, 120, 121, 240]
    return st.sampled_from(special) | st.integers(int(info.min), int(info.max))


@st.composite
def cwa_with_extreme_fields(draw: st.DrawFn) -> bytes:
    """The real .cwa with block fields (and header bytes) set to extremes, checksums fixed."""
    seed = SEEDS["cwa"]
    n = (len(seed) - fmt.HEADER_SIZE) // fmt.BLOCK_SIZE
    blocks = np.frombuffer(seed, fmt.BLOCK_DTYPE, count=n, offset=fmt.HEADER_SIZE).copy()
    for field in draw(st.lists(st.sampled_from(BLOCK_FIELDS), min_size=1, max_size=3)):
        which = draw(st.sampled_from(["all", "one", "from", "every-other"]))
        at = draw(st.integers(0, n - 1))
        chosen = {"all": slice(None), "one": slice(at, at + 1), "from": slice(at, None),
                  "every-other": slice(at % 2, None, 2)}[which]  # fmt: skip
        blocks[field][chosen] = draw(_field_value(field))
    if draw(st.integers(0, 4)):  # mostly: let the bad values past the checksum
        words = blocks.view("<u2").reshape(n, 256)
        blocks["checksum"] = (-words[:, :255].sum(axis=1, dtype=np.uint16)).astype(np.uint16)
    header = bytearray(seed[: fmt.HEADER_SIZE])
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.sampled_from([2, 4, 5, 11, 21, 35, 36, 37, 41]))  # length .. firmware
        header[at : at + 4] = draw(st.sampled_from([b"\x00" * 4, b"\xff" * 4, b"\x7f\xff\xff\xff"]))
    return bytes(header) + blocks.tobytes()


BIN_KEYS = ("Measurement Frequency", "Number of Pages", "x gain", "x offset", "y gain", "z gain",
            "z offset", "Config Time", "Time Zone", "Page Time", "Temperature", "Device Type",
            "Sequence Number")  # fmt: skip
BIN_VALUES = ("", "0", "-1", "0.001", "0.0000000000000000001", "1e308", "nan", "inf", "abc",
              "1200", "1201", "1000000", "2147483648", "4294967297", "9" * 400, "1" + "0" * 320,
              "0." + "0" * 320 + "1", "GMT +99:99", "GMT -00:30", "1970-01-01 00:00:00:000",
              "2099-12-31 23:59:59:999", "9999-12-31 23:59:59:999", "0001-01-01 00:00:00:000",
              "2019-13-45 25:61:61:000", "2019-05-21 16:16:1Z:312", "2019-05-21T16:16:43+02:00",
              "2019-05-21 16:16:43:500\r\nRecorded Data")  # fmt: skip


def _constant(text: str) -> Callable[[re.Match[str]], str]:
    """A re.sub replacement taken literally (no backslash escapes)."""
    return lambda _: text


@st.composite
def bin_with_extreme_fields(draw: st.DrawFn) -> bytes:
    """The real .bin with header or page fields set to extreme or malformed values."""
    text = SEEDS["bin"].decode("latin-1")
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(BIN_KEYS))
        value = draw(st.sampled_from(BIN_VALUES))
        pattern = re.compile(re.escape(key) + r":[^\r\n]*")
        hits = list(pattern.finditer(text))
        if draw(st.booleans()):  # every occurrence (header and all pages)
            text = pattern.sub(_constant(f"{key}:{value}"), text)
        elif hits:
            hit = hits[draw(st.integers(0, len(hits) - 1))]
            text = f"{text[: hit.start()]}{key}:{value}{text[hit.end() :]}"
    return text.encode("latin-1")


CELLS = ("", "nan", "NaN", "inf", "-inf", "1e400", "1e-320", "-99999", "abc", "0", "1e308",
         "2023-01-01T00:00:00Z", "0000-01-01", "9999-12-31T23:59:59", "1970-01-01 00:00:00",
         "2147483648", '"1,5"')  # fmt: skip
HEADERS = ("time,x,y,z", "timestamp,X,Y,Z", "Time,accel_x,accel_y,accel_z,temp",
           "t,x_m/s^2,y_m/s^2,z_m/s^2", "time,x_mg,y_mg,z_mg", "time,x,y", "unix_time,a,b,c,d",
           "time,x,y,z,extra,more")  # fmt: skip


@st.composite
def generated_csv(draw: st.DrawFn) -> bytes:
    """A CSV table with extreme starts, rates, time formats, units and damaged cells."""
    n = draw(st.integers(0, 60))
    start = draw(st.sampled_from([1.7e9, 0.0, -1e9, 6.3e8, 4.2e9, 1e12, 1.7e12, 1.7e15, 1e300]))
    step = draw(st.sampled_from([0.04, 0.01, 1.0, 10.0, 1000.0, 1e-6, 0.0, -0.04]))
    header = draw(st.sampled_from(HEADERS))
    width = header.count(",")
    iso = draw(st.booleans())
    scale = draw(st.sampled_from([1.0, 9.80665, 1000.0, 1e6]))
    rows = []
    for i in range(n):
        t = start + i * step
        stamp = repr(t)
        if iso and abs(t) < 2.5e11:
            stamp = str(np.datetime64(int(t * 1000), "ms")) + draw(
                st.sampled_from(["", "Z", "+02:00"])
            )
        cells = [stamp, *(f"{v * scale:.4f}" for v in (0.1, -0.2, 0.97, 30.0, 1.0)[:width])]
        rows.append(cells)
    for _ in range(draw(st.integers(0, 5)) if n else 0):
        row = rows[draw(st.integers(0, n - 1))]
        row[draw(st.integers(0, width))] = draw(st.sampled_from(CELLS))
    if n and draw(st.booleans()):  # duplicated or reordered rows
        at = draw(st.integers(0, n - 1))
        rows.insert(draw(st.integers(0, n)), list(rows[at]))
    sep = draw(st.sampled_from([",", ";", "\t"]))
    lines = [header.replace(",", sep), *(sep.join(cells) for cells in rows)]
    return ("\n".join(lines) + "\n").encode()


@fuzz_settings(200)
@given(data=maybe_gzipped(cwa_with_extreme_fields()))
def test_cwa_header_and_block_fields_at_extremes(data: bytes) -> None:
    check(data, "P1_L.cwa")


@fuzz_settings(200)
@given(data=maybe_gzipped(bin_with_extreme_fields()))
def test_geneactiv_header_and_page_fields_at_extremes(data: bytes) -> None:
    check(data, "P1_L.bin")


@fuzz_settings(200)
@given(data=maybe_gzipped(generated_csv()))
def test_generated_csv_tables(data: bytes) -> None:
    check(data, "P1_L.csv")


# ------------------------------------------------------------------------------ bounded memory


def _peak_bytes(read: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        read()
    except ReaderError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def _with_field(seed: bytes, key: bytes, value: bytes) -> bytes:
    return re.sub(re.escape(key) + rb":[^\r\n]*", key + b":" + value, seed, count=1)


def _cwa_blocks_set(field: str, value: int) -> bytes:
    seed = SEEDS["cwa"]
    n = (len(seed) - fmt.HEADER_SIZE) // fmt.BLOCK_SIZE
    blocks = np.frombuffer(seed, fmt.BLOCK_DTYPE, count=n, offset=fmt.HEADER_SIZE).copy()
    blocks[field] = value
    words = blocks.view("<u2").reshape(n, 256)
    blocks["checksum"] = (-words[:, :255].sum(axis=1, dtype=np.uint16)).astype(np.uint16)
    return seed[: fmt.HEADER_SIZE] + blocks.tobytes()


HUGE_CLAIMS = {
    "bin-2^31-pages": _with_field(SEEDS["bin"], b"Number of Pages", b"2147483648"),
    "bin-10^30-pages": _with_field(SEEDS["bin"], b"Number of Pages", b"1" + b"0" * 30),
    "bin-1MHz": _with_field(SEEDS["bin"], b"Measurement Frequency", b"1000000 Hz"),
    "cwa-sample-count-max": _cwa_blocks_set("sample_count", 0xFFFF),
    "cwa-sequence-jumps": _cwa_blocks_set("sequence_id", 0xFFFFFFFF),
    "cwa-offset-min": _cwa_blocks_set("timestamp_offset", -32768),
    "csv-huge-times": b"time,x,y,z\n1e300,0,0,1\n2e300,0,0,1\n",
}


@pytest.mark.parametrize("data", HUGE_CLAIMS.values(), ids=HUGE_CLAIMS.keys())
def test_claims_of_huge_sizes_cost_memory_in_proportion_to_the_input(data: bytes) -> None:
    check(data, "claim")
    peak = _peak_bytes(lambda: read_recording(data, "claim"))
    # Measured: about 20x for a .cwa (float64 times and g per 6-byte sample), 7x for a .bin.
    assert peak < 32 * len(data) + (1 << 20), f"peak {peak} bytes for {len(data)} input bytes"


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """50 MB of zeros, gzipped to about 49 kB (a ratio of 1000)."""
    return gzip.compress(bytes(50_000_000), mtime=0)


def test_gzip_bomb_stops_at_the_lowered_cap(bomb: bytes) -> None:
    limit = 1 << 20
    with pytest.raises(ReaderError) as caught:
        read_recording(bomb, "bomb.cwa.gz", max_decompressed_bytes=limit)
    assert caught.value.message.startswith(f"decompressed size exceeds {limit} bytes")
    assert caught.value.subject == "bomb.cwa.gz"
    peak = _peak_bytes(lambda: read_recording(bomb, "bomb.cwa.gz", max_decompressed_bytes=limit))
    assert peak < 3 * limit  # the cap, a chunk and the buffer's headroom, not 50 MB


def test_gzip_bomb_stops_at_the_default_ratio_cap(bomb: bytes) -> None:
    peak = _peak_bytes(lambda: read_recording(bomb, "bomb.csv.gz"))
    with pytest.raises(ReaderError, match=r"decompressed size exceeds \d+ bytes"):
        read_recording(bomb, "bomb.csv.gz")
    assert peak < 2 * 200 * len(bomb) + (4 << 20)


def test_nested_gzip_bomb_stops_at_the_cap(bomb: bytes) -> None:
    twice = gzip.compress(bomb, mtime=0)  # about 250 bytes
    peak = _peak_bytes(lambda: read_recording(twice, "bomb.gz.gz"))
    with pytest.raises(ReaderError, match="decompressed size exceeds 1048576 bytes"):
        read_recording(twice, "bomb.gz.gz")  # the 1 MiB floor of the cap applies
    assert peak < 8 << 20


def test_cap_is_exact_for_legitimate_content() -> None:
    content = SEEDS["csv"]
    packed = gzip.compress(content, mtime=0)
    assert read_recording(packed, "x.csv.gz", max_decompressed_bytes=len(content)).n_samples == 250
    with pytest.raises(ReaderError, match="decompressed size exceeds"):
        read_recording(packed, "x.csv.gz", max_decompressed_bytes=len(content) - 1)
