"""A coordinator killed with SIGKILL takes its local pool with it: its worker processes
and the multiprocessing resource tracker exit instead of living on under PID 1."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine

from study_helpers import write_csv

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = """\
study: ORPHANS
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE  # dead, waiting for PID 1 to reap it
    except psutil.NoSuchProcess:
        return True


def _a_task_is_running(db: Path) -> bool:
    if not db.exists():
        return False
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return bool(conn.exec_driver_sql(
                "select count(*) from tasks where state = 'running'").scalar())
    except Exception:  # the schema is still being created
        return False
    finally:
        engine.dispose()


def test_workers_exit_when_their_coordinator_is_killed(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY)
    for side in "LR":
        write_csv(tmp_path / f"raw/P1_{side}.csv", seed=1, hours=1.0)
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "wearflow.cli", "run", str(tmp_path), "--executor", "local",
         "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 180
        while not _a_task_is_running(tmp_path / "results/wearflow.db"):
            assert coordinator.poll() is None, "the run ended before a task started"
            assert time.monotonic() < deadline, "no task started"
            time.sleep(0.2)
        children = psutil.Process(coordinator.pid).children(recursive=True)
        cmdlines = [" ".join(c.cmdline()) for c in children]
        assert any("spawn_main" in c for c in cmdlines), cmdlines  # a pool worker
        assert any("resource_tracker" in c for c in cmdlines), cmdlines
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not all(_gone(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = [" ".join(c.cmdline()) for c in children if not _gone(c)]
        assert not survivors, survivors
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait(timeout=30)
        for child in children:
            if not _gone(child):
                child.kill()


PARENT = """\
import multiprocessing, os, sys, threading, time
from wearflow.executors.local import exit_with_parent

def child(parent_pid, poll_s, tied):
    exit_with_parent(parent_pid, poll_s)
    tied.set()
    time.sleep(600)

def start(proc, tied):
    proc.start()
    tied.wait(60)

if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    tied = ctx.Event()
    proc = ctx.Process(target=child, args=(os.getpid(), float(sys.argv[1]), tied))
    # started from a thread that ends once the child is tied to its parent, as in a
    # coordinator running tasks from a short-lived thread: the child must outlive the
    # thread, not the process
    starter = threading.Thread(target=start, args=(proc, tied))
    starter.start()
    starter.join()
    print(proc.pid, "tied" if tied.is_set() else "not tied", flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("poll_s", [
    pytest.param(3600.0, id="kernel-signal",
                 marks=pytest.mark.skipif(not sys.platform.startswith("linux"),
                                          reason="PR_SET_PDEATHSIG is Linux's")),
    pytest.param(0.2, id="parent-watching-thread")])
def test_a_process_tied_to_its_parent_exits_with_it(tmp_path: Path, poll_s: float) -> None:
    """Each way alone suffices: the kernel's parent-death signal (the watching thread
    looks only once an hour), and the thread. The end of the thread that started the
    child is not its parent's death."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(poll_s)],
                              stdout=subprocess.PIPE, text=True)
    child: psutil.Process | None = None
    try:
        assert parent.stdout is not None
        pid, said = parent.stdout.readline().split(maxsplit=1)
        child = psutil.Process(int(pid))
        assert said.strip() == "tied"
        time.sleep(0.5)
        assert not _gone(child)  # the thread that started it ended: no matter
        parent.kill()
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(child)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=30)
        if child is not None and not _gone(child):
            child.kill()

