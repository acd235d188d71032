"""Per-task orchestration overhead: ``run_study`` on one file vs the same solution run bare.

One generated 1-day 50 Hz .cwa (both quick and full: the point is the fixed cost
around one task, not the data size):

* bare: read the bytes, ``read_recording``, ``load_solution(builtin:wrist).run``,
  in this process;
* full: ``run_study`` with the inline executor on a one-file study with a fresh
  output folder and state database (catalog with hashing, plan, audit, the
  worker's hash check, provenance, result files, per-participant aggregation
  and the study summary).

scikit-digital-health is imported and the solution run once before timing
(a worker pays that once per process, not per task). The first ``run_study``
in the process is reported on its own line (imports of the writing and
aggregation code); then bare and full alternate ``repeats`` times and the
median is reported. A last, profiled run splits the overhead by stage.
"""

from __future__ import annotations

import cProfile
import pstats
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks._common import Figure, Timed, fmt_s, load_average, make_study, median, timed

DAYS, RATE_HZ, SEED = 1.0, 50.0, 7
LONG_DAYS, LONG_RATE_HZ = 7.0, 100.0

# (label, file name suffix, function name) of the stages the profiled run reports
_STAGES = (
    ("state open", "wearflow/state.py", "__init__"),
    ("catalog", "wearflow/catalog.py", "scan"),
    ("sync_files", "wearflow/state.py", "sync_files"),
    ("make_plan", "wearflow/plan.py", "make_plan"),
    ("worker.execute", "wearflow/worker.py", "execute"),
    ("  read", "wearflow/readers/__init__.py", "read_recording"),
    ("  solution", "wearflow/solutions/skdh.py", "run"),
    ("  qc", "wearflow/qc.py", "recording_qc"),
    ("write_result (all calls)", "wearflow/results.py", "write_result"),
    ("aggregate+summary", "wearflow/runner.py", "_aggregate"),
    ("parquet encoding (all calls)", "wearflow/results.py", "parquet_bytes"),
    ("audit (all calls)", "wearflow/audit.py", "record_many"),
    ("issues", "wearflow/runner.py", "_sync_issues"),
)


def run(quick: bool) -> Iterator[Figure]:
    yield from _run(DAYS, RATE_HZ, 1 if quick else 3, breakdown=True)
    if not quick:  # a trial's recording: the fixed cost against a week of data
        yield from _run(LONG_DAYS, LONG_RATE_HZ, 1, breakdown=False)


def _run(days: float, rate_hz: float, repeats: int, *, breakdown: bool) -> Iterator[Figure]:
    from wearflow.config import SolutionConfig
    from wearflow.executors import InlineExecutor
    from wearflow.readers import read_recording, write_cwa
    from wearflow.runner import run_study
    from wearflow.solutions import load_solution
    from wearflow.synthetic import generate_recording

    with tempfile.TemporaryDirectory(prefix="wearflow-bench-overhead-") as tmp:
        root = Path(tmp)
        raw = root / "raw"
        raw.mkdir()
        path = raw / "P001_L.cwa"
        rec, _ = generate_recording(seed=SEED, days=days, sampling_rate_hz=rate_hz)
        write_cwa(path, rec.time_s, rec.accel_g, rec.temperature_c, rate_hz, serial=50_011)
        del rec
        uri = f"file://{path}"
        config = SolutionConfig(name="wrist", pipeline="builtin:wrist")

        def bare() -> None:
            recording = read_recording(path.read_bytes(), uri)
            result = load_solution(config).run(recording, {"time_zone": "UTC"})
            if not result.tables:
                raise RuntimeError("the builtin solution returned no tables")

        def full(tag: str) -> None:
            study = make_study(root, output=f"results-{tag}")
            report = run_study(study, executor=InlineExecutor())
            if report.exit_code != 0 or report.done != 1:
                raise RuntimeError(f"run_study did not process the file: {report}")

        if breakdown:  # the first _run also warms up: imports, pipeline steps
            timed(bare)
            first_bare, _ = timed(bare)
            first_full, _ = timed(lambda: full("first"))
        bares: list[Timed] = []
        fulls: list[Timed] = []
        for k in range(repeats):
            bares.append(timed(bare)[0])
            fulls.append(timed(partial(full, str(k)))[0])

        b_wall, f_wall = median([t.wall_s for t in bares]), median([t.wall_s for t in fulls])
        b_cpu, f_cpu = median([t.cpu_s for t in bares]), median([t.cpu_s for t in fulls])
        over_wall, over_cpu = f_wall - b_wall, f_cpu - b_cpu
        yield Figure(
            f"overhead_per_task_{days:g}d_{rate_hz:g}hz",
            f"{100 * over_wall / b_wall:.0f}% ({fmt_s(over_wall)} wall; "
            f"{100 * over_cpu / b_cpu:.0f}%, {fmt_s(over_cpu)} CPU) on top of the bare "
            f"solution ({fmt_s(b_wall)} wall, {fmt_s(b_cpu)} CPU; full run_study "
            f"{fmt_s(f_wall)}), median of {repeats}, 1 file of {days * 86400:.0f} s at "
            f"{rate_hz:g} Hz, inline executor, load {load_average()}",
        )
        if not breakdown:
            return
        cold = first_full.wall_s - first_bare.wall_s
        yield Figure(
            "overhead_first_run_in_process",
            f"{100 * cold / first_bare.wall_s:.0f}% ({fmt_s(cold)} wall) for the first "
            f"run_study of a process (bare {fmt_s(first_bare.wall_s)}, full "
            f"{fmt_s(first_full.wall_s)})",
        )
        yield _breakdown(partial(full, "profiled"))


def _breakdown(call: Callable[[], None]) -> Figure:
    """Profile one full run; report the cumulative seconds of its main stages."""
    profiler = cProfile.Profile()
    profiler.enable()
    call()
    profiler.disable()
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = 0.0
    by_stage = dict.fromkeys((label for label, _, _ in _STAGES), 0.0)
    for (filename, _line, func), row in stats.items():
        cumulative = float(row[3])
        if func == "run_study" and filename.endswith("wearflow/runner.py"):
            total = cumulative
        for label, suffix, name in _STAGES:
            if func == name and filename.endswith(suffix):
                by_stage[label] += cumulative
    outside = total - by_stage["  read"] - by_stage["  solution"]
    parts = ", ".join(f"{label.strip()} {fmt_s(s)}" for label, s in by_stage.items() if s > 0)
    return Figure(
        "overhead_breakdown",
        f"one profiled run_study {fmt_s(total)}, of which outside read+solution "
        f"{fmt_s(outside)} (cProfile inflates Python-heavy stages): {parts}",
    )
