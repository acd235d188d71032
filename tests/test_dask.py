"""The Dask executor on real clusters of separate worker processes (no mocks).

* a study run on a local Dask cluster writes the same bytes as one run on the
  process pool, on SQLite and on PostgreSQL state;
* a worker killed while running a task: Dask runs it again on another worker
  and the study completes, every task claimed and done exactly once; when Dask
  gives up, the task fails saying the worker died;
* a task bigger than every worker's memory fails at once, the rest completes;
* ``make_executor`` names and scheduler addresses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from distributed import Client, LocalCluster

from study_helpers import write_csv
from wearflow import RunReport, load_study, run_study, study_status
from wearflow.config import SolutionConfig
from wearflow.demo.cwa_writer import write_cwa
from wearflow.demo.synthetic import generate_recording
from wearflow.errors import ConfigError, WearflowError
from wearflow.executors import InlineExecutor, LocalExecutor, make_executor
from wearflow.executors.dask import DaskExecutor, scheduler_address
from wearflow.memory import estimate_peak_bytes, format_gb
from wearflow.solutions import load_solution
from wearflow.task import TaskOutcome, TaskSpec

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

GB = 1024**3
STUDY = """\
study: DASK
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.csv", "{participant}_{side}.cwa"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""
VOLATILE = ("run_id", "started_utc", "finished_utc", "host", "user")


def make_study(root: Path, files: dict[str, float], extra: str = "") -> Path:
    """``files``: name -> hours. CSV at 20 Hz (quick to process), CWA at 25 Hz (quick to
    write, so a day of it keeps a worker busy for seconds)."""
    (root / "raw").mkdir(parents=True)
    for seed, (name, hours) in enumerate(sorted(files.items()), start=1):
        path = root / "raw" / name
        if path.suffix == ".csv":
            write_csv(path, seed=seed, hours=hours)
        else:
            rec, _ = generate_recording(seed=seed, days=hours / 24, sampling_rate_hz=25.0,
                                        side="right" if path.stem.endswith("_R") else "left")
            write_cwa(path, rec.time_s, rec.accel_g, rec.temperature_c, 25.0, serial=seed)
    (root / "study.yaml").write_text(STUDY + extra)
    return root


def task_rows(root: Path) -> list[tuple[str, str, int, str | None, str | None]]:
    """(file name, state, attempts, message, result folder) of every task, by file."""
    with sqlite3.connect(root / "results/wearflow.db") as db:
        rows = db.execute("select f.path, t.state, t.attempts, t.message, t.result_dir "
                          "from tasks t join files f on f.id = t.file_id order by f.path")
        return [(p.rsplit("/", 1)[-1], s, a, m, d) for p, s, a, m, d in rows]


# -- 1. same bytes as the process pool, on SQLite and PostgreSQL state ----------------------

def wipe_state(url: str) -> None:
    """Drop every table: the next run starts from an empty state database."""
    engine = sqlalchemy.create_engine(url)
    try:
        tables = sqlalchemy.MetaData()
        tables.reflect(engine)
        tables.drop_all(engine)
    finally:
        engine.dispose()


def outputs(folder: Path) -> dict[str, object]:
    """Every result file under ``folder``: tables and qc by sha256, provenance parsed
    without the fields that differ by run."""
    found: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if not path.is_file() or not rel.startswith(("processed/", "single-wrist-processed/")):
            continue
        if path.name == "provenance.json":
            prov = json.loads(path.read_text())
            found[rel] = {k: v for k, v in prov.items() if k not in VOLATILE}
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def test_results_are_the_same_bytes_as_on_the_process_pool(tmp_path: Path,
                                                           state_url: str) -> None:
    root = make_study(tmp_path / "study", {f"P{k}_{s}.csv": 0.3 for k in (1, 2) for s in "LR"},
                       extra=f"state: {state_url}\n")
    local = run_study(load_study(root), executor=LocalExecutor(2))
    assert (local.done, local.failed, local.participants_aggregated) == (4, 0, 2)
    # Same study, same paths (provenance names them): the process pool's results move
    # aside and the state starts empty, so the Dask run does all the work again.
    (root / "results").rename(tmp_path / "reference")
    wipe_state(state_url)
    started = time.perf_counter()
    report = run_study(load_study(root), executor=DaskExecutor(workers=2))
    print(f"dask run (cluster start included): {time.perf_counter() - started:.1f} s")
    assert report.exit_code == 0
    assert (report.executed, report.done, report.failed) == (4, 4, 0)
    assert report.participants_aggregated == 2
    status = study_status(load_study(root))
    assert status["files"]["by_state"]["done"] == 4
    assert status["participants"] == {"total": 2, "processed": 2}
    expected, got = outputs(tmp_path / "reference"), outputs(root / "results")
    assert sum(p.endswith((".csv", ".parquet")) for p in got) >= 4 * 4 + 2 * 2 + 2
    assert sorted(got) == sorted(expected)
    for path in expected:
        assert got[path] == expected[path], path


# -- 2. workers dying -----------------------------------------------------------------------

def local_cluster(n_workers: int, **options: object) -> LocalCluster:
    """Worker processes as ``dask worker`` would start them, without the executor's
    MEMORY resource; no dashboard, the scheduler's HTTP endpoint on a free port."""
    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                        dashboard_address=None, silence_logs=logging.ERROR,
                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                        **options)  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Two worker processes with a memory limit and no MEMORY resource (a cluster started
    by hand, without ``--resources``)."""
    with local_cluster(2, memory_limit=4 * GB) as started:
        yield started


def run_in_background(root: Path, executor: DaskExecutor
                      ) -> tuple[threading.Thread, list[RunReport | BaseException]]:
    result: list[RunReport | BaseException] = []

    def target() -> None:
        try:
            result.append(run_study(load_study(root), executor=executor))
        except BaseException as exc:  # re-raised by the test
            result.append(exc)

    thread = threading.Thread(target=target, name="run-study")
    thread.start()
    return thread, result


def kill_a_worker_mid_task(client: Client) -> tuple[str, int]:
    """SIGKILL the process of the first worker seen executing a wearflow task;
    return the task's Dask key and the pid killed."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        executing = client.run(lambda dask_worker: sorted(
            str(ts.key) for ts in dask_worker.state.executing))
        for address, keys in sorted(executing.items()):
            if any(k.startswith("wearflow-") for k in keys):
                pid = client.run(os.getpid, workers=[address])[address]
                os.kill(pid, signal.SIGKILL)
                return next(k for k in keys if k.startswith("wearflow-")), pid
        time.sleep(0.05)
    raise AssertionError("no task was seen running within 180 s")


def finished(thread: threading.Thread, result: list[RunReport | BaseException]) -> RunReport:
    thread.join(timeout=300)
    assert not thread.is_alive(), "the run did not finish"
    (report,) = result
    if isinstance(report, BaseException):
        raise report
    return report


def test_a_killed_workers_task_runs_again_on_another_worker(
        tmp_path: Path, cluster: LocalCluster, caplog: pytest.LogCaptureFixture) -> None:
    root = make_study(tmp_path, {"P1_L.cwa": 24.0, "P1_R.cwa": 24.0})
    host_port = cluster.scheduler_address.removeprefix("tcp://")
    executor = make_executor(f"dask://{host_port}")
    assert isinstance(executor, DaskExecutor)
    assert executor.workers == 2
    with Client(cluster, set_as_default=False) as client, \
            caplog.at_level(logging.WARNING, logger="wearflow"):
        thread, result = run_in_background(root, executor)
        key, pid = kill_a_worker_mid_task(client)
        report = finished(thread, result)
        story = client.run_on_scheduler(lambda dask_scheduler: [
            (t.start, t.finish, t.stimulus_id) for t in dask_scheduler.story(key)])
        assert pid not in client.run(os.getpid).values()
    # The worker died with the task on it; Dask ran it again elsewhere, to the end.
    assert any(start == "processing" and end == "released"
               and stimulus.startswith("handle-worker-cleanup") for start, end, stimulus in story)
    assert story[-1][1] in ("memory", "released", "forgotten")
    assert report.exit_code == 0
    assert (report.done, report.failed, report.participants_aggregated) == (2, 0, 1)
    rows = task_rows(root)
    assert [(name, state, attempts) for name, state, attempts, *_ in rows] == [
        ("P1_L.cwa", "done", 1), ("P1_R.cwa", "done", 1)]  # claimed once, done once
    for *_, folder in rows:
        assert (root / "results" / str(folder) / "provenance.json").is_file()
    # The hand-started cluster has no MEMORY resource: said once, tasks still ran.
    assert [r.getMessage() for r in caplog.records if "MEMORY" in r.getMessage()] == [
        "the Dask workers advertise no MEMORY resource: tasks are submitted without their "
        "memory estimate, so big files may share a worker; start the workers with "
        "--resources MEMORY=<bytes>"]


def test_a_task_whose_workers_keep_dying_fails_saying_so(tmp_path: Path,
                                                         cluster: LocalCluster) -> None:
    root = make_study(tmp_path, {"P1_L.cwa": 24.0, "P1_R.cwa": 24.0})
    with Client(cluster, set_as_default=False) as client:
        # Dask gives up on a task after its first dead worker, instead of the third.
        allowed = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
        client.run_on_scheduler(lambda dask_scheduler: setattr(
            dask_scheduler, "allowed_failures", 0))
        try:
            thread, result = run_in_background(root, DaskExecutor(cluster.scheduler_address))
            kill_a_worker_mid_task(client)
            report = finished(thread, result)
        finally:
            client.run_on_scheduler(lambda dask_scheduler: setattr(
                dask_scheduler, "allowed_failures", allowed))
    assert report.exit_code == 1
    assert (report.executed, report.done, report.failed) == (2, 1, 1)
    failed = [(state, message) for _, state, _, message, _ in task_rows(root)
              if state == "failed"]
    assert failed == [("failed", "the worker died while running it (killed, or exceeded its "
                                 "memory limit of 4.0 GB); Dask tried 1 worker")]


def test_a_lost_scheduler_leaves_every_task_pending(
        tmp_path: Path) -> None:
    root = make_study(tmp_path, {f"P{k}_{s}.cwa": 24.0 for k in (1, 2) for s in "LR"})
    with local_cluster(1) as doomed:
        executor = DaskExecutor(doomed.scheduler_address)  # two tasks in flight at a time
        with Client(doomed, set_as_default=False) as client:
            thread, result = run_in_background(root, executor)
            deadline = time.monotonic() + 180
            while not any(client.run(lambda dask_worker: bool(dask_worker.state.executing))
                          .values()):
                assert time.monotonic() < deadline, "no task was seen running"
                time.sleep(0.05)
        doomed.close()
        thread.join(timeout=300)
    (error,) = result
    assert isinstance(error, WearflowError)
    assert error.message == ("lost the Dask scheduler (the client is connecting); 2 tasks not "
                             "started stay pending for the next run")
    # the cluster failed, not the files: the running two are pending again for a retry
    # after their backoff, the other two were never started
    rows = task_rows(root)
    assert sorted(state for _, state, _, _, _ in rows) == ["pending"] * 4
    retried = [m for _, _, _, m, _ in rows if m]
    assert len(retried) == 2
    assert all(m.startswith("attempt 1 of 3 failed, retrying at ") and
               "Dask could not run it (FutureCancelledError" in m and
               "scheduler-connection-lost" in m for m in retried)


def missing_file_tasks(folder: Path, n: int) -> list[TaskSpec]:
    """Tasks a worker really runs and fails at once: their input does not exist."""
    solution = SolutionConfig(name="wrist", pipeline="builtin:wrist")
    fingerprint = load_solution(solution).fingerprint  # the worker runs only what was planned
    return [TaskSpec(key=f"{i:064x}", file_id=i, uri=f"{folder.as_uri()}/P{i}_L.csv",
                     location=folder.as_uri(), path=f"P{i}_L.csv", sha256="0" * 64,
                     size_bytes=1, participant=f"P{i}", side="left", solution=solution,
                     solution_version="v", solution_fingerprint=fingerprint, study="S",
                     study_fingerprint="f", output=str(folder / "out"), device_time_zone="UTC",
                     memory_bytes=GB) for i in range(n)]


def test_claims_just_in_time_refusals_and_stop(tmp_path: Path, cluster: LocalCluster) -> None:
    tasks = missing_file_tasks(tmp_path, 30)
    refused = tasks[3].key  # another coordinator has it
    claimed: list[str] = []
    stop = threading.Event()
    started: list[str] = []
    outcomes: list[TaskOutcome] = []
    executor = DaskExecutor(cluster.scheduler_address)
    window = 2 * executor.workers

    def claim(task: TaskSpec) -> bool:
        claimed.append(task.key)
        return task.key != refused

    for event in executor.run(tasks, "run", stop, claim):
        if event.kind == "started":
            started.append(event.key)
            continue
        assert event.outcome is not None
        outcomes.append(event.outcome)
        # Leases are taken as workers come free, not for the whole study at once.
        assert len(started) <= len(outcomes) + window
        if len(outcomes) == 8:
            stop.set()
    assert refused in claimed and refused not in started
    assert 8 <= len(outcomes) <= 8 + window < len(tasks)  # stop: no new task, running finish
    assert sorted(started) == sorted(o.key for o in outcomes)
    assert len(claimed) == len(started) + 1
    assert {(o.state, o.message) for o in outcomes} == {("failed", "file not found")}


# -- 3. memory-aware ------------------------------------------------------------------------

def test_a_task_bigger_than_every_worker_fails_at_once(tmp_path: Path) -> None:
    # 5,000 bytes per sample: a 0.3 h CSV (about 91,000 samples by its size) is estimated
    # at 0.8 GB, a 2 h one at 3.2 GB; each of the 2 workers gets 2 GB of the 4.
    root = make_study(tmp_path, {"P1_L.csv": 0.3, "P1_R.csv": 0.3, "P2_L.csv": 2.0})
    text = (root / "study.yaml").read_text()
    (root / "study.yaml").write_text(text.replace("builtin:wrist\n",
                                                  "builtin:wrist\n    bytes_per_sample: 5000\n"))
    report = run_study(load_study(root),
                       executor=DaskExecutor(workers=2, memory_limit_gb=4.0))
    assert (report.executed, report.done, report.failed) == (3, 2, 1)
    assert report.participants_aggregated == 1  # P1; P2's only file failed
    rows = {name: (state, message) for name, state, _, message, _ in task_rows(root)}
    assert rows["P1_L.csv"] == rows["P1_R.csv"] == ("done", None)
    estimate = estimate_peak_bytes("P2_L.csv", (root / "raw/P2_L.csv").stat().st_size, 5000)
    assert format_gb(estimate) == "3.2 GB"
    assert rows["P2_L.csv"] == ("failed", "needs about 3.2 GB of memory at its peak "
                                "(estimate), more than any worker has (2.0 GB); raise "
                                "memory_limit_gb or use bigger workers")


# -- 4. names -------------------------------------------------------------------------------

def test_executor_names_and_scheduler_addresses() -> None:
    assert scheduler_address("dask://127.0.0.1:1") == "tcp://127.0.0.1:1"
    assert scheduler_address("dask://scheduler") == "tcp://scheduler:8786"
    assert scheduler_address("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert scheduler_address("tls://[::1]:8786") == "tls://[::1]:8786"
    for bad in ("dask://", "dask://host:port", "dask://host:8786/path", "http://host:8786",
                "dask:host:8786"):
        with pytest.raises(ConfigError, match=r"scheduler address|not a number"):
            scheduler_address(bad)
    unreachable = r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:1 "
    with pytest.raises(ConfigError, match=unreachable):
        DaskExecutor("dask://127.0.0.1:1", connect_timeout_s=1.0)
    with pytest.raises(ConfigError) as unknown:
        make_executor("spark")
    for choice in ("inline", "local", "dask", "dask://host:port", "tcp://", "tls://"):
        assert choice in unknown.value.message
    assert isinstance(make_executor("inline"), InlineExecutor)
    local = make_executor("local", 3, persistent=True, memory_limit_gb=2.0)
    assert isinstance(local, LocalExecutor)
    assert (local.workers, local.persistent, local.memory_budget_bytes) == (3, True, 2 * GB)
    dask = make_executor("dask", 2, persistent=True, memory_limit_gb=1.5)
    assert isinstance(dask, DaskExecutor)  # nothing started until it runs
    assert (dask.address, dask.workers, dask.persistent, dask.memory_limit_gb) == (
        None, 2, True, 1.5)
    dask.close()


def test_wearflow_imports_without_dask() -> None:
    code = ("import sys, wearflow, wearflow.executors, wearflow.runner, wearflow.watch; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_no_tasks_start_no_cluster() -> None:
    executor = DaskExecutor(workers=1)
    assert list(executor.run([], "run")) == []
    assert executor._client is None and executor._cluster is None
