"""Runs and their task attempts: every attempt recorded with its worker, CPU seconds, peak
memory and stages (a retried one too), `wearflow runs` and its errors."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from study_helpers import write_csv
from wearflow import load_study, run_study
from wearflow.cli import app
from wearflow.errors import StateError, StorageError
from wearflow.executors import InlineExecutor
from wearflow.services.runs import list_runs, run_detail
from wearflow.stages.context import RunReport
from wearflow.state import State
from wearflow.state.attempts import Attempt
from wearflow.state.tables import RunRow
from wearflow.storage import Store
from wearflow.task_meter import TaskMeter

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
runner = CliRunner()

STUDY = """\
study: RUNS-T
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
retries:
  max_attempts: 3
  backoff_s: 0.1
"""
STAGES = {"fetch", "decode", "verify", "solution", "qc", "write"}


@dataclass(frozen=True)
class Ran:
    root: Path
    first: RunReport  # P1_L done, P1_R done at its second attempt, P2_L failed
    second: RunReport  # nothing left to do


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def ran(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Ran]:
    root = tmp_path_factory.mktemp("runs")
    (root / "raw").mkdir()
    state = ""
    if request.param == "postgresql":
        from wearflow.testing import create_database

        state = f"state: {create_database(request.getfixturevalue('pg_server'))}\n"
    (root / "study.yaml").write_text(STUDY + state)
    write_csv(root / "raw/P1_L.csv", seed=1, hours=0.2)
    write_csv(root / "raw/P1_R.csv", seed=2, hours=0.2)
    (root / "raw/P2_L.csv").write_text("timestamp,x,y,z\nnot,a,number,here\n")
    real_read = Store.read_bytes
    reads = [0]

    def flaky_once(self: Store, path: str) -> bytes:  # the worker's first fetch of P1_R
        if path.endswith("P1_R.csv"):
            reads[0] += 1
            if reads[0] == 1:
                raise StorageError("cannot read (connection reset by peer)",
                                   subject=self.uri(path), transient=True)
        return real_read(self, path)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Store, "read_bytes", flaky_once)
        first = run_study(load_study(root), executor=InlineExecutor())
    assert reads[0] == 2 and (first.executed, first.done, first.failed) == (3, 2, 1)
    second = run_study(load_study(root), executor=InlineExecutor())
    assert second.executed == 0
    yield Ran(root, first, second)


def by_file(attempts: list[Attempt]) -> dict[str, list[Attempt]]:
    files: dict[str, list[Attempt]] = {}
    for a in attempts:
        files.setdefault(a.uri.rsplit("/", 1)[-1], []).append(a)
    return files


def test_every_attempt_is_recorded_with_its_worker_cost_and_stages(ran: Ran) -> None:
    with State(load_study(ran.root).state_url) as state:
        attempts = state.attempts.for_run(ran.first.run_id)
        assert state.attempts.for_run(ran.second.run_id) == []
    assert len(attempts) == 4  # three tasks, one of them tried twice
    assert [a.started_utc for a in attempts] == sorted(a.started_utc for a in attempts)
    files = by_file(attempts)
    assert sorted(files) == ["P1_L.csv", "P1_R.csv", "P2_L.csv"]
    done = [a for a in attempts if a.state == "done"]
    assert sorted(a.uri.rsplit("/", 1)[-1] for a in done) == ["P1_L.csv", "P1_R.csv"]
    for a in done:
        assert a.cpu_s > 0 and a.peak_rss_bytes > 0
        assert a.worker == f"{socket.gethostname()}:{os.getpid()}"  # inline: this process
        assert {s for s, _ in a.stage_s} == STAGES == {s for s, _ in a.stage_cpu_s}
        assert (a.run_id, a.solution, a.participant, a.visit) == (
            ran.first.run_id, "wrist", "P1", "")
        assert a.tag is None and a.message is None and not a.transient
    assert [a.attempt for a in files["P1_L.csv"]] == [1]
    # the JSON form carries the stages by name
    assert set(done[0].to_json()["stage_s"]) == STAGES


def test_a_transient_failure_that_is_retried_shows_both_attempts(ran: Ran) -> None:
    with State(load_study(ran.root).state_url) as state:
        failed, retried = by_file(state.attempts.for_run(ran.first.run_id))["P1_R.csv"]
    assert failed.task_key == retried.task_key
    assert (failed.attempt, failed.state, failed.transient) == (1, "failed", True)
    assert failed.tag == "PIPELINE_ISSUE" and "connection reset by peer" in (failed.message
                                                                              or "")
    assert [s for s, _ in failed.stage_s] == ["fetch"]  # where it failed
    assert failed.worker and failed.peak_rss_bytes > 0
    assert (retried.attempt, retried.state, retried.transient) == (2, "done", False)
    assert failed.finished_utc <= retried.started_utc


def test_a_failed_file_has_its_tag_and_message(ran: Ran) -> None:
    with State(load_study(ran.root).state_url) as state:
        (attempt,) = by_file(state.attempts.for_run(ran.first.run_id))["P2_L.csv"]
        recorded = {t.key: t for t, _ in state.tasks.for_current_files()}[attempt.task_key]
    assert (attempt.state, attempt.transient, attempt.attempt) == ("failed", False, 1)
    assert attempt.tag == recorded.tag == "DATA_ISSUE"
    assert attempt.message == recorded.message and "does not parse" in attempt.message
    assert attempt.participant == "P2" and attempt.worker


def test_runs_are_listed_newest_first_with_their_totals(ran: Ran) -> None:
    study = load_study(ran.root)
    second, first = list_runs(study)
    assert (first.run_id, second.run_id) == (ran.first.run_id, ran.second.run_id)
    assert first.status == second.status == "finished"
    assert first.duration_s is not None and first.finished_utc is not None
    assert dict(first.counts) == {"executed": 3, "done": 2, "failed": 1}
    assert (first.attempts, first.tasks_done, first.tasks_failed, first.tasks_retried) == (
        4, 2, 1, 1)
    detail = run_detail(study, ran.first.run_id)
    assert detail.run == first
    assert first.cpu_s == pytest.approx(sum(a.cpu_s for a in detail.attempts))
    assert first.peak_rss_bytes == max(a.peak_rss_bytes for a in detail.attempts) > 0
    assert detail.workers == (f"{socket.gethostname()}:{os.getpid()}",)
    assert set(detail.stage_s) == STAGES and detail.study == "RUNS-T"
    assert detail.config["study"] == "RUNS-T"
    assert (second.attempts, second.tasks_done, second.cpu_s, second.peak_rss_bytes) == (
        0, 0, 0.0, 0)
    assert dict(second.counts) == {"executed": 0, "done": 2, "failed": 1}


def test_a_run_is_found_by_a_prefix_of_its_id_and_only_an_unambiguous_one(ran: Ran) -> None:
    study = load_study(ran.root)
    run_id = ran.first.run_id
    assert run_detail(study, run_id[:-2]).run.run_id == run_id
    differ = next(i for i, (a, b) in enumerate(zip(run_id, ran.second.run_id, strict=True))
                  if a != b)
    common = run_id[:differ]
    if len(common) >= 6:  # both runs started the same day: a prefix naming both
        with pytest.raises(StateError, match="names 2 runs of study RUNS-T"):
            run_detail(study, common)
    with pytest.raises(StateError, match="at least 6 characters"):
        run_detail(study, run_id[:5])
    with pytest.raises(StateError, match="no run of study RUNS-T has this id") as caught:
        run_detail(study, "19990101T000000")
    assert caught.value.subject == "19990101T000000"


def test_wearflow_runs_lists_the_runs_in_80_columns(ran: Ran) -> None:
    shown = runner.invoke(app, ["runs", str(ran.root)], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    assert max(len(line) for line in shown.output.splitlines()) <= 80
    # run, took ("4.1 s", "1m 05s"), done, failed, retried, CPU s, peak
    row = re.compile(rf"^{ran.first.run_id}\s+\S+ \S+\s+2\s+1\s+1\s+[\d.]+\s+[\d.]+ [MG]B$",
                     re.MULTILINE)
    assert row.search(shown.output), shown.output
    assert re.search(rf"^{ran.second.run_id}\s+\S+ \S+\s+0\s+0\s+0\s+0\.0\s*$",
                     shown.output, re.MULTILINE), shown.output
    listed = json.loads(runner.invoke(app, ["runs", str(ran.root), "--json"]).stdout)
    assert [r["run_id"] for r in listed] == [ran.second.run_id, ran.first.run_id]
    assert (listed[1]["tasks_done"], listed[1]["tasks_failed"], listed[1]["tasks_retried"],
            listed[1]["status"]) == (2, 1, 1, "finished")
    one = runner.invoke(app, ["runs", str(ran.root), ran.first.run_id[:-3]],
                        env={"COLUMNS": "80"})
    assert one.exit_code == 0, one.output
    assert max(len(line) for line in one.output.splitlines()) <= 80
    assert "4 attempts: 2 done, 1 failed, 1 retried" in one.output
    assert "P2_L.csv (try 1): DATA_ISSUE" in one.output
    detail = json.loads(runner.invoke(app, ["runs", str(ran.root), ran.first.run_id,
                                            "--json"]).stdout)
    assert detail["run"]["run_id"] == ran.first.run_id and len(detail["attempts"]) == 4


def test_wearflow_runs_with_an_unknown_run_id_says_so_and_exits_2(ran: Ran) -> None:
    result = runner.invoke(app, ["runs", str(ran.root), "zzzzzzzz"])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "zzzzzzzz" in line and "RUNS-T" in line and "no run" in line
    assert "Traceback" not in result.output


def test_a_run_not_finished_is_running_or_unfinished_when_its_process_is_gone(
        tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY)
    study = load_study(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()  # a coordinator process that has exited
    with State(study.state_url) as state:
        state.runs.begin("20260101T000000-aaaaaaaa", study.study, "f", "ann", {})
        state.runs.begin("20260101T000001-bbbbbbbb", study.study, "f", "bob", {})
        with state.engine.begin() as conn:
            conn.execute(update(RunRow).where(RunRow.id == "20260101T000000-aaaaaaaa")
                         .values(pid=gone.pid))
    listed = {r.run_id: r for r in list_runs(study)}
    assert listed["20260101T000000-aaaaaaaa"].status == "unfinished"
    assert listed["20260101T000001-bbbbbbbb"].status == "running"  # this process
    assert all(r.duration_s is None and r.finished_utc is None and r.attempts == 0
               for r in listed.values())


def test_the_meter_resets_the_peak_memory_for_each_task() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("the peak resident memory cannot be reset here")
    big = TaskMeter()
    block = b"\x01" * (128 * 2**20)  # touched pages: resident
    peak_with_block = big.peak_rss_bytes()
    del block
    small = TaskMeter()
    assert small.peak_rss_bytes() < peak_with_block - 64 * 2**20
    assert big.cpu_s() > 0


def test_without_proc_the_peak_is_the_process_peak_so_far(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    from wearflow import task_meter

    monkeypatch.setattr(task_meter, "_reset_high_water_mark", lambda: False)
    assert TaskMeter().peak_rss_bytes() == resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss * 1024
