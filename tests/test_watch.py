"""`wearflow watch` as a separate process: files land in mixed order, a bad one among them;
every participant is processed and aggregated, no task runs twice; SIGTERM exits 0; a
SIGKILLed watcher restarted ends with the same outputs as an uninterrupted run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from study_helpers import write_csv
from wearflow import load_study, study_status

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = """\
study: WATCH
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
single_wrist_grace_h: 1   # a lone wrist waits an hour for its partner
"""
WEARFLOW = [sys.executable, "-m", "wearflow.cli"]


def start_watch(root: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*WEARFLOW, "watch", str(root), "--poll-s", "0.5",
                             "--settle-s", "0.5", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(root: Path, processed: int, files_done: int, issues: int = 0,
             timeout_s: float = 240) -> dict:
    deadline = time.monotonic() + timeout_s
    info: dict = {}
    while time.monotonic() < deadline:
        if (root / "results/wearflow.db").exists():
            try:
                info = study_status(load_study(root))
            except Exception:  # the watcher may hold a write lock for a moment
                time.sleep(0.5)
                continue
            if (info["participants"]["processed"] >= processed
                    and info["files"]["by_state"]["done"] >= files_done
                    and len(_problems(info)) >= issues):
                return info
        time.sleep(0.5)
    raise AssertionError(f"not processed in time: {info}")


def _problems(info: dict) -> list[dict]:
    """The open issues but the short test recordings' own (too short to calibrate)."""
    return [i for i in info["issues"] if i["tag"] != "ALGORITHM_ISSUE"]


def audit(root: Path) -> list[dict[str, str]]:
    out = subprocess.run([*WEARFLOW, "audit", "export", str(root), "--format", "json"],
                         capture_output=True, check=True).stdout
    return list(json.loads(out))


def outputs(root: Path) -> dict[str, str]:
    """sha256 of every result file but provenance.json (it holds run times)."""
    results = root / "results"
    return {str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(results.rglob("*"))
            if p.is_file() and p.name != "provenance.json"
            and p.relative_to(results).parts[0] in ("single-wrist-processed", "processed")}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("rec")
    for k in (1, 2, 3):
        for side in "LR":
            write_csv(src / f"P{k}_{side}.csv", seed=k, hours=0.5)
    return src


def test_watch_processes_landing_files_once(tmp_path: Path, recordings: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY)
    proc = start_watch(tmp_path, "--workers", "2")
    try:
        time.sleep(2)
        for name in ("P2_R.csv", "P1_L.csv", "P3_L.csv"):  # mixed order, in two waves
            shutil.copyfile(recordings / name, tmp_path / "raw" / name)
        (tmp_path / "raw/P4_L.csv").write_bytes(b"\x00garbage\xff" * 50)  # a bad file
        time.sleep(3)
        # an upload in progress: a temporary name, renamed when complete
        shutil.copyfile(recordings / "P1_R.csv", tmp_path / "raw/P1_R.csv.part")
        os.replace(tmp_path / "raw/P1_R.csv.part", tmp_path / "raw/P1_R.csv")
        for name in ("P3_R.csv", "P2_L.csv"):
            shutil.copyfile(recordings / name, tmp_path / "raw" / name)
        info = wait_for(tmp_path, processed=3, files_done=6, issues=1)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    assert code == 0, proc.stderr.read() if proc.stderr else ""
    assert info["files"]["by_state"]["failed"] == 1
    (bad,) = _problems(info)
    assert bad["uri"].endswith("P4_L.csv") and bad["tag"] == "DATA_ISSUE"
    started = [e["object"] for e in audit(tmp_path) if e["action"] == "task.started"]
    assert len(started) == len(set(started)) == 7  # every task ran exactly once
    for k in (1, 2, 3):
        assert len(list((tmp_path / f"results/processed/wrist/P{k}").iterdir())) >= 1


def test_sigkill_then_restart_gives_the_same_outputs(tmp_path: Path, recordings: Path) -> None:
    reference = tmp_path / "reference"
    killed = tmp_path / "killed"
    for root in (reference, killed):
        (root / "raw").mkdir(parents=True)
        (root / "study.yaml").write_text(STUDY)
        for f in recordings.iterdir():
            shutil.copyfile(f, root / "raw" / f.name)
    subprocess.run([*WEARFLOW, "run", str(reference), "--workers", "2"], check=True,
                   capture_output=True)
    proc = start_watch(killed, "--workers", "1")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # kill as soon as the first result exists
        if list((killed / "results").glob("single-wrist-processed/wrist/*/*/*/provenance.json")):
            break
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    done_before = len(list((killed / "results").glob("single-wrist-processed/*/*/*/*")))
    assert 1 <= done_before < 6
    proc = start_watch(killed, "--workers", "2")
    try:
        wait_for(killed, processed=3, files_done=6)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
    got, ref = outputs(killed), outputs(reference)
    assert got == ref
    assert sum(k.startswith("single-wrist-processed") for k in got) >= 6 * 3
