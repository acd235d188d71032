"""Two coordinators on one study at once never run the same task (claims with leases)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from study_helpers import write_csv
from wearflow import load_study, study_status
from wearflow.state import State

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = """\
study: TWO-COORDINATORS
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


def test_two_runs_at_once_run_every_task_exactly_once(tmp_path: Path, state_url: str) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY + f"state: {state_url}\n")
    for k in range(1, 5):
        for side in "LR":
            write_csv(tmp_path / f"raw/P{k}_{side}.csv", seed=k, hours=0.3)
    cmd = [sys.executable, "-m", "wearflow.cli", "run", str(tmp_path), "--executor", "inline"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    outs = [p.communicate(timeout=600) for p in (first, second)]
    assert (first.returncode, second.returncode) == (0, 0), [o[1].decode()[-3000:] for o in outs]
    engine = create_engine(state_url)
    with engine.connect() as db:
        rows = db.exec_driver_sql("select key, state, attempts, run_id from tasks").fetchall()
        started = [k for (k,) in db.exec_driver_sql(
            "select object from audit_trail where action = 'task.started'")]
    engine.dispose()
    assert len(rows) == 8
    assert {(state, attempts) for _, state, attempts, _ in rows} == {("done", 1)}
    assert sorted(started) == sorted(k for k, *_ in rows)  # each started once, in all
    assert study_status(load_study(tmp_path))["participants"]["processed"] == 4


def test_a_dead_coordinators_claims_are_taken_over(state_url: str) -> None:
    state = State(state_url)
    try:
        state.runs.begin("dead", "S", "f", "me", {})
        with state.engine.begin() as conn:
            conn.exec_driver_sql("update runs set pid = 999999999 where id = 'dead'")
            conn.exec_driver_sql(
                "insert into files (id, uri, sha256, size_bytes, mtime, location, path, kind, "
                "fields_json, first_seen_utc, last_seen_utc, current, present) values "
                "(1, 'u', 's', 1, 'm', 'l', 'p', 'sensor', '{}', 't', 't', true, true)")
            conn.exec_driver_sql(
                "insert into tasks (key, file_id, solution, solution_version, "
                "solution_fingerprint, state, current, attempts, run_id, lease_until_utc, "
                "inputs_json, flags_json, created_utc) values ('k', 1, 'w', 'v', 'f', "
                "'running', true, 1, 'dead', '2999-01-01T00:00:00.000Z', '{}', '[]', 't')")
        assert not state.tasks.claim("k", "other", 60)  # a live lease is respected
        assert state.runs.dead() == {"dead"}
        assert state.tasks.claim("k", "other", 60, state.runs.dead())  # its process is gone
        assert not state.tasks.claim("k", "third", 60, state.runs.dead())  # and now it is taken
    finally:
        state.close()
