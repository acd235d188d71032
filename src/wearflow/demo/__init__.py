"""`wearflow demo`: a synthetic study written in a real device format, run end to end.

Demo data live here, outside the product: the seeded generator with its ground
truth (:mod:`wearflow.demo.synthetic`) and an AX3 .cwa writer
(:mod:`wearflow.demo.cwa_writer`). This package may import the product; the
product never imports it (only the ``wearflow demo`` command does, lazily).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rich.table import Table

from wearflow.config import STUDY_FILE_NAME, Study, strip_file_scheme

if TYPE_CHECKING:
    from rich.console import Console

    from wearflow.runner import RunReport

__all__ = ["DEMO_STUDY", "print_summary", "write_demo_study"]

DEMO_STUDY = """\
# A synthetic demo study written by `wearflow demo` (seeded; ground truth in truth/).
study: DEMO-001
input: raw/
output: results/
time_zone: UTC
files:
  sensor: ["{participant}_{side}.cwa", "{participant}_{side}.bin", "{participant}_{side}.csv"]
  sides: {left: [L, LW, left], right: [R, RW, right]}
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


def write_demo_study(directory: Path, *, participants: int, days: float, seed: int) -> Path:
    """Write (or reuse) the synthetic recordings and the study file; return the study file."""
    from wearflow.demo.synthetic import write_study

    directory.mkdir(parents=True, exist_ok=True)
    study_file = directory / STUDY_FILE_NAME
    expected = [directory / "raw" / f"P{k:03d}_{s}.cwa" for k in range(1, participants + 1)
                for s in "LR"]
    if not (study_file.exists() and all(p.exists() for p in expected)):
        write_study(directory, participants=participants, days=days, seed=seed)
    if not study_file.exists():
        study_file.write_text(DEMO_STUDY, encoding="utf-8")
    return study_file


def print_summary(console: Console, study: Study, report: RunReport) -> None:
    """Print the study summary table (one row per participant and day) and where outputs are."""
    output = Path(strip_file_scheme(study.output))
    for folder in report.summary_dirs:
        summary = pd.read_csv(output / folder / "summary.csv", dtype={"participant": str})
        table = Table("participant", "date", "wear h", "sleep min (night)", "active min",
                      title=f"{study.study}: per-participant summary (both wrists combined)")
        for row in summary.to_dict("records"):
            table.add_row(str(row["participant"]), str(row["date"]), _fmt(row["wear_hours"]),
                          _fmt(row["sleep_minutes"]), _fmt(row["active_minutes"]))
        console.print(table)
    console.print(f"per-wrist results:   {output / 'single-wrist-processed'}")
    console.print(f"participant results: {output / 'processed'}")
    console.print(f"log: {output / 'logs' / 'wearflow.log'}; state: {study.state_url}")


def _fmt(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) and value == value else "-"
