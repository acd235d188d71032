"""A streaming task end to end: ``builtin:wrist-stream`` on 1-, 7- and 14-day 100 Hz .cwa.

Each file (``wearflow.demo.synthetic.generate_recording``, seeded, written as an AX3
.cwa by a child process of its own) is the one sensor file of a study that a fresh
child process runs with ``run_study`` on the inline executor, after the warm-up a pool
worker does before its first task (imports): cataloging (the file's
hash), planning, the task (the file hashed before and after, both passes decoded chunk
by chunk straight from the file, the algorithms, QC, the result written) and the
participant's aggregation, all in that one process. Its ``VmHWM`` is therefore an upper
bound of a worker's peak for that task; its CPU seconds are everything the study cost.
The figures: hours of data per CPU-second and peak memory per length (the worker's
during the task, as the task's meter measures it from a reset high-water mark, and the
whole study process's), and how far the peaks lie apart (issue 17 asks for at most 10%).
Quick: 0.5- and 1-day files at 100 Hz.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from benchmarks._common import Figure, child_report, fmt_s, load_average, run_child

FULL_DAYS = (1.0, 7.0, 14.0)
QUICK_DAYS = (0.5, 1.0)
RATE_HZ = 100.0
SEED = 17
STUDY = """\
study: STREAM-BENCH
input: raw/
output: results/
time_zone: UTC
files:
  sensor: ["{participant}_{side}.cwa"]
solutions:
  - name: wrist
    pipeline: builtin:wrist-stream
"""


def run(quick: bool) -> Iterator[Figure]:
    peaks: list[float] = []
    task_peaks: list[float] = []
    for days in QUICK_DAYS if quick else FULL_DAYS:
        with tempfile.TemporaryDirectory(prefix="wearflow-bench-stream-") as tmp:
            root = Path(tmp)
            (root / "raw").mkdir()
            (root / "study.yaml").write_text(STUDY)
            path = root / "raw" / "P001_L.cwa"
            gen = run_child("stream_task", "generate", str(path), str(days))
            task = run_child("stream_task", "study", str(root))
            data_h = gen["duration_s"] / 3600.0
            peaks.append(task["peak_rss_gb"])
            task_peaks.append(task["task_peak_gb"])
            stages = ", ".join(f"{k} {v:.1f}" for k, v in task["stages"].items())
            yield Figure(
                f"stream_task_{days:g}d_{RATE_HZ:g}hz_task",
                f"{data_h / task['task_cpu_s']:.1f} h/CPU-s for the task alone "
                f"({fmt_s(task['task_cpu_s'])} CPU: {stages} s; read, solution, QC, write), "
                f"worker peak during the task {task['task_peak_gb']:.3f} GB",
            )
            yield Figure(
                f"stream_task_{days:g}d_{RATE_HZ:g}hz",
                f"{data_h / task['cpu_s']:.1f} h/CPU-s for the whole study "
                f"({fmt_s(task['cpu_s'])} CPU, {fmt_s(task['wall_s'])} wall: catalog, plan, "
                f"task, aggregate), peak {task['peak_rss_gb']:.2f} GB ({gen['n_samples']} "
                f"samples, {gen['size_bytes'] / 1e6:.0f} MB .cwa; streamed: "
                f"{task['streamed']}; load {load_average()})",
            )
    for name, what, values in (
            ("stream_task_peak_spread", "whole-study process peaks", peaks),
            ("stream_task_worker_peak_spread", "worker peaks during the task", task_peaks)):
        spread = (max(values) - min(values)) / min(values) * 100.0
        yield Figure(name, f"{what} {', '.join(f'{p:.3f}' for p in values)} GB: the "
                           f"largest {spread:.1f}% above the smallest (target: flat, within "
                           "10%)")


# ----------------------------------------------------------------------------- child side


def _generate(path: Path, days: float) -> None:
    from wearflow.demo.cwa_writer import write_cwa
    from wearflow.demo.synthetic import generate_recording

    rec, _ = generate_recording(seed=SEED, days=days, sampling_rate_hz=RATE_HZ)
    write_cwa(path, rec.time_s, rec.accel_g, rec.temperature_c, RATE_HZ, serial=50_017)
    child_report(duration_s=rec.duration_s, n_samples=rec.n_samples,
                 size_bytes=path.stat().st_size)


def _study(root: Path) -> None:
    import wearflow.executors.inline as inline
    from wearflow import load_study, run_study
    from wearflow.executors import InlineExecutor
    from wearflow.solutions.stream import StreamSolution
    from wearflow.task import TaskOutcome, TaskSpec
    from wearflow.worker import warm_up

    streamed: list[bool] = []
    original = StreamSolution.run_stream

    def counted(self: StreamSolution, *args: object, **kwargs: object) -> object:
        streamed.append(True)
        return original(self, *args, **kwargs)

    StreamSolution.run_stream = counted
    outcomes: list[TaskOutcome] = []
    execute = inline.execute

    def kept(task: TaskSpec, run_id: str) -> TaskOutcome:
        outcome = execute(task, run_id)
        outcomes.append(outcome)
        return outcome

    inline.execute = kept
    wall, cpu = time.perf_counter(), time.process_time()
    # as a pool worker starts (executors.local): scikit-digital-health's and numba's
    # imports before the first task, counted in the whole study's CPU, not the task's
    warm_up(ignore_sigint=False)
    report = run_study(load_study(root), executor=InlineExecutor())
    if report.done != 1:
        raise RuntimeError(f"the study did not finish its file: {report}")
    (outcome,) = outcomes
    child_report(cpu_s=time.process_time() - cpu, wall_s=time.perf_counter() - wall,
                 streamed=bool(streamed), task_cpu_s=outcome.cpu_s,
                 task_peak_gb=(outcome.peak_rss_bytes or 0) / 1e9,
                 stages=dict(outcome.stage_cpu_s))


def _child_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stream_task --child")
    parser.add_argument("--child", required=True, choices=("generate", "study"))
    parser.add_argument("path", type=Path)
    parser.add_argument("days", type=float, nargs="?")
    args = parser.parse_args(argv)
    if args.child == "generate":
        _generate(args.path, args.days)
    else:
        _study(args.path)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
