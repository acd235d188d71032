"""A real multi-process cluster on this machine: a Dask scheduler and workers started as
separate processes with the commands an image runs (``dask scheduler``, ``dask worker``),
the throwaway PostgreSQL, the S3-compatible server, and a coordinator process
(``wearflow run``) running a study whose input and output are buckets.

* A worker is killed (SIGKILL) while it runs a task: the study still completes. Dask,
  not wearflow, runs the task again: the scheduler reschedules the task of a worker that
  died (up to its ``allowed-failures``) and the coordinator never sees the death, so the
  state records one claim, one attempt and one outcome per task, the audit trail one
  ``task.started`` and one ``task.finished``. The result tables are byte-identical to
  those of the same study run on the local process pool with local folders.
* A solution pinned to its own environment: the coordinator stores the lock (with
  hashes) once; each worker, with a cache of its own, installs exactly that lock from
  its task and never resolves the requirements itself.
* A worker started with another wearflow version (a test-only ``--preload`` module,
  visible on its command line) refuses every task with a PIPELINE_ISSUE naming itself,
  both versions and what to do; not retried by itself; once the workers run the
  coordinator's version, ``wearflow retry`` and the next run complete the study.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy
from distributed import Client

from study_helpers import write_csv
from wearflow import load_study, run_study
from wearflow.demo.cwa_writer import write_cwa
from wearflow.demo.synthetic import generate_recording
from wearflow.executors import LocalExecutor
from wearflow.storage import Store

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

BIN = Path(sys.executable).parent  # the project's .venv/bin: dask, wearflow
GB = 1024**3
WORKER_MEMORY_BYTES = 4 * GB  # each worker's memory limit and MEMORY resource
OTHER_VERSION = "0.0.0+other-image"
PRELOAD_OTHER_VERSION = Path(__file__).with_name("other_version_preload.py")

STUDY = """\
study: CLUSTER
input: {input}
output: {output}
state: {state}
executor: {executor}
{storage}files:
  sensor: ["{{participant}}_{{side}}.csv", "{{participant}}_{{side}}.cwa"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """A scheduler and workers, each its own OS process (session) started as an image
    would start it; :meth:`close` ends every one of them, and only them."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        # --dashboard-address: the scheduler's HTTP endpoint on a free port, not 8787,
        # which another cluster on this shared machine may hold
        self._start("scheduler", "scheduler", "--host", "127.0.0.1", "--port",
                    str(self.port), "--no-dashboard", "--dashboard-address", "127.0.0.1:0")
        self.client = self._connect()

    def _start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        try:
            self.procs[name] = subprocess.Popen([str(BIN / "dask"), *args], stdout=log,
                                                stderr=subprocess.STDOUT,
                                                start_new_session=True,
                                                env=None if env is None else {**os.environ,
                                                                              **env})
        finally:
            log.close()

    def _connect(self) -> Client:
        deadline = time.monotonic() + 60
        while True:
            try:
                return Client(self.address, timeout=5, set_as_default=False)  # type: ignore[no-untyped-call]
            except (OSError, TimeoutError):
                if time.monotonic() > deadline or self.procs["scheduler"].poll() is not None:
                    raise AssertionError("the scheduler did not start: "
                                         + self.log("scheduler")) from None
                time.sleep(0.2)

    def add_worker(self, name: str, *extra: str, env: dict[str, str] | None = None) -> None:
        """``dask worker`` with one thread in one process (under its nanny, which starts
        a new worker process when the worker dies), offering its memory as MEMORY;
        ``env``: more environment variables for it."""
        self._start(name, "worker", self.address, "--nthreads", "1", "--nworkers", "1",
                    "--no-dashboard", "--name", name, "--memory-limit",
                    str(WORKER_MEMORY_BYTES), "--resources", f"MEMORY={WORKER_MEMORY_BYTES}",
                    *extra, env=env)

    def wait_for_workers(self, names: set[str]) -> None:
        deadline = time.monotonic() + 120
        while self.worker_names() != names:
            if time.monotonic() > deadline:
                raise AssertionError(f"workers {sorted(self.worker_names())}, wanted "
                                     f"{sorted(names)}: " + " | ".join(
                                         self.log(n)[-500:] for n in sorted(names)))
            time.sleep(0.2)

    def worker_names(self) -> set[str]:
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return {str(w["name"]) for w in info.values()}

    def stop(self, name: str) -> None:
        """End one process (and the worker process its nanny started): its own session."""
        proc = self.procs.pop(name)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # what is left of its session
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)

    def close(self) -> None:
        try:
            self.client.close()  # type: ignore[no-untyped-call]
        finally:
            for name in sorted(self.procs, key=lambda n: n == "scheduler"):  # workers first
                self.stop(name)

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    logs = tmp_path / "cluster-logs"
    logs.mkdir()
    started = Cluster(logs)
    try:
        yield started
    finally:
        started.close()


def make_files(folder: Path, files: dict[str, float]) -> None:
    """``files``: name -> hours. CSV at 20 Hz (quick), CWA at 25 Hz (a worker is busy
    with one for seconds: long enough to be seen running and killed)."""
    folder.mkdir(parents=True)
    for seed, (name, hours) in enumerate(sorted(files.items()), start=1):
        path = folder / name
        if path.suffix == ".csv":
            write_csv(path, seed=seed, hours=hours)
        else:
            rec, _ = generate_recording(seed=seed, days=hours / 24, sampling_rate_hz=25.0,
                                        side="right" if path.stem.endswith("_R") else "left")
            write_cwa(path, rec.time_s, rec.accel_g, rec.temperature_c, 25.0, serial=seed)


def bucket_study(root: Path, raw: Path, endpoint: str, state: str, executor: str) -> Path:
    """The study on buckets: every file of ``raw`` uploaded under ``raw/``, results under
    ``results/``, both in a new bucket."""
    bucket = f"cluster-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    for f in sorted(raw.iterdir()):
        client.upload_file(str(f), bucket, f"raw/{f.name}")
    root.mkdir(parents=True)
    (root / "study.yaml").write_text(STUDY.format(
        input=f"s3://{bucket}/raw", output=f"s3://{bucket}/results", state=state,
        executor=executor, storage=f'storage_options: {{endpoint_url: "{endpoint}"}}\n'))
    return root


def wearflow(*args: str, cwd: Path, env: dict[str, str] | None = None
             ) -> subprocess.Popen[str]:
    """A coordinator process, as an image runs it (the S3 credentials in its environment)."""
    return subprocess.Popen([str(BIN / "wearflow"), *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=None if env is None else {**os.environ, **env})


def finish(proc: subprocess.Popen[str], timeout_s: float = 300) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"the coordinator did not finish: {err[-2000:]}") from None
    return proc.returncode, out, err


def kill_a_worker_mid_task(cluster: Cluster, state_url: str, suffix: str
                           ) -> tuple[str, str, int]:
    """SIGKILL the worker process of the first worker seen executing the task of a file
    whose name ends with ``suffix`` (a long one: it cannot finish between the look and
    the kill); return the task's Dask key, the worker's name and the pid killed."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:  # the coordinator records its plan before it submits anything
            long = {key[:16] for name, key in task_keys(state_url) if name.endswith(suffix)}
        except sqlalchemy.exc.SQLAlchemyError:  # no tables yet
            long = set()
        executing = cluster.client.run(lambda dask_worker: (dask_worker.name, os.getpid(), sorted(
            str(ts.key) for ts in dask_worker.state.executing)), on_error="ignore")
        for _, (name, pid, keys) in sorted(executing.items()):
            ours = [k for k in keys if k.startswith("wearflow-") and k.split("-")[1] in long]
            if ours:
                os.kill(pid, signal.SIGKILL)
                return ours[0], str(name), pid
        time.sleep(0.05)
    raise AssertionError("no task was seen running within 180 s")


def task_keys(url: str) -> list[tuple[str, str]]:
    """(file name, task key) of every task planned."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(
                "select f.path, t.key from tasks t join files f on f.id = t.file_id")).all()
    finally:
        engine.dispose()
    return [(p.rsplit("/", 1)[-1], k) for p, k in rows]


def tasks(url: str) -> list[tuple[str, str, int, str | None, str | None]]:
    """(file name, state, attempts, tag, message) of every task, by file."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(
                "select f.path, t.state, t.attempts, t.tag, t.message from tasks t "
                "join files f on f.id = t.file_id order by f.path")).all()
    finally:
        engine.dispose()
    return [(p.rsplit("/", 1)[-1], s, a, tag, m) for p, s, a, tag, m in rows]


def audit(url: str, actions: tuple[str, ...]) -> list[tuple[str, str]]:
    """(action, object) of the audit entries of ``actions``, in order."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(
                "select action, object from audit_trail order by seq")).all()
    finally:
        engine.dispose()
    return [(a, o) for a, o in rows if a in actions]


def attempts(url: str) -> list[tuple[str, str]]:
    """(task key, worker) of every recorded attempt."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(
                "select task_key, worker from task_attempts order by id")).all()
    finally:
        engine.dispose()
    return [(k, w) for k, w in rows]


VOLATILE = ("run_id", "started_utc", "finished_utc", "user", "study_fingerprint")


def outputs(files: dict[str, bytes], input_prefix: str, output_prefix: str) -> dict[str, Any]:
    """Result files by path under the output: tables and QC by sha256; provenance parsed,
    without what differs by run and place (run, times, user, the study's fingerprint,
    which covers its locations) and with the input and output locations it names made
    placeholders."""
    found: dict[str, Any] = {}
    for rel, data in sorted(files.items()):
        if not rel.startswith(("processed/", "single-wrist-processed/")):
            continue
        if rel.endswith("/provenance.json"):
            prov = json.loads(data)
            text = json.dumps({k: v for k, v in prov.items() if k not in VOLATILE},
                              sort_keys=True)
            found[rel] = json.loads(text.replace(input_prefix, "<input>")
                                    .replace(output_prefix, "<output>"))
        else:
            found[rel] = hashlib.sha256(data).hexdigest()
    return found


def bucket_files(endpoint: str, output: str) -> dict[str, bytes]:
    bucket, _, prefix = output.removeprefix("s3://").partition("/")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}/") for o in page.get("Contents", [])]
    return {k.removeprefix(f"{prefix}/"): client.get_object(Bucket=bucket, Key=k)["Body"].read()
            for k in keys}


def folder_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# -- 1. a worker killed mid-task; the same bytes as the local process pool -----------------

def test_a_worker_killed_mid_task_and_the_study_completes_as_on_one_machine(
        tmp_path: Path, cluster: Cluster, s3_endpoint: str, pg_url: str) -> None:
    raw = tmp_path / "raw"
    make_files(raw, {"P1_L.cwa": 12.0, "P1_R.cwa": 12.0, "P2_L.csv": 0.3, "P2_R.csv": 0.3})
    cluster.add_worker("worker-1")
    cluster.add_worker("worker-2")
    cluster.wait_for_workers({"worker-1", "worker-2"})
    root = bucket_study(tmp_path / "on-buckets", raw, s3_endpoint, pg_url,
                        f"dask://127.0.0.1:{cluster.port}")
    study = load_study(root)

    coordinator = wearflow("run", str(root), "--json", cwd=tmp_path)
    try:
        key, killed_worker, pid = kill_a_worker_mid_task(cluster, pg_url, ".cwa")
    finally:
        code, out, err = finish(coordinator)
    assert code == 0, err[-3000:]
    report = json.loads(out)
    assert (report["executed"], report["done"], report["failed"]) == (4, 4, 0)
    assert report["participants_aggregated"] == 2

    # Dask ran the killed worker's task again: the scheduler released it when the
    # worker died (its cleanup) and processed it once more, to the end.
    story = cluster.client.run_on_scheduler(lambda dask_scheduler: [
        (t.start, t.finish, t.stimulus_id) for t in dask_scheduler.story(key)])
    assert any(start == "processing" and end == "released"
               and stimulus.startswith("handle-worker-cleanup")
               for start, end, stimulus in story), story
    assert pid not in cluster.client.run(os.getpid).values()
    # ... the nanny started a new worker process in its place
    cluster.wait_for_workers({"worker-1", "worker-2"})

    # wearflow never saw the death: one claim, one attempt, one outcome per task; no
    # task lost, none run twice, in the state and in the audit trail
    rows = tasks(pg_url)
    assert [(name, state, n) for name, state, n, _, _ in rows] == [
        ("P1_L.cwa", "done", 1), ("P1_R.cwa", "done", 1), ("P2_L.csv", "done", 1),
        ("P2_R.csv", "done", 1)]
    events = audit(pg_url, ("task.started", "task.finished", "task.failed"))
    started = [o for a, o in events if a == "task.started"]
    finished = [o for a, o in events if a == "task.finished"]
    assert len(started) == len(set(started)) == 4
    assert sorted(finished) == sorted(started)
    assert not [a for a, _ in events if a == "task.failed"]
    recorded = attempts(pg_url)
    assert sorted(k for k, _ in recorded) == sorted(started)
    assert all(worker for _, worker in recorded)  # every outcome came from a worker

    # The same study with local folders on the local process pool: the same bytes.
    local_root = tmp_path / "local"
    local_root.mkdir()
    (local_root / "study.yaml").write_text(STUDY.format(
        input=str(raw), output="results/", state="sqlite:///state.db", executor="local",
        storage=""))
    local = run_study(load_study(local_root), executor=LocalExecutor(2))
    assert (local.exit_code, local.done, local.participants_aggregated) == (0, 4, 2)
    local_study = load_study(local_root)
    expected = outputs(folder_files(local_root / "results"), raw.as_uri(),
                       Store(local_study.output).uri(""))
    got = outputs(bucket_files(s3_endpoint, study.output), study.input[0],
                  Store(study.output, study.storage_options).uri(""))
    assert any(isinstance(v, dict) and "<output>" in json.dumps(v) for v in got.values())
    tables = [p for p in got if p.endswith((".csv", ".parquet"))]
    assert len(tables) >= 4 * 4 + 2 * 2 + 2  # per wrist, per participant, the summary
    assert sorted(got) == sorted(expected)
    for path in expected:
        assert got[path] == expected[path], path
    assert killed_worker in {"worker-1", "worker-2"}


# -- 2. a worker with another wearflow version refuses; retry once the workers are fixed ---

def test_a_worker_with_another_wearflow_version_refuses_until_the_workers_are_fixed(
        tmp_path: Path, cluster: Cluster, s3_endpoint: str, pg_url: str) -> None:
    raw = tmp_path / "raw"
    make_files(raw, {"P1_L.csv": 0.3, "P1_R.csv": 0.3})
    cluster.add_worker("old-image", "--preload", str(PRELOAD_OTHER_VERSION))
    cluster.wait_for_workers({"old-image"})
    root = bucket_study(tmp_path / "on-buckets", raw, s3_endpoint, pg_url,
                        f"dask://127.0.0.1:{cluster.port}")
    ours = subprocess.run([str(BIN / "wearflow"), "--version"], capture_output=True,
                          text=True, check=False).stdout.split()[-1]

    code, out, err = finish(wearflow("run", str(root), "--json", cwd=tmp_path))
    assert code == 1, err[-3000:]
    assert (json.loads(out)["done"], json.loads(out)["failed"]) == (0, 2)
    rows = tasks(pg_url)
    assert [(name, state, n, tag) for name, state, n, tag, _ in rows] == [
        ("P1_L.csv", "failed", 1, "PIPELINE_ISSUE"), ("P1_R.csv", "failed", 1,
                                                       "PIPELINE_ISSUE")]
    for *_, message in rows:  # refused, not retried by itself, saying what to do
        assert message is not None
        assert message.startswith("worker ")
        assert f"runs wearflow {OTHER_VERSION}, the coordinator {ours}: task refused; " \
               "start the workers from the same image/version as the coordinator, then " \
               "`wearflow retry` the file" in message
    issues = subprocess.run([str(BIN / "wearflow"), "issues", str(root), "--json"],
                            capture_output=True, text=True, check=False, cwd=tmp_path)
    assert OTHER_VERSION in issues.stdout

    # The workers are replaced by ones of the coordinator's version; retry, run again.
    cluster.stop("old-image")
    cluster.add_worker("new-image")
    cluster.wait_for_workers({"new-image"})
    for name in ("P1_L.csv", "P1_R.csv"):
        retried = subprocess.run([str(BIN / "wearflow"), "retry", str(root), name,
                                  "--reason", "workers now run the coordinator's image"],
                                 capture_output=True, text=True, check=False, cwd=tmp_path)
        assert retried.returncode == 0, retried.stderr
    code, out, err = finish(wearflow("run", str(root), "--json", cwd=tmp_path))
    assert code == 0, err[-3000:]
    assert (json.loads(out)["done"], json.loads(out)["failed"]) == (2, 0)
    assert [(name, state) for name, state, *_ in tasks(pg_url)] == [
        ("P1_L.csv", "done"), ("P1_R.csv", "done")]


# -- 3. a pinned environment: the workers build the study's stored lock, never resolve ------

def test_the_workers_build_the_lock_the_study_stored(
        tmp_path: Path, cluster: Cluster, s3_endpoint: str, pg_url: str) -> None:
    """The coordinator resolves the solution's environment once and stores the lock (with
    hashes) in the state; each worker, with a cache of its own, installs exactly that lock
    from its task and never resolves anything (no lock of its own in its cache)."""
    raw = tmp_path / "raw"
    make_files(raw, {"P1_L.csv": 0.3, "P1_R.csv": 0.3})
    caches = {name: tmp_path / f"cache-{name}" for name in ("worker-1", "worker-2")}
    for name, cache in caches.items():
        cluster.add_worker(name, env={"WEARFLOW_ENV_CACHE": str(cache)})
    cluster.wait_for_workers(set(caches))
    root = bucket_study(tmp_path / "on-buckets", raw, s3_endpoint, pg_url,
                        f"dask://127.0.0.1:{cluster.port}")
    study_file = root / "study.yaml"
    study_file.write_text(study_file.read_text().replace(
        "    pipeline: builtin:wrist\n",
        '    pipeline: builtin:wrist\n    environment: ["scikit-digital-health==0.17.16"]\n'))
    # the coordinator's own cache: the one tests/test_solution_envs.py fills
    coordinator_cache = Path(__file__).resolve().parents[1] / ".cache" / "wearflow"
    code, out, err = finish(wearflow("run", str(root), "--json", cwd=tmp_path,
                                     env={"WEARFLOW_ENV_CACHE": str(coordinator_cache)}),
                            timeout_s=900)
    assert code == 0, err[-3000:]
    assert json.loads(out)["done"] == 2

    engine = sqlalchemy.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            [(lock_text, lock_sha)] = conn.execute(sqlalchemy.text(
                "select lock_text, lock_sha256 from environment_locks")).all()
    finally:
        engine.dispose()
    assert "--hash=sha256:" in lock_text
    study = load_study(root)
    provenance = [json.loads(data) for rel, data in bucket_files(s3_endpoint, study.output)
                  .items() if rel.startswith("single-wrist-processed/")
                  and rel.endswith("/provenance.json")]
    assert len(provenance) == 2
    assert {p["solution"]["parameters"]["environment"]["lock_sha256"] for p in provenance} \
        == {lock_sha}
    assert len(attempts(pg_url)) == 2
    for cache in caches.values():  # built from the task's lock, never resolved there
        assert not (cache / "locks").exists()
    built = [c for c in caches.values() if (c / "envs" / lock_sha[:16]).is_dir()]
    assert built, "no worker built the environment"
    for cache in built:
        assert (cache / "envs" / lock_sha[:16] / "requirements.lock").read_text() == lock_text
