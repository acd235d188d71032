"""Building the reports: the demo study, and a generated 100-participant study (quick: 3).

The studies are generated with the demo's seeded generator and processed once
(kept under ``.bench-cache/``, so a second ``make bench`` only builds reports);
what is timed is :func:`wearflow.services.reports.build_reports` alone, into an
empty ``reports/`` folder: every participant report, the study report and the
latest run's report. The 100-participant study (1.25-day recordings at 25 Hz:
102 participant-visits, two of them second visits) is built on one process and
on the study's process pool.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from benchmarks._common import REPO_ROOT, Figure, fmt_s, load_average, timed
from wearflow.config import load_study
from wearflow.demo import write_demo_study
from wearflow.executors import LocalExecutor
from wearflow.runner import run_study
from wearflow.services.reports import build_reports

CACHE = REPO_ROOT / ".bench-cache"


def _processed(name: str, *, participants: int, days: float, rate_hz: float) -> Path:
    root = CACHE / name
    study_file = write_demo_study(root, participants=participants, days=days, seed=0,
                                  sampling_rate_hz=rate_hz)
    run_study(load_study(study_file), executor=LocalExecutor(2))  # nothing new: no work
    return root


def _time_reports(root: Path, workers: int | None) -> tuple[float, float, int]:
    shutil.rmtree(root / "results" / "reports", ignore_errors=True)
    took, built = timed(lambda: build_reports(load_study(root), workers=workers))
    return took.wall_s, took.cpu_s, len(built.built)


def run(quick: bool) -> Iterator[Figure]:
    demo = _processed("reports-demo", participants=4, days=2.0, rate_hz=50.0)
    wall, cpu, n = _time_reports(demo, None)
    yield Figure("reports demo", f"{n} reports in {fmt_s(wall)} (CPU {fmt_s(cpu)}, load "
                                 f"{load_average()})")
    participants = 3 if quick else 100
    big = _processed(f"reports-{participants}", participants=participants, days=1.25,
                     rate_hz=25.0)
    for workers in (1, 2):
        wall, cpu, n = _time_reports(big, workers)
        yield Figure(f"reports {participants} participants, {workers} process(es)",
                     f"{n} reports in {fmt_s(wall)} ({fmt_s(wall / n)} each; this process's "
                     f"CPU {fmt_s(cpu)}; load {load_average()})")
