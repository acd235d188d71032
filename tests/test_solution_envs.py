"""Solutions pinned to different scikit-digital-health versions run side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from study_helpers import write_csv
from wearflow import load_study, run_study
from wearflow.errors import SolutionError
from wearflow.executors import InlineExecutor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = """\
study: ENVS
input: raw/
output: results/
files:
  sensor: ["{{participant}}_{{side}}.csv"]
solutions:
  - name: current
    pipeline: builtin:wrist
  - name: pinned
    pipeline: builtin:wrist
    environment: ["{requirement}"]
"""


@pytest.fixture(autouse=True)
def env_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # Kept beside the repository so repeated local runs reuse the built environment.
    cache = Path(__file__).resolve().parents[1] / ".cache" / "wearflow"
    monkeypatch.setenv("WEARFLOW_ENV_CACHE", str(cache))


def test_each_result_names_its_own_skdh_version(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY.format(
        requirement="scikit-digital-health==0.17.16"))
    write_csv(tmp_path / "raw/P1_L.csv", seed=1, hours=1)
    report = run_study(load_study(tmp_path), executor=InlineExecutor())
    assert report.exit_code == 0 and report.executed == 2
    provs = {}
    for prov_file in (tmp_path / "results/single-wrist-processed").glob("*/P1/P1_L.csv/*/"
                                                                        "provenance.json"):
        prov = json.loads(prov_file.read_text())
        provs[prov["solution"]["name"]] = prov
    assert provs["current"]["solution"]["parameters"]["skdh"] == "0.17.18"
    assert provs["current"]["solution"]["version"].endswith("+skdh-0.17.18")
    pinned = provs["pinned"]["solution"]
    assert pinned["version"].endswith("+skdh-0.17.16")
    env = pinned["parameters"]["environment"]
    assert env["packages"]["scikit-digital-health"] == "0.17.16"
    assert len(env["lock_sha256"]) == 64
    assert pinned["fingerprint"] != provs["current"]["solution"]["fingerprint"]
    days_dir = tmp_path / "results/single-wrist-processed/pinned/P1/P1_L.csv"
    assert any(p.name == "activity_level_classification.csv"
               for p in next(days_dir.iterdir()).iterdir())


def test_environment_that_cannot_be_built_fails_before_any_file(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY.format(
        requirement="scikit-digital-health==0.0.999"))
    write_csv(tmp_path / "raw/P1_L.csv", seed=1, hours=0.2)
    with pytest.raises(SolutionError, match="environment cannot be built") as info:
        run_study(load_study(tmp_path), executor=InlineExecutor())
    assert info.value.subject == str(tmp_path / "study.yaml")
    assert "solutions.1 (solution pinned)" in info.value.message
    assert not (tmp_path / "results").exists()  # nothing cataloged, nothing written
