"""Throughput and peak memory of one task on a long recording, and of the reader alone.

A 7-day 100 Hz recording (quick: 1 day at 50 Hz) is generated
(``wearflow.demo.synthetic.generate_recording``, seeded) and written as an AX3 .cwa
by a first child process. Then, each in a fresh child process of its own so
that its peak memory (``VmHWM``) is that work's and the CPU clock holds nothing else:

* ``reader``: read the file's bytes and decode them with ``read_recording``;
* ``task``: the file as the one sensor file of a study run with ``run_study`` on the
  inline executor (``benchmarks.stream_task``'s child: catalog, plan, the task,
  aggregation), once with ``builtin:wrist`` and once with ``builtin:wrist-stream``, side
  by side: the task's own CPU (read, solution, QC, write; the worker's stage clock) and
  the process's peak, an upper bound of a worker's for that task. The streaming
  solution reads the file in two passes of chunks, never whole.

Figures are hours of sensor data per CPU-second (CPU: user + system of every
thread of the child) and peak resident memory, next to the field notes' peers
on the same kind of file. This child-process entry point is
``python -m benchmarks.throughput --child MODE ...``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from benchmarks._common import (
    SKDH_FULL_H_PER_CPU_S,
    SKDH_FULL_PEAK_GB,
    SKDH_READ_CPU_S,
    SKDH_READ_PEAK_GB,
    Figure,
    child_report,
    fmt_s,
    load_average,
    run_child,
)

FULL = (7.0, 100.0)  # days, Hz: the field notes' reference recording
QUICK = (1.0, 50.0)
SEED = 11
STUDY = """\
study: THROUGHPUT
input: raw/
output: results/
time_zone: UTC
files:
  sensor: ["{{participant}}_{{side}}.cwa"]
solutions:
  - name: wrist
    pipeline: {pipeline}
"""


def run(quick: bool) -> Iterator[Figure]:
    days, rate_hz = QUICK if quick else FULL
    label = f"{days:g}d_{rate_hz:g}hz"
    with tempfile.TemporaryDirectory(prefix="wearflow-bench-throughput-") as tmp:
        path = Path(tmp) / "P001_L.cwa"
        gen = run_child("throughput", "generate", str(path), str(days), str(rate_hz))
        data_h = gen["duration_s"] / 3600.0
        what = (f"1 file, {gen['duration_s']:.0f} s of data, {gen['n_samples']} samples, "
                f"{gen['size_bytes'] / 1e6:.0f} MB .cwa")
        yield Figure(
            f"generate_{label}",
            f"{fmt_s(gen['generate_wall_s'])} to simulate, {fmt_s(gen['write_wall_s'])} to "
            f"write the .cwa, peak {gen['peak_rss_gb']:.1f} GB ({what}; setup, not a figure "
            "of wearflow)",
        )

        reader = run_child("throughput", "reader", str(path))
        yield Figure(
            f"throughput_reader_{label}",
            f"{data_h / reader['cpu_s']:.1f} h/CPU-s ({fmt_s(reader['cpu_s'])} CPU, "
            f"{fmt_s(reader['wall_s'])} wall), peak {reader['peak_rss_gb']:.1f} GB "
            f"({what})" + ("" if quick else
                           f"; field notes: SKDH ReadCwa about {SKDH_READ_CPU_S:g} s "
                           f"({data_h / SKDH_READ_CPU_S:.0f} h/s), {SKDH_READ_PEAK_GB} GB; "
                           "a numpy decode 47 h/CPU-s, a compiled one 135"),
        )

        for pipeline in ("builtin:wrist", "builtin:wrist-stream"):
            root = Path(tmp) / pipeline.replace(":", "-")
            (root / "raw").mkdir(parents=True)
            (root / "raw" / path.name).symlink_to(path)
            (root / "study.yaml").write_text(STUDY.format(pipeline=pipeline))
            task = run_child("stream_task", "study", str(root))
            stages = ", ".join(f"{k} {v:.1f}" for k, v in task["stages"].items())
            yield Figure(
                f"throughput_task_{pipeline.split(':')[1]}_{label}",
                f"{data_h / task['task_cpu_s']:.2f} h/CPU-s for the task ({pipeline}: "
                f"{fmt_s(task['task_cpu_s'])} CPU: {stages} s), peak {task['peak_rss_gb']:.2f} "
                f"GB (the process: catalog, plan, task, aggregate; {what}; streamed: "
                f"{task['streamed']}); field notes: SKDH full pipeline "
                f"{SKDH_FULL_H_PER_CPU_S} h/CPU-s, {SKDH_FULL_PEAK_GB} GB; load {load_average()}",
            )


# ----------------------------------------------------------------------------- child side


def _generate(path: Path, days: float, rate_hz: float) -> None:
    from wearflow.demo.cwa_writer import write_cwa
    from wearflow.demo.synthetic import generate_recording

    began = time.perf_counter()
    rec, _ = generate_recording(seed=SEED, days=days, sampling_rate_hz=rate_hz)
    generated = time.perf_counter()
    write_cwa(path, rec.time_s, rec.accel_g, rec.temperature_c, rate_hz, serial=50_011)
    child_report(generate_wall_s=generated - began,
                 write_wall_s=time.perf_counter() - generated,
                 duration_s=rec.duration_s, n_samples=rec.n_samples,
                 size_bytes=path.stat().st_size)


def _read(path: Path) -> tuple[object, float, float]:
    from wearflow.readers import read_recording

    wall, cpu = time.perf_counter(), time.process_time()
    recording = read_recording(path.read_bytes(), f"file://{path}")
    return recording, time.process_time() - cpu, time.perf_counter() - wall


def _reader(path: Path) -> None:
    import wearflow.readers  # noqa: F401  (imports are not the reader's work)

    _recording, cpu_s, wall_s = _read(path)
    child_report(cpu_s=cpu_s, wall_s=wall_s)


def _child_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput --child")
    parser.add_argument("--child", required=True, choices=("generate", "reader"))
    parser.add_argument("path", type=Path)
    parser.add_argument("rest", nargs="*", help="generate: DAYS RATE_HZ")
    args = parser.parse_args(argv)
    if args.child == "generate":
        _generate(args.path, float(args.rest[0]), float(args.rest[1]))
    else:
        _reader(args.path)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
