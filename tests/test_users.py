"""Users, roles and signed manual actions from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wearflow.cli import app
from wearflow.config import load_study
from wearflow.state import State

runner = CliRunner()
STUDY = """\
study: USERS
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.csv"]
  sides: {left: [L], right: [R]}
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    """A study whose only file is broken: one failed task to retry, fast."""
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "P001_L.csv").write_text("timestamp,x,y,z\nnot,a,number,here\n")
    (tmp_path / "study.yaml").write_text(STUDY)
    assert runner.invoke(app, ["run", str(tmp_path)]).exit_code == 1
    return tmp_path


def add(study: Path, name: str, role: str, token: str | None = None) -> str:
    args = ["users", "add", str(study), name, "--role", role]
    result = runner.invoke(app, args + (["--token", token] if token else []))
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def audit(study: Path) -> list[dict[str, object]]:
    result = runner.invoke(app, ["audit", "export", str(study), "--format", "json"])
    entries: list[dict[str, object]] = json.loads(result.stdout)
    return entries


def test_a_token_is_shown_once_and_only_its_hash_is_kept(study: Path) -> None:
    token = add(study, "ana", "admin")
    assert token.startswith("wf_") and len(token) > 40
    listing = runner.invoke(app, ["users", "list", str(study), "--json"])
    assert token not in listing.stdout
    [user] = json.loads(listing.stdout)
    assert (user["name"], user["role"], user["active"]) == ("ana", "admin", True)
    assert user["created_by"].startswith("unauthenticated OS user ")
    assert set(user) == {"name", "role", "created_utc", "created_by", "active"}
    with State(load_study(study).state_url) as state:
        dump = "\n".join(str(row) for row in state.engine.connect().exec_driver_sql(
            "select * from users"))
    assert token not in dump and "wf_" not in dump
    assert token not in json.dumps(audit(study))


def test_a_signed_action_names_the_user_and_role(study: Path) -> None:
    admin = add(study, "ana", "admin")
    operator = add(study, "ole", "operator", admin)
    viewer = add(study, "vic", "viewer", admin)
    refused = runner.invoke(app, ["retry", str(study), "P001_L.csv", "--reason", "x",
                                  "--token", viewer])
    assert refused.exit_code == 2 and "vic is a viewer" in refused.output
    wrong = runner.invoke(app, ["retry", str(study), "P001_L.csv", "--reason", "x",
                                "--token", "wf_not-a-token"])
    assert wrong.exit_code == 2 and "not an active user" in wrong.output
    done = runner.invoke(app, ["retry", str(study), "P001_L.csv", "--reason",
                               "re-exported by the site", "--token", operator])
    assert done.exit_code == 0, done.output
    entry = audit(study)[-1]
    assert entry["action"] == "manual.retry"
    assert entry["actor"] == "ole (operator, token)"
    assert entry["reason"] == "re-exported by the site"
    signature = json.loads(str(entry["after_json"]))["signature"]
    assert signature == {"user": "ole", "role": "operator", "authenticated_by": "token",
                         "meaning": "re-exported by the site"}


def test_without_a_token_the_os_user_is_named_unauthenticated(study: Path) -> None:
    result = runner.invoke(app, ["exclude", str(study), "P001_L.csv", "--reason", "bad"],
                           env={"WEARFLOW_TOKEN": ""})
    assert result.exit_code == 0, result.output
    entry = audit(study)[-1]
    assert str(entry["actor"]).startswith("unauthenticated OS user ")


def test_only_an_admin_manages_users_and_a_disabled_token_stops_working(study: Path) -> None:
    admin = add(study, "ana", "admin")
    operator = add(study, "ole", "operator", admin)
    refused = runner.invoke(app, ["users", "add", str(study), "eve", "--role", "admin",
                                  "--token", operator])
    assert refused.exit_code == 2 and "needs an admin" in refused.output
    assert runner.invoke(app, ["users", "disable", str(study), "ole", "--token",
                               admin]).exit_code == 0
    after = runner.invoke(app, ["retry", str(study), "P001_L.csv", "--reason", "x",
                                "--token", operator])
    assert after.exit_code == 2 and "not an active user" in after.output
    duplicate = runner.invoke(app, ["users", "add", str(study), "ana"])
    assert duplicate.exit_code == 2 and "exists" in duplicate.output
    bad_role = runner.invoke(app, ["users", "add", str(study), "zed", "--role", "boss"])
    assert bad_role.exit_code == 2 and "unknown role" in bad_role.output
