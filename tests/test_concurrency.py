"""Two coordinators on one study at once never run the same task (claims with leases),
record each file version and each result once in the audit trail, and never combine a
participant while the other holds a claim on one of its tasks."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from study_helpers import write_csv
from wearflow import catalog, load_study, run_study, study_status
from wearflow.config import Study
from wearflow.executors import InlineExecutor
from wearflow.solutions import load_study_solutions
from wearflow.stages.context import RunContext, RunReport
from wearflow.stages.ingest import catalog_files, ingest_metadata
from wearflow.stages.participants import aggregate_participants
from wearflow.state import State
from wearflow.storage import Store, input_stores

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
    cataloged = _audit(state_url, "file.cataloged")
    assert sorted(cataloged) == sorted(set(cataloged)) and len(cataloged) == 8
    written = _audit(state_url, "result.written")
    assert sorted(written) == sorted(set(written))  # each result recorded once
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


def _audit(state_url: str, action: str) -> list[str]:
    engine = create_engine(state_url)
    with engine.connect() as db:
        objects = [o for (o,) in db.exec_driver_sql(
            "select object from audit_trail where action = ? order by seq"
            if state_url.startswith("sqlite") else
            "select object from audit_trail where action = %s order by seq", (action,))]
    engine.dispose()
    return objects


def _two_wrists(root: Path, state_url: str, extra: str = "") -> None:
    (root / "raw/meta").mkdir(parents=True)
    (root / "study.yaml").write_text(
        STUDY.replace('  sensor: ["{participant}_{side}.csv"]\n',
                      '  sensor: ["{participant}_{side}.csv"]\n  metadata: ["meta/*.csv"]\n')
        + f"state: {state_url}\n" + extra)
    for side in "LR":
        write_csv(root / f"raw/P1_{side}.csv", seed=1, hours=0.3)
    (root / "raw/meta/participants.csv").write_text("participant,dominant_hand\nP1,right\n")


def _context(study: Study, state: State, run_id: str) -> RunContext:
    return RunContext(study, state, run_id, f"coordinator {run_id}", (), RunReport(run_id))


def test_two_coordinators_catalog_each_file_version_once(
        tmp_path: Path, state_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Coordinator B catalogs while A is between reading what is known and recording its
    scan: each file version gets one `file.cataloged` entry, each metadata version one
    `metadata.added`."""
    _two_wrists(tmp_path, state_url)
    study = load_study(tmp_path)
    inputs = input_stores(study.input, study.storage_options, study.source)
    with State(study.state_url) as a, State(study.state_url) as b:
        ctx_a, ctx_b = _context(study, a, "a"), _context(study, b, "b")
        scan = catalog.scan

        def b_first(*args: Any, **kwargs: Any) -> Any:
            monkeypatch.setattr(catalog, "scan", scan)
            catalog_files(ctx_b, inputs)
            ingest_metadata(ctx_b)
            return scan(*args, **kwargs)

        monkeypatch.setattr(catalog, "scan", b_first)
        parsed = a.metadata.parsed_file_ids()  # read by A before B parsed the file
        monkeypatch.setattr(a.metadata, "parsed_file_ids", lambda: parsed)
        catalog_files(ctx_a, inputs)
        ingest_metadata(ctx_a)
    cataloged = _audit(state_url, "file.cataloged")
    assert len(cataloged) == 3 and len(set(cataloged)) == 3, cataloged
    assert len(_audit(state_url, "metadata.added")) == 1


def test_two_coordinators_record_each_result_written_once(
        tmp_path: Path, state_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A coordinator that found a participant due (and the summary unwritten) before
    another wrote them writes the same folder, but the audit trail says so once."""
    _two_wrists(tmp_path, state_url)
    study = load_study(tmp_path)
    assert run_study(study, executor=InlineExecutor()).participants_aggregated == 1
    before = _audit(state_url, "result.written")
    real_exists = Store.exists
    monkeypatch.setattr(Store, "exists", lambda self, path: False if "study-summary" in path
                        else real_exists(self, path))
    with State(study.state_url) as a:
        monkeypatch.setattr(a.results, "participant_keys", set)  # read before B wrote
        ctx = RunContext(study, a, "a", "coordinator a", load_study_solutions(study),
                         RunReport("a"))
        aggregate_participants(ctx, a.metadata.current())
    assert _audit(state_url, "result.written") == before
    assert len(before) == len(set(before)) == 4  # two wrists, the participant, the summary


def test_a_participant_waits_while_another_coordinator_runs_its_other_wrist(
        tmp_path: Path, state_url: str) -> None:
    """No grace period: a lone wrist is combined alone at once, but not while another
    coordinator holds a claim on the participant-visit's other wrist."""
    _two_wrists(tmp_path, state_url)
    study = load_study(tmp_path)
    planned_only = threading.Event()
    planned_only.set()
    run_study(study, executor=InlineExecutor(), stop=planned_only)
    with State(study.state_url) as other:  # a live coordinator (this process) claims P1_R
        other.runs.begin("other", study.study, study.fingerprint(), "other", {})
        right = next(t for t, f in other.tasks.for_current_files() if f.side == "right")
        assert other.tasks.claim(right.key, "other", 300)
    report = run_study(study, executor=InlineExecutor())
    assert (report.executed, report.participants_aggregated) == (1, 0)
    with State(study.state_url) as state:
        assert state.results.latest_participants() == []
        with state.engine.begin() as conn:  # the other coordinator's lease runs out
            conn.exec_driver_sql("update tasks set lease_until_utc = '2000-01-01T00:00:00Z' "
                                 "where run_id = 'other'")
    report = run_study(study, executor=InlineExecutor())
    assert (report.executed, report.participants_aggregated) == (1, 1)
    with State(study.state_url) as state:
        [result] = state.results.latest_participants()
    assert json.loads(result.flags_json) == []  # both wrists, not single_wrist
    assert len(json.loads(result.task_keys_json)) == 2
