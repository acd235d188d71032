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
from wearflow.redact import redact_url

if TYPE_CHECKING:
    from rich.console import Console

    from wearflow.runner import RunReport

__all__ = ["DEMO_STUDY", "SECOND_VISITS", "print_summary", "write_demo_study"]

DEMO_STUDY = """\
# A synthetic demo study written by `wearflow demo` (seeded; ground truth in truth/).
study: DEMO-001
input: raw/
output: results/
time_zone: UTC
files:
  sensor: ["{participant}_{visit}_{side}.cwa"]   # P001_V1_L.cwa: participant, visit, wrist
  sides: {left: [L, LW, left], right: [R, RW, right]}
solutions:
  - name: wrist
    pipeline: builtin:wrist-stream
reports:
  after_run: true   # participant, study and run reports (HTML) under results/reports/
"""


SECOND_VISITS = 2
"""The first this many demo participants also have a second visit (V2)."""


def write_demo_study(directory: Path, *, participants: int, days: float, seed: int,
                     sampling_rate_hz: float = 50.0) -> Path:
    """Write (or reuse) the synthetic recordings and the study file; return the study file.

    Every participant has a visit V1; the first :data:`SECOND_VISITS` also a V2, four
    weeks later (``P001_V1_L.cwa``, ``P001_V2_L.cwa``, ...).
    """
    from wearflow.demo.synthetic import write_study

    directory.mkdir(parents=True, exist_ok=True)
    study_file = directory / STUDY_FILE_NAME
    second = min(SECOND_VISITS, participants)
    expected = [directory / "raw" / f"P{k:03d}_{v}_{s}.cwa" for k in range(1, participants + 1)
                for v in (("V1", "V2") if k <= second else ("V1",)) for s in "LR"]
    if not (study_file.exists() and all(p.exists() for p in expected)):
        write_study(directory, participants=participants, days=days, seed=seed,
                    sampling_rate_hz=sampling_rate_hz, second_visit_participants=second)
    if not study_file.exists():
        study_file.write_text(DEMO_STUDY, encoding="utf-8")
    return study_file


def print_summary(console: Console, study: Study, report: RunReport) -> None:
    """Print the study summary table (one row per participant, visit and day) and where
    the outputs are."""
    output = Path(strip_file_scheme(study.output))
    for folder in report.summary_dirs:
        summary = pd.read_csv(output / folder / "summary.csv",
                              dtype={"participant": str, "visit": str}, keep_default_na=False,
                              na_values={"wear_hours": [""], "sleep_minutes": [""],
                                         "active_minutes": [""]})
        table = Table("participant", "visit", "date", "wear h", "sleep min (night)",
                      "active min",
                      title=f"{study.study}: per-participant summary (both wrists combined)")
        for row in summary.to_dict("records"):
            table.add_row(str(row["participant"]), str(row["visit"]), str(row["date"]),
                          _fmt(row["wear_hours"]), _fmt(row["sleep_minutes"]),
                          _fmt(row["active_minutes"]))
        console.print(table)
    console.print(f"per-wrist results:   {output / 'single-wrist-processed'}")
    console.print(f"participant results: {output / 'processed'}")
    console.print(f"analysis-ready tables: wearflow export {_study_dir(study)} "
                  "[--format parquet]", highlight=False, soft_wrap=True)
    console.print(f"log: {output / 'logs' / 'wearflow.log'}; state: "
                  f"{redact_url(study.state_url)}")


def _study_dir(study: Study) -> str:
    """The folder holding the study file (what the commands take)."""
    return str(Path(study.source).parent) if study.source else "."


def _fmt(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) and value == value else "-"
