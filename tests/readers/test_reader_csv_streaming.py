"""CSV streams in row blocks and equals the whole-file read bit for bit (readers/_csv_stream).

Every CSV table the CSV reader tests build, the real CSVs with reference outputs
(../shared/data/real/expected/; the other real files are in test_reader_streaming),
tables spanning several pandas blocks (time units found from the median, jittered
and rounded clocks, ActiLife header clocks), the cases left to the whole-file read
(not UTF-8, column types changing down the file, times out of order, a line too
wide), bad files (same one-line ReaderError naming the file), and the memory of a
long file measured in a child process (VmHWM).
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_reader_csv import TIMES, N, accel, iso, table
from test_reader_streaming import REAL, both, outcome, streamed

from reader_helpers import ACTILIFE_HEADER
from wearflow.errors import ReaderError
from wearflow.readers import iter_recording, read_recording
from wearflow.readers._csv_stream import BLOCK_ROWS

CHUNKS = (0.7, 3600.0)
EXPECTED_CSVS = sorted(
    p.relative_to(REAL).as_posix() for p in (REAL / "expected").glob("*.csv*"))


def method(data: bytes, uri: str = "x.csv", **kw: object) -> str:
    return iter_recording(io.BytesIO(data), uri, **kw).method  # type: ignore[arg-type]


def same_and_streamed(data: bytes, uri: str = "x.csv", **kw: object) -> None:
    """Both paths agree at a tiny and a large chunk, and the file streamed natively."""
    for chunk_s in CHUNKS:
        both(data, uri, chunk_s, **kw)
    assert method(data, uri, **kw) == "streamed"


# ------------------------------------------------------------------ the CSV reader's tables

TABLES = {
    "iso-z": (table("time,x,y,z", iso(TIMES), accel(N)), "UTC"),
    "iso-offset": (table("timestamp,X,Y,Z", iso(TIMES, "+02:00", shift_h=2), accel(N)), "UTC"),
    "naive-in-zone": (table("Time,accel_x,accel_y,accel_z", iso(TIMES, "", shift_h=1),
                            accel(N)), "Europe/Berlin"),
    "unix-s": (table("unix_time,Accelerometer X,Accelerometer Y,Accelerometer Z",
                     list(map(str, TIMES)), accel(N)), "UTC"),
    "unix-ms": (table("time,ax,ay,az", [str(round(t * 1000)) for t in TIMES], accel(N)),
                "UTC"),
    "semicolons-temperature": (table("timestamp;x;y;z;temperature_c", iso(TIMES),
                                     np.column_stack([accel(N), np.full(N, 31.5)]), sep=";"),
                               "UTC"),
    "m/s2-named": (table("time,x_m/s^2,y_m/s^2,z_m/s^2", iso(TIMES), accel(N, 9.80665)), "UTC"),
    "m/s2-bracketed": (table("time,x (m/s^2),y (m/s^2),z (m/s^2)", iso(TIMES),
                             accel(N, 9.80665)), "UTC"),
    "m/s2-from-magnitude": (table("time,x,y,z", iso(TIMES), accel(N, 9.80665)), "UTC"),
    "mg": (table("time,x_mg,y_mg,z_mg", iso(TIMES), accel(N, 1000.0)), "UTC"),
    "dst": (table("time,x,y,z", iso(1679792400.0 + np.arange(N) * 10.0, "", shift_h=1),
                  accel(N)), "Europe/Berlin"),
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_csv_reader_tables_stream_as_they_read_whole(name: str) -> None:
    data, zone = TABLES[name]
    same_and_streamed(data, device_time_zone=zone)
    same_and_streamed(gzip.compress(data, mtime=0), "x.csv.gz", device_time_zone=zone)


def test_missing_rows_stream_and_rows_going_back_are_read_whole() -> None:
    times = TIMES.copy()
    times[100] = times[99]  # a duplicate: still in order
    text = table("time,x,y,z", iso(times), accel(N)).decode().splitlines()
    text[301] = text[301].rsplit(",", 1)[0] + ","  # empty z on data row 300
    data = "\n".join(text).encode()
    same_and_streamed(data)
    assert "rows_with_missing_values_dropped=1" in read_recording(data, "x.csv").flags
    times[200:203] = times[150]  # the clock stepped back: read_csv sorts for the rate
    back = table("time,x,y,z", iso(times), accel(N))
    for chunk_s in CHUNKS:
        both(back, "x.csv", chunk_s)
    assert method(back) == "whole-file"


def test_actilife_header_clock_and_timestamps_that_fall_back_to_it() -> None:
    header = ACTILIFE_HEADER
    rows = [f"{x:.3f},{y:.3f},{z:.3f}" for x, y, z in accel(BLOCK_ROWS + 500)]
    same_and_streamed((header + "\n".join(rows)).encode(), "raw.csv")
    named = "Accelerometer X,Accelerometer Y,Accelerometer Z\n" + "\n".join(rows)
    same_and_streamed((header + named).encode(), "raw.csv", device_time_zone="Europe/Berlin")
    stamps = [f"2/3/2021 08:00:{i % 60:02d}.000," for i in range(len(rows))]  # not ISO
    dated = "Timestamp,Accelerometer X,Accelerometer Y,Accelerometer Z\n" + "\n".join(
        s + r for s, r in zip(stamps, rows, strict=True))
    same_and_streamed((header + dated).encode(), "raw.csv")


@pytest.mark.parametrize("relative", EXPECTED_CSVS)
def test_expected_real_csvs_stream_as_they_read_whole(relative: str) -> None:
    data = (REAL / relative).read_bytes()
    for chunk_s in CHUNKS:
        both(data, relative, chunk_s)
    if not isinstance(outcome(lambda: read_recording(data, relative)), tuple):
        assert method(data, relative) == "streamed"


# ------------------------------------------------------------------ several pandas blocks


def long_table(n: int, time_format: str, *, rate_hz: float = 100.0, jitter_s: float = 0.0,
               seed: int = 3, temperature: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    time_s = 1_700_000_000.0 + np.arange(n) / rate_hz + rng.uniform(0, jitter_s, n)
    values = rng.normal(0, 0.3, (n, 3)).round(4)
    if time_format == "iso":
        stamps = iso(time_s)
    else:
        scale = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[time_format]
        stamps = [f"{t:.3f}" if scale == 1 else str(round(t * scale)) for t in time_s]
    header = "time,x,y,z" + (",temperature" if temperature else "")
    lines = [header]
    for stamp, (x, y, z) in zip(stamps, values, strict=True):
        lines.append(f"{stamp},{x},{y},{z}" + (",30.5" if temperature else ""))
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns", "iso"])
def test_tables_over_several_blocks(unit: str) -> None:
    n = 2 * BLOCK_ROWS + 1234
    same_and_streamed(long_table(n, unit, jitter_s=0.002, temperature=unit == "ms"))


def test_a_rate_rounded_by_the_clock_and_a_gap() -> None:
    n = BLOCK_ROWS + 5000
    text = long_table(n, "ms", rate_hz=80.0).decode().splitlines()  # 12/13 ms steps
    del text[40_000:41_000]  # 12.5 s without samples
    same_and_streamed("\n".join(text).encode())


# ------------------------------------------------------------------ left to the whole-file read


def test_what_is_read_whole_reads_the_same() -> None:
    lines = table("time,x,y,z", iso(TIMES), accel(N)).splitlines()
    latin = b"\n".join([lines[0] + b",r\xe9f", *(line + b",1" for line in lines[1:])])
    types_change = long_table(BLOCK_ROWS + 100, "s").splitlines()
    types_change[-5] = types_change[-5].rsplit(b",", 1)[0] + b",bad"  # z of the last block
    last = long_table(BLOCK_ROWS + 100, "s").splitlines()
    last[-1] = b"noon," + last[-1].split(b",", 1)[1]  # a string in the last block's times
    wide = table("time,x,y,z", iso(TIMES), accel(N)) + b"1" + b",1" * 300 + b"\n"
    for data in (latin, b"\n".join(types_change), b"\n".join(last) + b"\n", wide):
        for chunk_s in CHUNKS:
            both(data, "x.csv", chunk_s)
        if data is not wide:
            assert method(data) == "whole-file"
    with pytest.raises(ReaderError, match="CSV line 502 has more than 256 fields"):
        iter_recording(io.BytesIO(wide), "x.csv")


# ------------------------------------------------------------------ bad files


@pytest.mark.parametrize("data", [
    b"a,b,c\n1,2,3\n",
    b"time,x,y,z\nyesterday,0,0,1\nnoon,0,0,1\n",
    b"time,x,y,z\n2020-01-01T00:00:00Z,0,0,1\n",
    b"time,x,y,z\n",
    b"time,x,y,z\n0,0,0,1\n1,0,0,1\n",
    b"time,x,y,z\n5,0,0,1\n5,0,0,1\n",
    b"time,x,y,z\n,0,0,1\n,0,0,1\n",
    table("time,x,y,z", iso(TIMES), accel(N, 4096.0)),
    b"time,x,y,z\n" + b"1,2,3,4,5\n" * 3,
])
def test_bad_tables_fail_the_same_way(data: bytes) -> None:
    whole = outcome(lambda: read_recording(data, "bad.csv"))
    assert isinstance(whole, tuple) and whole[1] == "bad.csv"
    for chunk_s in CHUNKS:
        both(data, "bad.csv", chunk_s)


def test_a_long_bad_csv_fails_naming_the_file() -> None:
    """A start in the future is found streaming, at the first chunk: a ReaderError naming
    the file, the whole-file read's message."""
    data = long_table(BLOCK_ROWS + 10, "s").replace(b"\n17", b"\n27")  # year 2055
    assert method(data, "future.csv") == "streamed"
    with pytest.raises(ReaderError) as caught:
        list(iter_recording(io.BytesIO(data), "future.csv"))
    assert caught.value.subject == "future.csv"
    assert "in the future" in caught.value.message
    with pytest.raises(ReaderError) as whole:
        read_recording(data, "future.csv")
    assert whole.value.message == caught.value.message
    assert outcome(lambda: streamed(data, "future.csv")) == (whole.value.message, "future.csv")


# ------------------------------------------------------------------ memory

_CHILD = textwrap.dedent("""
    import json, sys
    from wearflow.readers import iter_recording, read_recording

    def peak():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

    path, how = sys.argv[1], sys.argv[2]
    read_recording(b"time,x,y,z\\n1700000000,0,0,1\\n1700000001,0,0,1\\n", "warm.csv")
    # a worker's warm-up: numba and the readers' compiled kernels, once per process
    from wearflow import _jit
    _jit.prepare("wearflow.readers._finish_kernels", "wearflow.readers._cwa_kernels")
    base = peak()
    n = 0
    if how == "stream":
        with open(path, "rb") as fh:
            for chunk in iter_recording(fh, path, chunk_s=600.0):
                n += chunk.n_samples
    else:
        with open(path, "rb") as fh:
            n = read_recording(fh.read(), path).n_samples
    print(json.dumps({"base": base, "peak": peak(), "n": n}))
""")


def _child_peak(path: Path, how: str) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path), how], check=True,
                          capture_output=True, text=True, timeout=600)
    result: dict[str, int] = json.loads(done.stdout)
    return result


def test_a_long_csv_streams_in_bounded_memory(tmp_path: Path) -> None:
    """Four hours at 100 Hz (1.44 million rows, 61 MB): the child's peak (VmHWM) grows
    by a few 10-minute chunks while streaming, against several times the file whole."""
    n = 4 * 3600 * 100
    rows = [f"{x:.4f},{y:.4f},{z:.4f}" for x, y, z in accel(1000)]
    path = tmp_path / "long.csv"
    with path.open("w") as fh:
        fh.write("time,x,y,z,temperature\n")
        start_ms = 1_700_000_000_000
        for lo in range(0, n, 100_000):
            fh.write("".join(f"{start_ms + 10 * i},{rows[i % 1000]},31.25\n"
                             for i in range(lo, min(n, lo + 100_000))))
    stream = _child_peak(path, "stream")
    assert stream["n"] == n
    grown = stream["peak"] - stream["base"]
    # a 10-minute chunk is 60,000 rows: 2.4 MB of float64 (time, 3 axes, temperature);
    # a pandas block of 65,536 rows and its text about as much again
    assert grown < 40e6, grown
    whole = _child_peak(path, "whole")
    assert whole["n"] == n
    assert whole["peak"] - whole["base"] > 5 * grown
    print(f"VmHWM growth: streamed {grown / 1e6:.1f} MB, whole-file "
          f"{(whole['peak'] - whole['base']) / 1e6:.1f} MB (base {stream['base'] / 1e6:.0f} MB)")
