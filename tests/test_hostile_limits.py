"""Bounds on what one sensor file or study file may cost: fields per CSV line, gzip
content within what a task may use, no YAML aliases, and a wall-clock and memory limit
per task; each exceeded is one issue naming the file, and the rest of the study completes."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from study_helpers import HOSTILE_STUDY, issues_by_file, write_csv
from wearflow import load_study, run_study, study_status
from wearflow.errors import ConfigError, ReaderError
from wearflow.executors import InlineExecutor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = HOSTILE_STUDY


# --- sensor files ---------------------------------------------------------------------------

def test_a_csv_line_just_over_the_field_bound_is_refused_before_parsing() -> None:
    from wearflow.readers import read_recording
    from wearflow.readers.csv_reader import MAX_COLUMNS

    fields = ",".join(["1"] * (MAX_COLUMNS + 1))
    data = f"time,x,y,z\n{fields}\n2,0,0,1\n".encode()
    with pytest.raises(ReaderError, match=f"line 2 has more than {MAX_COLUMNS} fields"):
        read_recording(data, "file:///raw/P1_L.csv")


def test_a_gt3x_zip_whose_parts_unzip_past_the_cap_is_refused_unopened() -> None:
    import zipfile

    from wearflow.readers import decompression_cap, read_recording

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("info.txt", "Serial Number: MOS2X\nSample Rate: 30\n")
        archive.writestr("log.bin", bytes(2 * 1024**2))  # a megabyte over the 1 MiB floor
    data = buf.getvalue()
    assert decompression_cap(len(data)) == 1024**2
    with pytest.raises(ReaderError, match=r"unzip to \d+ bytes, more than 1048576"):
        read_recording(data, "file:///raw/P1_L.gt3x")


def test_gzip_content_is_capped_by_what_the_task_may_use() -> None:
    import gzip

    from wearflow.memory import GB, max_inflated_bytes

    # what a task may use bounds how far a gzip file is inflated: the inflated bytes'
    # own estimate fits the limit; more is refused
    cap = max_inflated_bytes("P1_L.csv.gz", GB // 2)
    assert 0 < cap < 200 * 1024**2
    assert max_inflated_bytes("P1_L.csv.gz", 2 * GB) > cap
    from wearflow.readers import read_recording

    inflated = b"time,x,y,z\n" + b"1,0,0,1\n" * (10_000)
    with pytest.raises(ReaderError, match="decompressed size exceeds"):
        read_recording(gzip.compress(inflated), "file:///raw/P1_L.csv.gz",
                       max_decompressed_bytes=len(inflated) - 1)


# --- the study file -----------------------------------------------------------------------

def test_a_yaml_alias_in_the_study_file_is_refused(tmp_path: Path) -> None:
    laughs = "\n".join(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]"
                       for i in range(1, 6))
    (tmp_path / "study.yaml").write_text(
        STUDY + f"storage_options:\n  l0: &l0 [lol]\n{laughs}\n")
    with pytest.raises(ConfigError, match=r"YAML alias") as caught:
        load_study(tmp_path)
    assert "\n" not in caught.value.message
    (tmp_path / "study.yaml").write_text(STUDY + "workers: &w 1\nretries: {max_attempts: *w}\n")
    with pytest.raises(ConfigError, match=r"line 11: YAML alias \*w refused"):
        load_study(tmp_path)
    (tmp_path / "study.yaml").write_text(STUDY + "workers: &w 1\n")  # an anchor alone is fine
    assert load_study(tmp_path).workers == 1


def test_task_limits_are_execution_keys_with_defaults(tmp_path: Path) -> None:
    from wearflow.config import EXECUTION_FIELDS

    (tmp_path / "study.yaml").write_text(STUDY)
    study = load_study(tmp_path)
    assert study.task_timeout_s == 7200 and study.task_memory_limit_gb is None
    assert {"task_timeout_s", "task_memory_limit_gb"} <= EXECUTION_FIELDS
    (tmp_path / "study.yaml").write_text(STUDY + "task_timeout_s: 60\ntask_memory_limit_gb: 2\n")
    assert load_study(tmp_path).fingerprint() == study.fingerprint()
    (tmp_path / "study.yaml").write_text(STUDY + "task_timeout_s: 0\n")
    with pytest.raises(ConfigError, match="task_timeout_s"):
        load_study(tmp_path)


# --- task limits ---------------------------------------------------------------------------

def test_a_task_over_its_time_limit_fails_naming_the_file_and_the_rest_completes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wearflow.worker

    (tmp_path / "study.yaml").write_text(STUDY)
    (tmp_path / "raw").mkdir()
    write_csv(tmp_path / "raw/P1_L.csv", seed=1)
    assert run_study(load_study(tmp_path), executor=InlineExecutor()).done == 1
    # an execution key: the study keeps its fingerprint and P1 its result
    (tmp_path / "study.yaml").write_text(STUDY + "task_timeout_s: 1\n")
    write_csv(tmp_path / "raw/P2_L.csv", seed=2)
    read = wearflow.worker.read_recording

    def stuck_on_p2(data: bytes, uri: str, **kwargs: object) -> object:
        if uri.endswith("P2_L.csv"):
            time.sleep(600)  # a decoder stuck on a hostile file
        return read(data, uri, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(wearflow.worker, "read_recording", stuck_on_p2)
    report = run_study(load_study(tmp_path), executor=InlineExecutor())
    assert (report.executed, report.failed) == (1, 1)
    ((tag, message),) = [i for i in issues_by_file(tmp_path)["P2_L.csv"]
                         if "task_timeout_s" in i[1]]
    assert tag == "DATA_ISSUE" and "decod" in message and "\n" not in message
    status = study_status(load_study(tmp_path))
    assert status["files"]["by_state"]["done"] == 1
    assert [r["participant"] for r in status["current"]["participant_results"]] == ["P1"]


def test_a_task_over_its_memory_limit_fails_naming_the_file_and_its_worker_goes_on(
        tmp_path: Path) -> None:
    import dataclasses
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    from wearflow.catalog import StoredFile, scan
    from wearflow.plan import make_plan
    from wearflow.solutions import load_solution
    from wearflow.storage import Store
    from wearflow.task import TaskState
    from wearflow.worker import execute, warm_up

    (tmp_path / "study.yaml").write_text(STUDY)
    (tmp_path / "raw").mkdir()
    write_csv(tmp_path / "raw/P1_L.csv", seed=1)
    study = load_study(tmp_path)
    (cataloged,) = scan([Store(study.input[0])], study.files)
    stored = StoredFile(1, cataloged.uri, cataloged.sha256, cataloged.size_bytes,
                        cataloged.mtime, cataloged.location, cataloged.path, "sensor", "P1",
                        "left", "{}", None, None, None, None, "", "", True, True)
    (task,) = make_plan(study, [stored], [load_solution(study.solutions[0])], {}).to_run
    small = dataclasses.replace(task, memory_limit_bytes=2 * 1024**2)  # far below its need
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=partial(warm_up, ignore_sigint=True)) as pool:
        over = pool.submit(execute, small, "t", own_process=True).result()
        after = pool.submit(execute, task, "t", own_process=True).result()
    assert over.state == TaskState.FAILED
    assert over.tag in ("DATA_ISSUE", "ALGORITHM_ISSUE")
    assert "memory" in (over.message or "") and "task_memory_limit_gb" in (over.message or "")
    assert not over.transient
    assert after.state == TaskState.DONE  # the same worker, its limit lifted again


def test_a_task_stuck_where_python_cannot_interrupt_it_ends_its_worker_process() -> None:
    import subprocess
    import sys

    # sum() over a range loops in C: no signal handler runs until it returns, so only the
    # hard stop (a watchdog thread of C) ends it
    code = ("from wearflow.worker import time_limit\n"
            "with time_limit(0.2, hard_stop_after_s=0.3):\n"
            "    sum(range(10**15))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300,
                          check=False)
    assert done.returncode == 1
    assert b"Timeout (0:00:00.5" in done.stderr  # faulthandler's, with the stack


def test_a_worker_stopped_after_its_tasks_time_limit_reports_the_timeout() -> None:
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from wearflow.config import SolutionConfig
    from wearflow.executors.local import _outcome
    from wearflow.task import TaskOutcome, TaskSpec

    task = TaskSpec(key="k" * 64, file_id=1, uri="file:///raw/P1_L.csv", location="file:///raw",
                    path="P1_L.csv", sha256="0" * 64, size_bytes=1, participant="P1",
                    side="left", solution=SolutionConfig(name="w", pipeline="builtin:wrist"),
                    solution_version="v", solution_fingerprint="f", study="S",
                    study_fingerprint="f", output="/out", device_time_zone="UTC", timeout_s=60)
    died: Future[TaskOutcome] = Future()
    died.set_exception(BrokenProcessPool("a worker ended abruptly"))
    late = _outcome(died, task, elapsed_s=61.0)
    assert (late.tag, late.transient) == ("DATA_ISSUE", False)
    assert "task_timeout_s (60 s)" in (late.message or "")
    early = _outcome(died, task, elapsed_s=5.0)  # another task killed the pool: retried
    assert early.transient and "task_timeout_s" not in (early.message or "")
