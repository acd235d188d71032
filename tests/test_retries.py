"""Transient failures are retried with backoff up to max_attempts; a worker killed
mid-task is retried on a fresh worker; tasks are admitted by estimated memory."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from study_helpers import write_csv
from wearflow import load_study, run_study, study_status
from wearflow.config import Study
from wearflow.errors import StorageError
from wearflow.executors import InlineExecutor, LocalExecutor
from wearflow.state import State
from wearflow.storage import Store

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = """\
study: RETRIES
input: raw/
output: results/
state: {state}
files:
  sensor: ["{{participant}}_{{side}}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
retries:
  max_attempts: 3
  backoff_s: 0.2
"""


def make_study(root: Path, state_url: str, n: int = 2, extra: str = "") -> Path:
    (root / "raw").mkdir()
    (root / "study.yaml").write_text(STUDY.format(state=state_url) + extra)
    for k in range(1, n + 1):
        for side in "LR":
            write_csv(root / f"raw/P{k}_{side}.csv", seed=k, hours=0.3)
    return root


def tasks(url: str) -> dict[str, tuple[str, int, str | None]]:
    """file name -> (state, attempts, message) of its current task."""
    engine = create_engine(url)
    with engine.connect() as db:
        rows = db.exec_driver_sql(
            "select f.path, t.state, t.attempts, t.message from tasks t join files f "
            "on f.id = t.file_id where t.current").fetchall()
    engine.dispose()
    return {path: (state, attempts, message) for path, state, attempts, message in rows}


def audit(url: str, action: str) -> list[dict[str, object]]:
    engine = create_engine(url)
    with engine.connect() as db:
        rows = db.exec_driver_sql("select after_json from audit_trail where action = "
                                  f"'{action}' order by seq").fetchall()
    engine.dispose()
    return [json.loads(r[0]) for r in rows]


def flaky_reads(monkeypatch: pytest.MonkeyPatch, name: str, failures: int,
                first: int = 2) -> list[int]:
    """Reads of ``name`` from the ``first``-th on (the 1st is the catalog's streamed
    hash, the next ones the worker's) raise a transient storage error ``failures`` times."""
    real_read, real_hash = Store.read_bytes, Store.sha256_and_head
    calls = [0]

    def flaky(self: Store, path: str) -> None:
        if path.endswith(name):
            calls[0] += 1
            if first <= calls[0] < first + failures:
                raise StorageError("cannot read (connection reset by peer)",
                                   subject=self.uri(path), transient=True)

    def read_bytes(self: Store, path: str) -> bytes:
        flaky(self, path)
        return real_read(self, path)

    def sha256_and_head(self: Store, path: str, head_bytes: int) -> tuple[str, bytes]:
        flaky(self, path)
        return real_hash(self, path, head_bytes)

    monkeypatch.setattr(Store, "read_bytes", read_bytes)
    monkeypatch.setattr(Store, "sha256_and_head", sha256_and_head)
    return calls


def test_a_transient_storage_failure_is_retried_until_it_succeeds(
        tmp_path: Path, state_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    study = load_study(make_study(tmp_path, state_url))
    calls = flaky_reads(monkeypatch, "P1_L.csv", failures=2)
    report = run_study(study, executor=InlineExecutor())
    assert report.exit_code == 0 and report.done == 4 and calls[0] == 4
    got = tasks(state_url)
    assert got["P1_L.csv"][:2] == ("done", 3)
    assert {got[f][:2] for f in ("P1_R.csv", "P2_L.csv", "P2_R.csv")} == {("done", 1)}
    retries = audit(state_url, "task.failed")
    assert [r["attempt"] for r in retries] == [1, 2]
    assert all("connection reset" in str(r["message"]) and r["retry_after_utc"]
               for r in retries)
    assert study_status(study)["participants"]["processed"] == 2


def test_a_task_that_keeps_failing_stops_after_max_attempts(
        tmp_path: Path, state_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    study = load_study(make_study(tmp_path, state_url))
    calls = flaky_reads(monkeypatch, "P2_R.csv", failures=10**6)
    report = run_study(study, executor=InlineExecutor())
    assert report.exit_code == 1 and report.done == 3 and report.failed == 1
    assert calls[0] == 4
    state, attempts, message = tasks(state_url)["P2_R.csv"]
    assert (state, attempts) == ("failed", 3)
    assert message is not None and message.startswith("failed after 3 attempts: cannot read")
    # the next run does not try again by itself; `wearflow retry` gives a fresh set
    assert run_study(study, executor=InlineExecutor()).executed == 0


def test_a_file_unreadable_while_cataloging_waits_for_the_next_run(
        tmp_path: Path, state_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    study = load_study(make_study(tmp_path, state_url))
    calls = flaky_reads(monkeypatch, "P2_L.csv", failures=1, first=1)
    report = run_study(study, executor=InlineExecutor())
    assert report.files_total == 3 and report.done == 3 and calls[0] == 1
    (issue,) = [i for i in study_issues(study) if i["uri"] and "P2_L" in i["uri"]]
    assert issue["message"].startswith("cannot be read now: cannot read (connection reset")
    report = run_study(study, executor=InlineExecutor())
    assert report.exit_code == 0 and report.files_total == 4 and report.done == 4
    assert not [i for i in study_issues(study) if i["uri"] and "P2_L" in i["uri"]]
    # a known file that cannot be read keeps its version: nothing absent, nothing re-run
    (tmp_path / "raw/P1_R.csv").touch()
    flaky_reads(monkeypatch, "P1_R.csv", failures=1, first=1)
    report = run_study(study, executor=InlineExecutor())
    assert report.files_total == 4 and report.executed == 0 and report.done == 4


def study_issues(study: Study) -> list[dict[str, str]]:
    state = State(study.state_url)
    try:
        return [{"uri": r.uri or "", "message": r.message} for r in state.issues.open(study.study)]
    finally:
        state.close()


def test_a_bad_file_is_not_retried(tmp_path: Path, state_url: str) -> None:
    root = make_study(tmp_path, state_url, n=1)
    (root / "raw/P9_L.csv").write_text("timestamp,x,y,z\nnot,a,number,here\n")
    report = run_study(load_study(root), executor=InlineExecutor())
    assert report.exit_code == 1 and report.done == 2
    state, attempts, message = tasks(state_url)["P9_L.csv"]
    assert (state, attempts) == ("failed", 1) and message and "attempt" not in message


def test_a_worker_killed_mid_task_is_retried_on_a_fresh_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    study = load_study(make_study(tmp_path, url, n=1))
    box: dict[str, object] = {}
    runner = threading.Thread(target=lambda: box.update(
        report=run_study(study, executor=LocalExecutor(1))))
    runner.start()
    deadline = time.monotonic() + 120
    killed = None
    while killed is None and time.monotonic() < deadline and runner.is_alive():
        try:
            running = [f for f, (s, _, _) in tasks(url).items() if s == "running"]
        except OperationalError:  # the run has not created its tables yet
            running = []
        workers = [p for p in psutil.Process().children()  # not the resource tracker
                   if "spawn_main" in " ".join(p.cmdline())]
        if running and workers:
            os.kill(workers[0].pid, signal.SIGKILL)  # as the out-of-memory killer would
            killed = running[0]
        time.sleep(0.05)
    runner.join(timeout=600)
    assert killed is not None, "no task was seen running"
    report = box["report"]
    assert report.exit_code == 0 and report.done == 2  # type: ignore[attr-defined]
    state, attempts, _ = tasks(url)[killed]
    assert (state, attempts) == ("done", 2)
    (failure,) = audit(url, "task.failed")
    assert "worker process died (killed, or out of memory)" in str(failure["message"])
    assert "estimated peak" in str(failure["message"])


def test_tasks_run_side_by_side_only_as_far_as_memory_allows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    study = load_study(make_study(tmp_path, url, n=2))
    # each 0.3-h task is estimated at ~0.45 GB: a 0.7 GB budget admits one at a time
    report = run_study(study, executor=LocalExecutor(2, memory_limit_gb=0.7))
    assert report.exit_code == 0 and report.done == 4
    engine = create_engine(url)
    with engine.connect() as db:
        spans = sorted(db.exec_driver_sql("select started_utc, finished_utc from tasks"))
    engine.dispose()
    assert len(spans) == 4
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, "two tasks overlapped despite the memory budget"


def test_a_task_bigger_than_the_memory_budget_fails_saying_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    root = make_study(tmp_path, url, n=1, extra="memory_limit_gb: 2\n")
    text = (root / "study.yaml").read_text().replace(
        "    pipeline: builtin:wrist\n", "    pipeline: builtin:wrist\n"
        "  - name: hungry\n    pipeline: builtin:wrist\n    bytes_per_sample: 100000\n"
        "    short_recording_h: 12\n")
    (root / "study.yaml").write_text(text)
    study = load_study(root)
    report = run_study(study, executor=LocalExecutor(2, memory_limit_gb=study.memory_limit_gb))
    assert report.exit_code == 1
    engine = create_engine(url)
    with engine.connect() as db:
        rows = db.exec_driver_sql("select solution, state, message from tasks").fetchall()
    engine.dispose()
    assert {(s, st) for s, st, _ in rows} == {("wrist", "done"), ("hungry", "failed")}
    for solution, _, message in rows:
        if solution == "hungry":
            assert message.startswith("needs about ") and "more than the workers may use " \
                "(2.0 GB)" in message
    state = State(url)
    try:  # the rest of the study completed: the participant's wrist result was combined
        assert [(r.solution, r.participant) for r in state.results.latest_participants()] \
            == [("wrist", "P1")]
    finally:
        state.close()
