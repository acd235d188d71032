"""The audit trail a study run leaves, manual actions with reasons, and tamper detection
through the command line."""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from study_helpers import write_csv
from wearflow import load_study, run_study, study_status
from wearflow.cli import app
from wearflow.executors import InlineExecutor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
runner = CliRunner()
OS_USER = pwd.getpwuid(os.geteuid()).pw_name

STUDY = """\
study: AUDIT
identity: dr.ada@site-3
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY)
    write_csv(tmp_path / "raw/P1_L.csv", seed=1, hours=0.5)
    (tmp_path / "raw/P1_R.csv").write_bytes(np.random.default_rng(0).bytes(400))
    run_study(load_study(tmp_path), executor=InlineExecutor())
    return tmp_path


def trail(root: Path) -> list[dict[str, str]]:
    out = runner.invoke(app, ["audit", "export", str(root), "--format", "json"]).stdout
    return list(json.loads(out))


def test_run_records_who_did_what(study: Path) -> None:
    entries = trail(study)
    actions = [e["action"] for e in entries]
    assert actions[0] == "study.loaded"
    assert actions.count("file.cataloged") == 2
    assert actions.count("task.started") == 2
    assert {"task.finished", "task.failed", "result.written"} <= set(actions)
    # the declared identity is a claim; the OS user that ran it is recorded beside it
    assert all(e["actor"] == f"dr.ada@site-3 (OS user {OS_USER})" for e in entries)
    failed = next(e for e in entries if e["action"] == "task.failed")
    assert "DATA_ISSUE" in failed["after_json"]
    (study / "study.yaml").write_text(STUDY.replace("AUDIT", "AUDIT").replace(
        "identity: dr.ada@site-3", "identity: dr.bob@site-3"))
    run_study(load_study(study), executor=InlineExecutor())
    changed = [e for e in trail(study) if e["action"] == "study.changed"]
    assert len(changed) == 1
    assert "dr.bob@site-3" in changed[0]["after_json"] and "identity" in changed[0]["after_json"]
    result = runner.invoke(app, ["audit", "verify", str(study)])
    assert result.exit_code == 0 and "intact" in result.output


def test_manual_actions_need_a_reason_and_are_audited(study: Path) -> None:
    no_reason = runner.invoke(app, ["retry", str(study), "P1_R.csv"])
    assert no_reason.exit_code != 0
    blank = runner.invoke(app, ["retry", str(study), "P1_R.csv", "--reason", " "])
    assert blank.exit_code == 2 and "reason is required" in blank.stderr
    ok = runner.invoke(app, ["retry", str(study), "P1_R.csv", "--reason", "site re-uploaded"])
    assert ok.exit_code == 0, ok.output
    assert study_status(load_study(study))["files"]["by_state"]["pending"] == 1
    excl = runner.invoke(app, ["exclude", str(study), "P1_R.csv", "--reason", "never worn"])
    assert excl.exit_code == 0
    report = run_study(load_study(study), executor=InlineExecutor())
    assert report.executed == 0
    status = study_status(load_study(study))
    assert status["files"]["by_state"]["excluded"] == 1
    assert status["issues"] == []
    write_csv(study / "raw/P2_L.csv", seed=2, hours=0.2)
    (study / "raw/P2_L.csv").write_text("timestamp,x\n1,2\n")
    run_study(load_study(study), executor=InlineExecutor())
    (issue,) = study_status(load_study(study))["issues"]
    res = runner.invoke(app, ["resolve", str(study), str(issue["id"]), "--reason",
                              "participant withdrew"])
    assert res.exit_code == 0
    run_study(load_study(study), executor=InlineExecutor())
    assert study_status(load_study(study))["issues"] == []  # stays closed
    manual = {e["action"]: e for e in trail(study) if e["action"].startswith("manual.")}
    assert manual["manual.retry"]["reason"] == "site re-uploaded"
    assert manual["manual.exclude"]["reason"] == "never worn"
    assert manual["manual.resolve"]["reason"] == "participant withdrew"


def test_a_declared_name_never_hides_the_os_user(study: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A root shell declaring an investigator's name: both are recorded, for a run and for
    an unauthenticated manual action; a token user is named by the token alone."""
    me = OS_USER
    no_identity = STUDY.replace("identity: dr.ada@site-3\n", "")
    (study / "study.yaml").write_text(no_identity)
    monkeypatch.setenv("WEARFLOW_USER", "dr.made-up")
    write_csv(study / "raw/P2_L.csv", seed=2, hours=0.2)
    run_study(load_study(study), executor=InlineExecutor())
    cataloged = [e for e in trail(study) if e["action"] == "file.cataloged"][-1]
    assert cataloged["actor"] == f"dr.made-up (OS user {me})"
    done = runner.invoke(app, ["exclude", str(study), "P2_L.csv", "--reason", "never worn"],
                         env={"WEARFLOW_TOKEN": ""})
    assert done.exit_code == 0, done.output
    entry = trail(study)[-1]
    assert entry["actor"] == f"unauthenticated dr.made-up (OS user {me})"
    signature = json.loads(entry["after_json"])["signature"]
    assert (signature["user"], signature["os_user"]) == ("dr.made-up", me)
    monkeypatch.delenv("WEARFLOW_USER")
    runner.invoke(app, ["exclude", str(study), "P2_L.csv", "--undo", "--reason", "worn"],
                  env={"WEARFLOW_TOKEN": ""})
    assert trail(study)[-1]["actor"] == f"unauthenticated OS user {me}"


@pytest.mark.parametrize(
    ("sql", "first_bad"),
    [
        ("update audit_trail set actor = 'mallory' where seq = 3", 3),
        ("delete from audit_trail where seq = 3", 4),
        ("update audit_trail set seq = 99 where seq = 2", 3),  # moved: gap before 3
    ],
)
def test_audit_verify_names_the_first_tampered_entry(study: Path, sql: str,
                                                     first_bad: int) -> None:
    with (sqlite3.connect(study / "results/wearflow.db") as db,
          pytest.raises(sqlite3.IntegrityError, match="append-only")):
        db.execute(sql)  # refused by the database itself (schema revision 0007)
    with sqlite3.connect(study / "results/wearflow.db") as db:  # as its owner: the guard off
        db.execute("drop trigger audit_trail_no_update")
        db.execute("drop trigger audit_trail_no_delete")
        db.execute(sql)
    result = runner.invoke(app, ["audit", "verify", str(study)])
    assert result.exit_code == 1
    assert f"BROKEN at entry {first_bad}" in result.output
