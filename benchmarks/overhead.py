"""Per-task orchestration overhead: ``run_study`` on one file vs the solution's own work.

Two measurements of the same thing, on a generated 1-day 50 Hz .cwa (and, in
full mode, a 7-day 100 Hz one, the recording a trial produces):

* **in-run** (the figure): one ``run_study`` (inline executor, one-file study,
  fresh output folder and state database) minus the time its task spent in
  the bare work, which the worker times itself: fetching the bytes, decoding
  them (``read_recording``) and running ``builtin:wrist``. What is left is
  everything wearflow adds: catalog with hashing, state database, plan, claim
  and lease, the integrity hash, QC, provenance, result files, per-participant
  aggregation, study summary, audit trail, issues. Wall and CPU (the process's
  CPU minus the task thread's CPU in those stages). Both sides come from the
  same run, so the solution's own run-to-run spread (5-20 % here) cancels.
* **A/B** (a cross-check): the bare work run alone (read the bytes,
  ``read_recording``, ``load_solution(builtin:wrist).run``) and a separate full
  run, medians; noisy at the 1 % level because the two runs of the solution differ.

scikit-digital-health is imported and the solution run once before timing
(a worker pays that once per process, not per task). The first ``run_study``
in the process is reported on its own line (imports of the writing and
aggregation code); a last, profiled run splits the overhead by stage.
"""

from __future__ import annotations

import cProfile
import pstats
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    yield _study(*(STUDY_QUICK if quick else STUDY_FULL))
    if not quick:  # a trial's recording: the fixed cost against a week of data
        yield from _run(LONG_DAYS, LONG_RATE_HZ, 2, breakdown=False)


STUDY_FULL, STUDY_QUICK = (8, 1.0, 25.0), (2, 0.5, 25.0)  # participants, days, Hz


def _study(participants: int, days: float, rate_hz: float) -> Figure:
    """The same in-run accounting over a study: what a run costs per task once its
    once-per-run work (state database, summary) is shared by many files."""
    from wearflow.demo.synthetic import write_study
    from wearflow.executors import InlineExecutor
    from wearflow.runner import run_study

    with tempfile.TemporaryDirectory(prefix="wearflow-bench-overhead-study-") as tmp:
        root = Path(tmp)
        files = write_study(root, participants=participants, days=days,
                            sampling_rate_hz=rate_hz, seed=SEED)
        study = make_study(root)
        total, report = timed(lambda: run_study(study, executor=InlineExecutor()))
        if report.done != len(files):
            raise RuntimeError(f"run_study did not process every file: {report}")
        bare = sum(report.task_stage_s[k] for k in BARE_STAGES)
        bare_cpu = sum(report.task_stage_cpu_s[k] for k in BARE_STAGES)
        over, over_cpu = total.wall_s - bare, total.cpu_s - bare_cpu
        return Figure(
            f"overhead_per_task_study_{len(files)}_files",
            f"{100 * over / bare:.1f}% wall ({fmt_s(over / len(files))} per task), "
            f"{100 * over_cpu / bare_cpu:.1f}% CPU ({fmt_s(over_cpu / len(files))} per task) on "
            f"top of the tasks' own fetch+decode+solution ({fmt_s(bare)}) in one run_study of "
            f"{participants} participants x 2 wrists ({len(files)} files of "
            f"{days * 86400:.0f} s at {rate_hz:g} Hz, {report.participants_aggregated} "
            f"participant results), inline executor, load {load_average()}",
        )


BARE_STAGES = ("fetch", "decode", "solution")  # what the bare solution does too


@dataclass(frozen=True)
class _Full:
    """One full run_study: its wall/CPU and the task's bare stages inside it."""

    total: Timed
    bare_wall_s: float
    bare_cpu_s: float
    stages_s: dict[str, float]

    @property
    def over_wall_s(self) -> float:
        return self.total.wall_s - self.bare_wall_s

    @property
    def over_cpu_s(self) -> float:
        return self.total.cpu_s - self.bare_cpu_s


def _run(days: float, rate_hz: float, repeats: int, *, breakdown: bool) -> Iterator[Figure]:
    from wearflow.config import SolutionConfig
    from wearflow.demo.cwa_writer import write_cwa
    from wearflow.demo.synthetic import generate_recording
    from wearflow.executors import InlineExecutor
    from wearflow.readers import read_recording
    from wearflow.runner import run_study
    from wearflow.solutions import load_solution

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

        def full(tag: str) -> _Full:
            study = make_study(root, output=f"results-{tag}")
            total, report = timed(lambda: run_study(study, executor=InlineExecutor()))
            if report.exit_code != 0 or report.done != 1:
                raise RuntimeError(f"run_study did not process the file: {report}")
            return _Full(total, sum(report.task_stage_s[k] for k in BARE_STAGES),
                         sum(report.task_stage_cpu_s[k] for k in BARE_STAGES),
                         dict(report.task_stage_s))

        if breakdown:  # the first _run also warms up: imports, pipeline steps
            timed(bare)
            first_bare, _ = timed(bare)
            first_full = full("first").total
        bares: list[Timed] = []
        fulls: list[_Full] = []
        for k in range(repeats):
            bares.append(timed(bare)[0])
            fulls.append(full(str(k)))

        label = f"{days:g}d_{rate_hz:g}hz"
        base_wall = median([f.bare_wall_s for f in fulls])
        base_cpu = median([f.bare_cpu_s for f in fulls])
        over_wall = median([f.over_wall_s for f in fulls])
        over_cpu = median([f.over_cpu_s for f in fulls])
        yield Figure(
            f"overhead_per_task_{label}",
            f"{100 * over_wall / base_wall:.1f}% wall ({fmt_s(over_wall)}), "
            f"{100 * over_cpu / base_cpu:.1f}% CPU ({fmt_s(over_cpu)}) on top of the task's "
            f"own fetch+decode+solution ({fmt_s(base_wall)} wall, {fmt_s(base_cpu)} CPU) "
            f"inside the same run_study; median of {repeats}, 1 file of {days * 86400:.0f} s "
            f"at {rate_hz:g} Hz, inline executor, load {load_average()}",
        )
        in_task = {k: median([f.stages_s.get(k, 0.0) for f in fulls])
                   for k in ("verify", "qc", "write")}
        outside = over_wall - sum(in_task.values())
        yield Figure(
            f"overhead_split_{label}",
            "in the task: " + ", ".join(f"{k} {fmt_s(v)}" for k, v in in_task.items())
            + f" (verify: waiting for the integrity hash after decoding); outside the task "
              f"(catalog hash, state, plan, aggregation, summary, audit): {fmt_s(outside)}",
        )
        b_wall = median([t.wall_s for t in bares])
        b_cpu = median([t.cpu_s for t in bares])
        f_wall = median([f.total.wall_s for f in fulls])
        f_cpu = median([f.total.cpu_s for f in fulls])
        yield Figure(
            f"overhead_ab_{label}",
            f"{100 * (f_wall - b_wall) / b_wall:+.1f}% wall, {100 * (f_cpu - b_cpu) / b_cpu:+.1f}%"
            f" CPU: full run_study {fmt_s(f_wall)} vs the bare solution run on its own "
            f"{fmt_s(b_wall)} (medians of {repeats}; bare runs ranged "
            f"{fmt_s(min(t.wall_s for t in bares))}-{fmt_s(max(t.wall_s for t in bares))}: "
            f"the spread between two runs of the same solution)",
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


def _breakdown(call: Callable[[], object]) -> Figure:
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
