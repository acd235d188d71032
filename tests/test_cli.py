"""The command line: init, validate, run, status, issues; errors are one line, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wearflow.cli import app

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_init_validate_run_status(tmp_path: Path, real_dir: Path) -> None:
    study = tmp_path / "s"
    result = runner.invoke(app, ["init", str(study), "--name", "T-1"])
    assert result.exit_code == 0, result.output
    assert (study / "study.yaml").exists() and (study / "raw").is_dir()
    assert runner.invoke(app, ["init", str(study)]).exit_code == 2  # never overwrites
    result = runner.invoke(app, ["validate", str(study)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output
    (study / "raw/P1_L.cwa").write_bytes((real_dir / "cwa/casson_example.cwa").read_bytes())
    (study / "raw/P1_R.cwa").write_bytes(b"not a recording")
    result = runner.invoke(app, ["run", str(study), "--executor", "inline"])
    assert result.exit_code == 1, result.output  # one file failed, documented code
    assert "1 done, 1 failed" in result.output
    result = runner.invoke(app, ["status", str(study), "--json"])
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["files"]["total"] == 2
    assert info["files"]["by_state"]["done"] == 1
    assert info["files"]["by_state"]["failed"] == 1
    assert info["participants"] == {"total": 1, "processed": 1}
    (issue,) = info["issues"]
    assert issue["tag"] == "DATA_ISSUE" and issue["uri"].endswith("P1_R.cwa")
    result = runner.invoke(app, ["issues", str(study), "--json", "--tag", "DATA_ISSUE"])
    assert [i["uri"] for i in json.loads(result.stdout)] == [issue["uri"]]
    again = runner.invoke(app, ["run", str(study), "--executor", "inline"])
    assert "0 tasks executed" in again.output


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "study file not found"),
        ("study: X\ninput: raw/\noutput: out/\nfiles: {sensor: ['{participant}.cwa']}\n"
         "solutions: [{name: w, pipeline: builtin:wrist}]\nextra: 1\n", "extra: unknown key"),
        ("study: X\ninput: nowhere/\noutput: out/\nfiles: {sensor: ['{participant}.cwa']}\n"
         "solutions: [{name: w, pipeline: builtin:wrist}]\n", "does not exist"),
        ("study: X\ninput: .\noutput: out/\nfiles: {sensor: ['{participant}.cwa']}\n"
         "solutions: [{name: w, pipeline: missing.skdh}]\n", "cannot read pipeline file"),
        ("study: X\ninput: .\noutput: out/\nfiles: {sensor: ['{participant}.cwa']}\n"
         "solutions: [{name: w, pipeline: builtin:wrist, sha256: '" + "0" * 64 + "'}]\n",
         "the study pins"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_errors_are_one_line_with_exit_code_2(
    tmp_path: Path, content: str | None, expected: str, command: str
) -> None:
    if content is not None:
        (tmp_path / "study.yaml").write_text(content)
    result = runner.invoke(app, [command, str(tmp_path)])
    assert result.exit_code == 2
    assert expected in result.stderr
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    subject = "wrist.skdh" if "pins" in expected else str(tmp_path)
    assert subject in line
