"""Scaling with worker processes: the same small study on LocalExecutor(1) and (2).

A synthetic study (``wearflow.demo.synthetic.write_study``: 4 participants x 2 wrists
of 1 day at 25 Hz, 8 .cwa files; quick: 2 participants x 2 wrists of 12 h) is
processed by ``run_study`` with a fresh output folder and state database for
each executor. Reported per executor:

* the wall time of the whole ``run_study``;
* start-up: from the start of the processing phase (first progress callback)
  to the first task starting in a worker (process pool spawn, then each worker
  imports scikit-digital-health in its initializer);
* tasks: from the first task's start to the last task's finish (the workers'
  own time stamps, in the state database), and the mean task duration;
* the CPU time the pool's workers used, and the cores that makes on average
  over the processing phase: with 2 workers, well under 2 means the machine
  did not give them 2 cores (other load), whatever wearflow does.

then the speed-up of 2 workers over 1, and what one worker's start costs in a
fresh interpreter. The machine has 2 cores: other load on it (the load average
is printed) takes from the 2-worker figures first.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from benchmarks._common import REPO_ROOT, Figure, fmt_s, load_average, make_study

FULL = (4, 1.0, 25.0)  # participants (x 2 wrists), days, Hz
QUICK = (2, 0.5, 25.0)
SEED = 5

_WORKER_START = """
import json, time
wall, cpu = time.perf_counter(), time.process_time()
import wearflow.worker
import skdh
print(json.dumps([time.perf_counter() - wall, time.process_time() - cpu]))
"""


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _epoch(iso_utc: str) -> float:
    return datetime.fromisoformat(iso_utc.replace("Z", "+00:00")).timestamp()


def run(quick: bool) -> Iterator[Figure]:
    from wearflow.demo.synthetic import write_study
    from wearflow.executors import LocalExecutor
    from wearflow.runner import run_study
    from wearflow.state import State

    participants, days, rate_hz = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="wearflow-bench-scaling-") as tmp:
        root = Path(tmp)
        files = write_study(root, participants=participants, days=days,
                            sampling_rate_hz=rate_hz, seed=SEED)
        what = f"{len(files)} files of {days * 86400:.0f} s at {rate_hz:g} Hz"
        walls: dict[int, float] = {}
        tasks: dict[int, float] = {}
        for workers in (1, 2):
            stamps: list[float] = []

            def progress(_phase: str, _done: int, _total: int, stamps: list[float] = stamps
                         ) -> None:
                stamps.append(time.time())

            study = make_study(root, output=f"results-w{workers}")
            children_cpu = _children_cpu_s()
            began = time.perf_counter()
            report = run_study(study, executor=LocalExecutor(workers), progress=progress)
            walls[workers] = time.perf_counter() - began
            # the pool's workers have exited and been waited for: their CPU is counted
            workers_cpu = _children_cpu_s() - children_cpu
            if report.done != len(files):
                raise RuntimeError(f"{workers} worker(s): {report.done} of {len(files)} done "
                                   f"({report})")
            state = State(study.state_url)
            try:
                spans = [(_epoch(t.started_utc), _epoch(t.finished_utc))
                         for t, _f in state.tasks.for_current_files()
                         if t.started_utc and t.finished_utc]
            finally:
                state.close()
            first_start = min(s for s, _ in spans)
            tasks[workers] = max(e for _, e in spans) - first_start
            mean_task = sum(e - s for s, e in spans) / len(spans)
            cores = workers_cpu / (stamps[-1] - stamps[0])
            yield Figure(
                f"scaling_local_{workers}_worker{'s' if workers > 1 else ''}",
                f"{fmt_s(walls[workers])} wall for run_study: start-up "
                f"{fmt_s(first_start - stamps[0])}, tasks {fmt_s(tasks[workers])} (mean "
                f"{fmt_s(mean_task)} per task); the workers used {fmt_s(workers_cpu)} CPU, "
                f"{cores:.2f} cores on average while processing ({what}, load "
                f"{load_average()})",
            )
        speedup = walls[1] / walls[2]
        yield Figure(
            "scaling_speedup_2_vs_1",
            f"{speedup:.2f}x on run_study ({100 * speedup / 2:.0f}% parallel efficiency), "
            f"{tasks[1] / tasks[2]:.2f}x on the tasks alone ({what})",
        )
    done = subprocess.run([sys.executable, "-c", _WORKER_START], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True)
    wall_s, cpu_s = (float(x) for x in done.stdout.strip().splitlines()[-1][1:-1].split(","))
    yield Figure(
        "scaling_worker_import",
        f"{fmt_s(wall_s)} wall, {fmt_s(cpu_s)} CPU for a fresh interpreter to import "
        "wearflow.worker and scikit-digital-health (each pool worker pays it once; see the "
        "bytecode line of the machine facts)",
    )
