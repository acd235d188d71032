"""The state database's contract, on SQLite and on PostgreSQL alike (``state_url``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from study_helpers import write_csv
from wearflow import load_study, run_study
from wearflow.catalog import SensorFile
from wearflow.executors import InlineExecutor
from wearflow.issue import IssueSpec
from wearflow.state import State
from wearflow.task import TaskOutcome, TaskRecord, TaskState


@pytest.fixture
def state(state_url: str) -> Iterator[State]:
    s = State(state_url)
    yield s
    s.close()


def sensor(name: str, sha: str, root: str = "file:///raw") -> SensorFile:
    participant, side = name.split(".")[0].split("_")
    return SensorFile(uri=f"{root}/{name}", location=root, path=name, size_bytes=len(sha),
                      mtime="m1", sha256=sha * 64 if len(sha) == 1 else sha,
                      fields={"participant": participant, "side": {"L": "left"}.get(side,
                                                                                    "right")})


def task(state: State, uri: str, key: str, solution: str = "wrist") -> TaskRecord:
    file_id = {f.uri: f.id for f in state.files.current()}[uri]
    return TaskRecord(key, file_id, solution, "v1", "fp", None, None, "pending")


def test_a_changed_file_is_a_new_current_version_and_a_vanished_one_absent(
        state: State) -> None:
    state.files.sync([sensor("P1_L.cwa", "a"), sensor("P1_R.cwa", "b")], ["file:///raw"])
    first = {f.uri: f.id for f in state.files.current()}
    state.files.sync([sensor("P1_L.cwa", "c")], ["file:///raw"])  # L changed, R gone
    now = state.files.current()
    assert [(f.uri, f.sha256[0]) for f in now] == [("file:///raw/P1_L.cwa", "c")]
    assert now[0].id != first["file:///raw/P1_L.cwa"]
    assert state.files.known()["file:///raw/P1_L.cwa"][2] == "c" * 64
    # R reappears with its old bytes: the same version, present again
    state.files.sync([sensor("P1_L.cwa", "c"), sensor("P1_R.cwa", "b")], ["file:///raw"])
    assert {f.uri: f.id for f in state.files.current()}["file:///raw/P1_R.cwa"] \
        == first["file:///raw/P1_R.cwa"]


def test_identical_bytes_under_two_names_hold_the_second(state: State) -> None:
    state.files.sync([sensor("P1_L.cwa", "a"), sensor("P2_L.cwa", "a")], ["file:///raw"])
    dupes = {f.path: f.duplicate_of for f in state.files.current()}
    assert dupes == {"P1_L.cwa": None, "P2_L.cwa": "file:///raw/P1_L.cwa"}


def test_plan_claim_lease_and_finish(state: State) -> None:
    state.files.sync([sensor("P1_L.cwa", "a")], ["file:///raw"])
    state.tasks.record_plan([task(state, "file:///raw/P1_L.cwa", "k1")])
    assert state.tasks.states() == {"k1": "pending"}
    assert state.tasks.claim("k1", "run-a", 60) and not state.tasks.claim("k1", "run-b", 60)
    state.tasks.renew_leases("run-a", 60)
    assert state.tasks.attempts("k1") == 1
    # a re-plan while it runs leaves it to its owner
    state.tasks.record_plan([task(state, "file:///raw/P1_L.cwa", "k1")])
    assert state.tasks.states() == {"k1": "running"}
    state.tasks.finish(TaskOutcome("k1", TaskState.DONE, "2026-01-01T00:00:00.000Z", "",
                                   result_dir="single/x", provenance_sha256="p" * 64,
                                   flags=("gap",)))
    assert state.tasks.states() == {"k1": "done"}
    assert state.results.provenance_hashes() == {"single/x": "p" * 64}
    assert state.tasks.file_state_counts() == {"done": 1}
    # a new solution fingerprint: the old task is no longer current, its result is kept
    state.tasks.record_plan([task(state, "file:///raw/P1_L.cwa", "k2")])
    assert [t.key for t, _ in state.tasks.for_current_files()] == ["k2"]
    assert state.results.provenance_hashes() == {"single/x": "p" * 64}


def test_a_requeued_task_waits_for_its_retry_time(state: State) -> None:
    state.files.sync([sensor("P1_L.cwa", "a")], ["file:///raw"])
    state.tasks.record_plan([task(state, "file:///raw/P1_L.cwa", "k1")])
    assert state.tasks.claim("k1", "run-a", 60)
    state.tasks.requeue("k1", retry_after_utc="2999-01-01T00:00:00.000Z", tag="PIPELINE_ISSUE",
                  message="storage hiccup")
    assert not state.tasks.claim("k1", "run-a", 60)  # not before its time
    state.tasks.requeue("k1", retry_after_utc="2000-01-01T00:00:00.000Z", tag="PIPELINE_ISSUE",
                  message="storage hiccup")
    assert state.tasks.claim("k1", "run-a", 60) and state.tasks.attempts("k1") == 2
    state.tasks.finish(TaskOutcome.failed("k1", "", "", "gave up", tag="PIPELINE_ISSUE"))
    # by hand: fresh attempts
    assert state.tasks.retry_failed(state.files.current()[0].id) == ["k1"]
    assert state.tasks.attempts("k1") == 0 and state.tasks.states() == {"k1": "pending"}


def test_metadata_history_latest_valid_value_wins(state: State) -> None:
    state.files.sync([SensorFile(uri="file:///raw/meta/a.csv", location="file:///raw",
                                 path="meta/a.csv", size_bytes=1, mtime="m", sha256="1" * 64,
                                 kind="metadata")], ["file:///raw"])
    first = state.files.current(kind="metadata")[0].id
    state.metadata.add(first, [("P1", "height_m", "1.70", "170", 2, None),
                               ("P2", "height_m", None, "9", 3, "implausible height")])
    state.metadata.add(first, [("P1", "height_m", "9.99", "x", 2, None)])  # already parsed
    state.files.sync([SensorFile(uri="file:///raw/meta/a.csv", location="file:///raw",
                                 path="meta/a.csv", size_bytes=2, mtime="m2", sha256="2" * 64,
                                 kind="metadata")], ["file:///raw"])
    second = state.files.current(kind="metadata")[0].id
    state.metadata.add(second, [("P1", "height_m", "1.72", "172", 2, None)])
    cells = state.metadata.current()
    assert cells["P1"]["height_m"].value == "1.72" and "P2" not in cells
    assert state.metadata.participants() == {"P1", "P2"}
    assert state.metadata.parsed_file_ids() == {first, second}
    assert state.metadata.problems() == []  # the problem was in the old version


def test_issues_open_refresh_close_and_stay_resolved(state: State) -> None:
    a = IssueSpec("DATA_ISSUE", "bad header", uri="file:///raw/P1_L.cwa")
    b = IssueSpec("WAITING", "waiting for height_m", participant="P2")
    assert state.issues.sync("S", [a, b]) == [a, b]
    assert state.issues.sync("S", [a, b]) == []  # no news
    assert [i.message for i in state.issues.open("S")] == ["bad header", "waiting for height_m"]
    assert state.issues.sync("S", [a]) == []  # b's cause is gone: closed
    assert [i.tag for i in state.issues.open("S")] == ["DATA_ISSUE"]
    row = state.issues.open("S")[0]
    state.issues.resolve(row.id, "known artefact, accepted by the PI")
    assert state.issues.sync("S", [a]) == [] and state.issues.open("S") == []
    assert state.issues.open("other study") == []


def test_participant_results_the_one_matching_current_tasks_wins(state: State) -> None:
    state.files.sync([sensor("P1_L.cwa", "a")], ["file:///raw"])
    state.tasks.record_plan([task(state, "file:///raw/P1_L.cwa", "k1")])
    state.tasks.claim("k1", "r", 60)
    state.tasks.finish(TaskOutcome("k1", TaskState.DONE, "", "", result_dir="single/k1",
                                   provenance_sha256="p" * 64))
    for key, tasks in (("old", ["k0"]), ("cur", ["k1"]), ("new", ["k9"])):
        state.results.add_participant(key=key, solution="wrist", participant="P1",
                                     task_keys=tasks, result_dir=f"p/{key}",
                                     provenance_sha256="q" * 64, flags=[], run_id="r")
    assert [r.key for r in state.results.latest_participants()] == ["cur"]
    assert state.results.participant_keys() == {"old", "cur", "new"}


def test_excluded_files_count_as_excluded(state: State) -> None:
    state.files.sync([sensor("P1_L.cwa", "a"), sensor("P1_R.cwa", "b")], ["file:///raw"])
    target = state.files.find_current("P1_R.cwa")
    assert state.files.set_excluded(target.id, "device failure") is None
    assert state.tasks.file_state_counts() == {"pending": 1, "excluded": 1}
    assert state.files.set_excluded(target.id, None) == "device failure"


STUDY = """\
study: RENAMED
input: raw/
output: results/
state: {state}
files:
  sensor: ["{{participant}}_{{side}}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_renamed_file_keeps_its_result_instead_of_blocking_the_plan(
        tmp_path: Path, state_url: str) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY.format(state=state_url))
    for side in "LR":
        write_csv(tmp_path / f"raw/P1_{side}.csv", seed=3, hours=0.3)
    study = load_study(tmp_path)
    assert run_study(study, executor=InlineExecutor()).done == 2
    # the right wrist was P2's: the same bytes under the corrected name
    (tmp_path / "raw/P1_R.csv").rename(tmp_path / "raw/P2_R.csv")
    report = run_study(study, executor=InlineExecutor())
    assert (report.exit_code, report.executed, report.done) == (0, 0, 2)
    state = State(state_url)
    try:
        done = {(f.participant, f.side, f.name) for _t, f in state.tasks.done_for_current_files()}
        latest = {(r.participant, r.flags_json) for r in state.results.latest_participants()}
    finally:
        state.close()
    assert done == {("P1", "left", "P1_L.csv"), ("P2", "right", "P2_R.csv")}
    assert latest == {("P1", '["single_wrist:left"]'), ("P2", '["single_wrist:right"]')}


def test_the_same_issue_twice_in_one_run_is_one_issue(state: State) -> None:
    twice = [IssueSpec("DATA_ISSUE", "bad", uri="file:///raw/a.csv", participant="P1")] * 2
    assert len(state.issues.sync("S", twice)) == 1
    assert [i.message for i in state.issues.open("S")] == ["bad"]


def _file_states_in_python(state: State) -> dict[str, int]:
    """file_state_counts as it was written before it moved into SQL: every current task
    with its file, walked in Python (the reference its GROUP BY must equal)."""
    order = {"failed": 0, "waiting": 1, "running": 2, "pending": 3, "done": 4}
    per_file: dict[int, str] = {}
    for t, f in state.tasks.for_current_files():
        for file_id in (f.id, *t.parts):
            prev = per_file.get(file_id)
            if prev is None or order.get(t.state, 0) < order[prev]:
                per_file[file_id] = t.state
    counts: dict[str, int] = {}
    for f in state.files.current():
        held = f.parse_error or f.duplicate_of
        what = ("excluded" if f.excluded_reason
                else per_file.get(f.id, "failed" if held else "pending"))
        counts[what] = counts.get(what, 0) + 1
    return counts


def test_file_state_counts_in_sql_equal_the_walk_over_every_file(state: State) -> None:
    from sqlalchemy import update

    from wearflow.state.tables import FileRow, TaskRow

    names = [f"P{p}_{side}.cwa" for p in range(1, 12) for side in "LR"]
    state.files.sync([sensor(n, f"{i:064x}") for i, n in enumerate(names)]
                     + [sensor("P99_L.cwa", f"{0:064x}"),  # a copy of P1_L's bytes: held
                        SensorFile(uri="file:///raw/meta.csv", location="file:///raw",
                                   path="meta.csv", size_bytes=1, mtime="m",
                                   sha256="e" * 64, kind="metadata"),
                        SensorFile(uri="file:///raw/notes.cwa", location="file:///raw",
                                   path="notes.cwa", size_bytes=1, mtime="m",
                                   sha256="f" * 64, parse_error="no pattern matches"),
                        SensorFile(uri="file:///raw/notes2.cwa", location="file:///raw",
                                   path="notes2.cwa", size_bytes=1, mtime="m",
                                   sha256="d" * 64, parse_error="no pattern matches")],
                     ["file:///raw"])
    ids = {f.path: f.id for f in state.files.current()}

    def plan(path: str, key: str, state_: str, solution: str = "wrist",
             parts: list[str] | None = None) -> TaskRecord:
        return TaskRecord(key, ids[path], solution, "v1", "fp", None, None, state_,
                          parts_json=json.dumps([ids[p] for p in parts]) if parts else None)

    state.tasks.record_plan([
        plan("P1_L.cwa", "a1", "done"), plan("P1_R.cwa", "a2", "failed"),
        plan("P2_L.cwa", "b1", "waiting"), plan("P2_R.cwa", "b2", "running"),
        plan("P3_L.cwa", "c1", "pending"),  # P3_R: no task, not held -> pending
        # two solutions: the worst of both
        plan("P4_L.cwa", "d1", "done"), plan("P4_L.cwa", "d2", "waiting", "gait"),
        # combined recordings: P5_R and P6_L are parts of P5_L's task (failed); P6_L
        # has a done task of its own too, the worse one wins
        plan("P5_L.cwa", "e1", "failed", parts=["P5_R.cwa", "P6_L.cwa"]),
        plan("P6_L.cwa", "e2", "done"),
        # a done task combining the held copy and an excluded file: the copy is done
        plan("P7_L.cwa", "f1", "done", parts=["P99_L.cwa", "P7_R.cwa"]),
        # the own file is excluded: its task and its parts do not count
        plan("P8_L.cwa", "g1", "failed", parts=["P8_R.cwa"]),
        # tasks of a file gone absent, and of a file whose excluded_reason is "" (falsy:
        # not excluded, yet its tasks are not read), parts included
        plan("P9_L.cwa", "h1", "failed", parts=["P9_R.cwa"]),
        plan("P10_L.cwa", "i1", "failed", parts=["P10_R.cwa"]),
        # a task no longer current, and a held file (no parse) with a task of its own
        plan("P11_L.cwa", "j1", "done"), plan("notes.cwa", "k1", "running"),
        # a task state that is no TaskState counts as failed
        plan("P11_R.cwa", "l1", "lost"),
    ])
    state.files.set_excluded(ids["P7_R.cwa"], "device failure")
    state.files.set_excluded(ids["P8_L.cwa"], "wrong participant")
    with state.engine.begin() as conn:
        conn.execute(update(FileRow).where(FileRow.id == ids["P9_L.cwa"]).values(present=False))
        conn.execute(update(FileRow).where(FileRow.id == ids["P10_L.cwa"])
                     .values(excluded_reason=""))
        conn.execute(update(FileRow).where(FileRow.id == ids["P3_R.cwa"]).values(parse_error=""))
        conn.execute(update(TaskRow).where(TaskRow.key == "j1").values(current=False))
    # done: P1_L, P7_L and the copy P99_L; failed: P1_R, P5_L, its parts P5_R and P6_L,
    # P11_R (lost), notes2 (held, no task); waiting: P2_L, P4_L; running: P2_R, notes;
    # pending: P3_L, P3_R, P4_R, P6_R, P8_R, P9_R, P10_L, P10_R, P11_L; P9_L is absent
    expected = {"done": 3, "failed": 6, "waiting": 2, "running": 2, "pending": 9,
                "excluded": 2}
    python = _file_states_in_python(state)
    python["failed"] += python.pop("lost")  # the walk kept the unknown state's name
    assert python == expected
    assert state.tasks.file_state_counts() == expected
