"""Reading a long .cwa whole and streamed: speed and peak memory at 1, 7 and 14 days.

A 14-day 100 Hz recording (quick: 24 h at 50 Hz) is generated a day at a time
(``wearflow.demo.synthetic.generate_recording``, one seed per day, each day
starting one sample period after the last) and written with the project's AX3
writer (``wearflow.demo.cwa_writer.write_cwa``); the days' blocks are joined into
one continuous file (sequence numbers carried on, checksums recomputed), and the
1- and 7-day files (quick: 6 and 12 h) are its first blocks. Then each read runs
in a fresh child process that does nothing else:

* ``whole``: ``read_recording`` on the file's bytes (1 and 7 days; 14 days would
  need about 8 GB and says nothing new);
* ``stream``: ``iter_recording`` on the open file, an hour a chunk, touching
  every sample (a running sum), keeping nothing.

Figures: seconds (wall and CPU), hours of data per CPU-second, and the child's
peak resident memory two ways: ``VmHWM`` reported by the child, and
``ru_maxrss`` from ``os.wait4`` in the parent (which can start at the parent's
own peak, see README.md; the parent here is small). The streamed peaks of the
three lengths should agree within 10%. This child-process entry point is
``python -m benchmarks.streaming_read --child MODE ...``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import GB, REPO_ROOT, Figure, child_report, fmt_s, load_average

FULL = (100.0, (24.0, 7 * 24.0, 14 * 24.0), 2)  # rate, file lengths in hours, whole-file reads
QUICK = (50.0, (6.0, 12.0, 24.0), 2)
SEED = 17
CHUNK_S = 3600.0


def run(quick: bool) -> Iterator[Figure]:
    rate_hz, hours, n_whole = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="wearflow-bench-streaming-") as tmp:
        began = time.perf_counter()
        gen, _ = _measured("generate", tmp, str(rate_hz), *(str(h) for h in hours))
        yield Figure("streaming_generate",
                     f"{fmt_s(time.perf_counter() - began)} to simulate and write "
                     f"{', '.join(f'{h:g} h' for h in hours)} at {rate_hz:g} Hz "
                     f"({', '.join(f'{s / 1e6:.0f} MB' for s in gen['sizes'])}; setup)")
        stream_peaks = []
        for i, h in enumerate(hours):
            path = str(Path(tmp) / f"P001_L_{h:g}h.cwa")
            modes = ("whole", "stream") if i < n_whole else ("stream",)
            for mode in modes:
                rep, maxrss_gb = _measured(mode, path)
                if mode == "stream":
                    stream_peaks.append(rep["peak_rss_gb"])
                data_h = rep["duration_s"] / 3600.0
                yield Figure(
                    f"read_{mode}_{h:g}h_{rate_hz:g}hz",
                    f"{data_h / rep['cpu_s']:.1f} h/CPU-s ({fmt_s(rep['cpu_s'])} CPU, "
                    f"{fmt_s(rep['wall_s'])} wall), peak {rep['peak_rss_gb']:.3f} GB VmHWM, "
                    f"{maxrss_gb:.3f} GB ru_maxrss ({rep['n_samples']} samples, "
                    f"{data_h:.1f} h of data; load {load_average()})",
                )
        spread = (max(stream_peaks) - min(stream_peaks)) / min(stream_peaks)
        yield Figure("read_stream_peak_spread",
                     f"{spread * 100:.1f}% between the shortest and longest file "
                     f"({', '.join(f'{p:.3f}' for p in stream_peaks)} GB; target within 10%)")


def _measured(mode: str, *args: str) -> tuple[dict[str, Any], float]:
    """Run one child; its last printed JSON line, and its ``ru_maxrss`` in GB."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.streaming_read", "--child", mode, *args],
            cwd=REPO_ROOT, stdout=out, stderr=err,
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            tail = " ".join(err.read().decode(errors="replace").strip().splitlines()[-3:])
            raise RuntimeError(f"child {mode} failed (exit {child.returncode}): {tail[:400]}")
        lines = out.read().decode().strip().splitlines()
    return json.loads(lines[-1]), usage.ru_maxrss * 1024 / GB  # ru_maxrss is in KiB


def _generate(folder: Path, rate_hz: float, hours: Sequence[float]) -> None:
    """Write the longest file a day at a time; the shorter ones are its first blocks."""
    from wearflow.demo.cwa_writer import write_cwa
    from wearflow.demo.synthetic import generate_recording
    from wearflow.readers import _cwa_format as fmt

    longest = max(hours)
    day_h = min(24.0, longest)
    blocks_per_hour = round(3600 * rate_hz / 80)  # the writer's 80 samples a block
    start_s: float | None = None
    sequence = 0
    paths = {h: folder / f"P001_L_{h:g}h.cwa" for h in hours}
    with paths[longest].open("wb") as handle:
        for day in range(int(np.ceil(longest / day_h))):
            start = None if start_s is None else datetime.fromtimestamp(
                start_s + day * day_h * 3600, UTC)
            rec, _ = generate_recording(seed=SEED + day, days=day_h / 24, sampling_rate_hz=rate_hz,
                                        start_utc=start)
            start_s = float(rec.time_s[0]) if start_s is None else start_s
            buffer = io.BytesIO()
            write_cwa(buffer, rec.time_s, rec.accel_g, rec.temperature_c, rate_hz, serial=50_017)
            content = buffer.getvalue()
            if day == 0:
                handle.write(content[:fmt.HEADER_SIZE])
            blocks = np.frombuffer(content, fmt.BLOCK_DTYPE, offset=fmt.HEADER_SIZE).copy()
            blocks["sequence_id"] += sequence  # one continuous logging session
            sequence += len(blocks)
            words = blocks.view("<u2").reshape(len(blocks), 256)
            blocks["checksum"] = (-words[:, :255].sum(axis=1, dtype=np.uint16)).astype(np.uint16)
            handle.write(blocks.tobytes())
            del rec, buffer, content, blocks, words
    sizes = []
    for h in hours:
        size = fmt.HEADER_SIZE + round(h * blocks_per_hour) * fmt.BLOCK_SIZE
        if h != longest:
            with paths[longest].open("rb") as source, paths[h].open("wb") as target:
                target.write(source.read(size))
        sizes.append(paths[h].stat().st_size)
    child_report(sizes=sizes)


def _whole(path: Path) -> None:
    from wearflow.readers import read_recording

    wall, cpu = time.perf_counter(), time.process_time()
    recording = read_recording(path.read_bytes(), f"file://{path}")
    child_report(cpu_s=time.process_time() - cpu, wall_s=time.perf_counter() - wall,
                 n_samples=recording.n_samples, duration_s=recording.duration_s,
                 flags=list(recording.flags))


def _stream(path: Path) -> None:
    from wearflow.readers import iter_recording

    wall, cpu = time.perf_counter(), time.process_time()
    n, total, first, last = 0, 0.0, None, 0.0
    with path.open("rb") as handle:
        stream = iter_recording(handle, f"file://{path}", chunk_s=CHUNK_S)
        for chunk in stream:
            n += chunk.n_samples
            total += float(chunk.accel_g.sum())
            first = float(chunk.time_s[0]) if first is None else first
            last = float(chunk.time_s[-1])
    child_report(cpu_s=time.process_time() - cpu, wall_s=time.perf_counter() - wall,
                 n_samples=n, duration_s=last - (first or last), flags=list(stream.flags),
                 method=stream.method, checksum=total)


def _child_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streaming_read --child")
    parser.add_argument("--child", required=True, choices=("generate", "whole", "stream"))
    parser.add_argument("path", type=Path)
    parser.add_argument("rest", nargs="*", type=float)
    args = parser.parse_args(argv)
    if args.child == "generate":
        _generate(args.path, args.rest[0], args.rest[1:])
    elif args.child == "whole":
        _whole(args.path)
    else:
        _stream(args.path)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
