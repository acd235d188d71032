"""Solutions pinned to different scikit-digital-health versions run side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import wearflow.solutions
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


def test_the_lock_is_stored_once_with_hashes_and_every_later_run_builds_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first run stores the resolved lock (every package with its hashes) in the
    state and audits it; a later run on a machine that cannot resolve anything (the
    resolver broken, its local lock cache empty) builds from the stored lock, and its
    tasks carry that lock to the worker."""
    import sqlite3

    from wearflow.plan import make_plan
    from wearflow.solutions import environments, load_study_solutions
    from wearflow.stages.environments import stored_locks
    from wearflow.state import State

    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY.format(
        requirement="scikit-digital-health==0.17.16"))
    write_csv(tmp_path / "raw/P1_L.csv", seed=1, hours=0.5)
    study = load_study(tmp_path)
    assert stored_locks(study) == {}  # no state yet: nothing read, nothing created
    assert run_study(study, executor=InlineExecutor()).exit_code == 0
    with sqlite3.connect(tmp_path / "results/wearflow.db") as db:
        rows = db.execute("select lock_text, lock_sha256, run_id from environment_locks"
                          ).fetchall()
        locked = db.execute("select object, after_json from audit_trail where "
                            "action = 'environment.locked'").fetchall()
    [(lock_text, lock_sha256, _)] = rows
    assert "scikit-digital-health==0.17.16" in lock_text
    assert "--hash=sha256:" in lock_text
    assert lock_sha256 == environments.lock_sha256(lock_text)
    assert [o for o, _ in locked] == ["solution pinned"]
    assert lock_sha256 in locked[0][1]

    def no_resolving(requirements: object, subject: str) -> str:
        raise AssertionError("resolved again")

    monkeypatch.setattr(environments, "lock", no_resolving)
    monkeypatch.setattr(wearflow.solutions, "_CACHE", {})
    study = load_study(tmp_path)
    assert stored_locks(study) == {"pinned": lock_text}
    solutions = load_study_solutions(study, stored_locks(study))
    pinned = next(s for s in solutions if s.name == "pinned")
    assert pinned.environment_lock == lock_text
    assert pinned.parameters["environment"]["lock_sha256"] == lock_sha256
    with State(study.state_url) as state:
        current = state.files.current()
    plan = make_plan(study, current, solutions, {})
    carried = {t.solution.name: t.environment_lock_sha256 for t in plan.to_run}
    assert carried == {"current": "", "pinned": lock_sha256}
    write_csv(tmp_path / "raw/P2_L.csv", seed=2, hours=0.5)
    again = run_study(study, executor=InlineExecutor())  # no resolver: the stored lock
    assert again.exit_code == 0 and again.executed == 2
    with sqlite3.connect(tmp_path / "results/wearflow.db") as db:
        assert db.execute("select count(*) from environment_locks").fetchone() == (1,)
