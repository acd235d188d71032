from __future__ import annotations

from pathlib import Path

import pytest

from wearflow.config import load_study
from wearflow.errors import ConfigError

MINIMAL = """\
study: DEMO-001
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.cwa", "{participant}_{side}.bin", "{participant}_{side}.csv"]
  sides: {left: [L, LW, left], right: [R, RW, right]}
solutions:
  - name: wrist
    pipeline: builtin:wrist
state: sqlite:///results/wearflow.db
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_minimal_contract_loads_and_resolves_paths(tmp_path: Path) -> None:
    study = load_study(write(tmp_path, MINIMAL))
    assert study.study == "DEMO-001"
    assert study.input == (str(tmp_path / "raw"),)
    assert study.output == str(tmp_path / "results")
    assert study.state_url == f"sqlite:///{tmp_path / 'results' / 'wearflow.db'}"
    assert study.solutions[0].pipeline == "builtin:wrist"


def test_folder_is_accepted_for_study_file(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL)
    assert load_study(tmp_path).study == "DEMO-001"


def test_input_list_and_uri_and_default_state(tmp_path: Path) -> None:
    text = MINIMAL.replace("input: raw/", "input: [raw/, 'file:///data/site2']").replace(
        "state: sqlite:///results/wearflow.db\n", "")
    study = load_study(write(tmp_path, text))
    assert study.input == (str(tmp_path / "raw"), "file:///data/site2")
    assert study.state_url == f"sqlite:///{tmp_path / 'results' / 'wearflow.db'}"


def test_fingerprint_is_stable_and_changes_with_content(tmp_path: Path) -> None:
    a = load_study(write(tmp_path, MINIMAL)).fingerprint()
    assert a == load_study(tmp_path / "study.yaml").fingerprint()
    b = load_study(write(tmp_path, MINIMAL.replace("DEMO-001", "DEMO-002"))).fingerprint()
    assert a != b


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL + "colour: blue\n", "colour: unknown key"),
        (MINIMAL.replace("    pipeline: builtin:wrist\n", "    pipline: builtin:wrist\n"),
         "solutions.0.pipline: unknown key"),
        (MINIMAL.replace("{participant}_{side}.cwa", "{subject}_{side}.cwa"),
         "unknown field(s) ['subject']"),
        (MINIMAL.replace('"{participant}_{side}.bin", ', ""), ""),  # still valid
        (MINIMAL.replace("study: DEMO-001\n", ""), "study: Field required"),
        (MINIMAL + "time_zone: Mars/Olympus\n", "not an IANA time-zone name"),
        (MINIMAL.replace("right: [R, RW, right]", "right: [R, L]"), "both left and right"),
        ("just a string\n", "must be a YAML mapping"),
        ("study: [unclosed\n", "not valid YAML at line"),
    ],
)
def test_invalid_study_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    if not expected:
        load_study(path)
        return
    with pytest.raises(ConfigError) as info:
        load_study(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_missing_study_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="study file not found"):
        load_study(tmp_path / "nope.yaml")
