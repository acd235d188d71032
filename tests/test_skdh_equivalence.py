"""wearflow's per-wrist tables are exactly what scikit-digital-health computes.

GENEActiv .bin files: SKDH reads the file itself (``skdh.io.ReadBin``) and runs
the same pipeline file; every number must match wearflow's tables exactly.
Axivity .cwa: wearflow's reader deliberately differs from ``skdh.io.ReadCwa``
(timestamps interpolated per the format's specification, up to ~16 ms apart,
and the specification's temperature formula, ~2.7 degC lower; see
readers/cwa.py), so SKDH runs the pipeline file on wearflow's decoded arrays:
that proves the adapter adds, drops and rounds nothing.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from wearflow import load_study, run_study
from wearflow.demo.synthetic import write_study
from wearflow.executors import InlineExecutor
from wearflow.readers import read_recording
from wearflow.solutions.skdh import builtin_pipeline_path
from wearflow.solutions.skdh_core import bouts_table, tidy_table

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = """\
study: EQ
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.bin", "{participant}_{side}.cwa"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


def skdh_direct(inputs: dict[str, Any]) -> dict[str, Any]:
    import skdh

    import wearflow.solutions.skdh_steps  # noqa: F401 - the built-in names its steps

    pipeline = skdh.Pipeline()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline.load(file=str(builtin_pipeline_path("wrist")))
        return dict(pipeline.run(**inputs))


def assert_tables_match(results: dict[str, Any], folder: Path, time_s: Any) -> None:
    for step, table in (("ActivityLevelClassification", "activity_level_classification"),
                        ("Sleep", "sleep"), ("MinuteSeries", "minute_series")):
        ours = pd.read_parquet(folder / f"{table}.parquet")
        pd.testing.assert_frame_equal(tidy_table(results[step]), ours, check_exact=True)
    if "wear" in results.get("DETACH", {}):
        ours = pd.read_parquet(folder / "detach_wear.parquet")
        pd.testing.assert_frame_equal(bouts_table(results["DETACH"]["wear"], time_s), ours,
                                      check_exact=True)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, real_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("eq")
    write_study(root, participants=1, days=2.0, seed=11)
    shutil.copyfile(real_dir / "geneactiv_bin/ggir_history_TESTfile.bin", root / "raw/G1_L.bin")
    shutil.copyfile(real_dir / "geneactiv_bin/wristpy_example_geneactiv.bin",
                    root / "raw/G1_R.bin")
    (root / "study.yaml").write_text(STUDY)
    assert run_study(load_study(root), executor=InlineExecutor()).exit_code == 0
    return root


def result_folder(root: Path, name: str) -> Path:
    (folder,) = (root / "results/single-wrist-processed/wrist" / name.split("_")[0]
                 / name).iterdir()
    return folder


@pytest.mark.parametrize("name", ["G1_L.bin", "G1_R.bin"])
def test_geneactiv_read_and_processed_by_skdh_itself(study: Path, name: str) -> None:
    import skdh

    inputs = skdh.io.ReadBin().predict(file=str(study / "raw" / name), tz_name="UTC")
    assert_tables_match(skdh_direct(inputs), result_folder(study, name), inputs["time"])


def test_cwa_two_days_processed_by_skdh_on_the_same_arrays(study: Path) -> None:
    path = study / "raw/P001_L.cwa"
    rec = read_recording(path.read_bytes(), str(path))
    inputs = {"time": rec.time_s, "accel": rec.accel_g, "temperature": rec.temperature_c,
              "fs": rec.sampling_rate_hz, "tz_name": "UTC"}
    results = skdh_direct(inputs)
    assert len(results["Sleep"]["total sleep time"]) >= 1  # nights and days, not an empty table
    assert_tables_match(results, result_folder(study, "P001_L.cwa"), rec.time_s)
