"""Deployment profiles: where and how a study runs, apart from what it computes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from study_helpers import write_csv
from wearflow.cli import app
from wearflow.config import load_study as load_study_file
from wearflow.errors import ConfigError
from wearflow.profiles import load_study

runner = CliRunner()

STUDY = """\
study: PROFILED
input: raw/
output: results/
files: {sensor: ["{participant}_{side}.csv"]}
solutions: [{name: wrist, pipeline: builtin:wrist}]
alerts: {run_failed: true}
"""

PROFILES = """\
profiles:
  dev:
    executor: inline
    output: out-dev/
    state: sqlite:///state-dev.db
  prod:
    executor: local
    workers: 2
    memory_limit_gb: 4
    output: out-prod/
    state: sqlite:///state-prod.db
    alerts: {webhook: "${HOOK}"}
    task_timeout_s: 900
"""


def study_dir(tmp_path: Path, profiles: str = PROFILES, study: str = STUDY) -> Path:
    (tmp_path / "raw").mkdir(parents=True, exist_ok=True)
    (tmp_path / "study.yaml").write_text(study)
    (tmp_path / "wearflow.profiles.yaml").write_text(profiles)
    return tmp_path


def refused(root: Path, profile: str, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_study(root, profile=profile, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


# --- what a profile sets ----------------------------------------------------------------

def test_a_profile_overrides_the_study_file_and_is_recorded(tmp_path: Path) -> None:
    root = study_dir(tmp_path)
    plain = load_study_file(root)
    prod = load_study(root, profile="prod", environ={"HOOK": "https://hooks.example.org/T/x"})
    assert (prod.executor, prod.workers, prod.memory_limit_gb) == ("local", 2, 4.0)
    assert prod.output == str(root / "out-prod")
    assert prod.state == f"sqlite:///{root / 'state-prod.db'}"
    # a mapping merges key by key: the study's alert rule stays, the profile adds a target
    assert prod.alerts.run_failed and prod.alerts.webhook == "https://hooks.example.org/T/x"
    assert prod.task_timeout_s == 900
    assert prod.profile == "prod" and plain.profile is None
    dump = prod.public_dump()
    assert dump["profile"] == "prod" and "profile" not in plain.public_dump()
    assert dump["alerts"]["webhook"] == "https://hooks.example.org/..."
    # the science, and so the fingerprint, is the study file's alone
    dev = load_study(root, profile="dev")
    assert plain.fingerprint() == dev.fingerprint() == prod.fingerprint()


def test_the_profile_comes_from_wearflow_profile_and_the_file_from_wearflow_profiles(
        tmp_path: Path) -> None:
    root = study_dir(tmp_path / "study")
    elsewhere = tmp_path / "deploy"
    elsewhere.mkdir()
    (root / "wearflow.profiles.yaml").unlink()
    (elsewhere / "envs.yaml").write_text(PROFILES)
    study = load_study(root, environ={"WEARFLOW_PROFILE": "dev",
                                      "WEARFLOW_PROFILES": str(elsewhere / "envs.yaml")})
    assert study.profile == "dev" and study.executor == "inline"
    # a profile's relative locations are its file's folder's, not the study's
    assert study.output == str(elsewhere / "out-dev")
    assert study.state == f"sqlite:///{elsewhere / 'state-dev.db'}"
    assert study.input == (str(root / "raw"),)


def test_without_a_profile_the_study_file_is_as_it_is(tmp_path: Path) -> None:
    root = study_dir(tmp_path)
    study = load_study(root, environ={})
    assert study == load_study_file(root) and study.profile is None


# --- what a profile may not do ----------------------------------------------------------

@pytest.mark.parametrize("key", ["solutions", "files", "metadata", "qc", "time_zone", "study"])
def test_a_profile_may_not_set_the_science(tmp_path: Path, key: str) -> None:
    root = study_dir(tmp_path, PROFILES + f"  lab:\n    {key}: {{}}\n")
    message = refused(root, "lab")
    assert message == (f"{root / 'wearflow.profiles.yaml'}: profile lab: {key}: refused: it "
                       "is the study's science (it changes results and the fingerprint): set "
                       "it in the study file")


def test_an_unknown_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    root = study_dir(tmp_path, "profiles:\n  lab: {wrokers: 3}\n")
    message = refused(root, "lab")
    assert "profile lab: wrokers: refused: not a key a profile can set (did you mean " \
           "workers?); a profile sets: alerts, audit, executor," in message


def test_an_unknown_profile_lists_the_known_ones(tmp_path: Path) -> None:
    root = study_dir(tmp_path)
    assert refused(root, "prd") == (f"{root / 'wearflow.profiles.yaml'}: no profile 'prd'; "
                                    "known profiles: dev, prod")
    result = runner.invoke(app, ["status", str(root), "--profile", "prd"])
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("no profile 'prd'; known profiles: dev, prod")


def test_a_profile_without_a_profiles_file_is_an_error(tmp_path: Path) -> None:
    root = study_dir(tmp_path)
    (root / "wearflow.profiles.yaml").unlink()
    assert "profile 'dev' asked for, but there is no profiles file" in refused(root, "dev")


def test_an_invalid_value_from_a_profile_names_the_profile(tmp_path: Path) -> None:
    root = study_dir(tmp_path, "profiles:\n  lab: {workers: 0}\n")
    message = refused(root, "lab")
    assert message.startswith(f"{root / 'study.yaml'}: with profile lab "
                              f"({root / 'wearflow.profiles.yaml'}): ")
    assert "workers" in message


def test_a_profiles_file_must_be_profiles_by_name(tmp_path: Path) -> None:
    root = study_dir(tmp_path, "dev: {executor: inline}\n")
    assert "a profiles file is one key, profiles:" in refused(root, "dev")


# --- secrets ------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "postgresql+psycopg://wf:pw-PLANTED@db.example.org/trial",
    "postgresql+psycopg://wf:pre-${PGPW}@db.example.org/trial",  # half a reference
    "postgresql+psycopg://wf@db.example.org/trial?password=pw-PLANTED",
])
def test_a_password_written_in_a_profile_is_refused(tmp_path: Path, url: str) -> None:
    root = study_dir(tmp_path, f"profiles:\n  prod: {{state: '{url}'}}\n")
    message = refused(root, "prod", environ={"PGPW": "x"})
    assert "profile prod: state: refused: the database password is written out; write it " \
           "as ${VAR} (from the environment) or ${file:PATH}" in message
    assert "PLANTED" not in message


def test_a_credential_in_the_storage_options_is_refused(tmp_path: Path) -> None:
    root = study_dir(tmp_path, "profiles:\n  prod:\n    storage_options:\n"
                               "      key: ${AWS_KEY}\n      secret: s-PLANTED\n")
    message = refused(root, "prod", environ={"AWS_KEY": "k"})
    assert "profile prod: storage_options: secret: refused: a credential written out" in message
    assert "PLANTED" not in message


def test_secrets_come_from_the_environment_or_a_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "pg").write_text("pw-from-file\n")
    root = study_dir(tmp_path / "s", "profiles:\n  prod:\n"
                     "    state: postgresql+psycopg://wf:${file:" + str(secrets / "pg") +
                     "}@${PGHOST}/trial\n"
                     "    storage_options: {key: '${AWS_KEY}', secret: '${file:../secrets/pg}',"
                     " client_kwargs: {region_name: eu-west-1}}\n")
    study = load_study(root, profile="prod", environ={"PGHOST": "db.example.org",
                                                      "AWS_KEY": "key-from-env"})
    assert study.state == "postgresql+psycopg://wf:pw-from-file@db.example.org/trial"
    assert study.storage_options == {"key": "key-from-env", "secret": "pw-from-file",
                                     "client_kwargs": {"region_name": "eu-west-1"}}
    recorded = json.dumps(study.public_dump())
    assert "pw-from-file" not in recorded and "key-from-env" not in recorded
    assert study.public_dump()["state"] == "postgresql+psycopg://wf:***@db.example.org/trial"


def test_an_unset_variable_or_a_missing_secret_file_is_one_line(tmp_path: Path) -> None:
    root = study_dir(tmp_path, "profiles:\n  prod: {state: 'postgresql://wf:${PGPW}@db/t'}\n"
                               "  stage: {state: 'postgresql://wf:${file:nowhere}@db/t'}\n")
    assert "profile prod: state: the environment variable PGPW is not set" in refused(
        root, "prod", environ={})
    assert "profile stage: state: cannot read ${file:nowhere} (FileNotFoundError)" in refused(
        root, "stage", environ={})


# --- one study, two profiles, the same results ------------------------------------------

def results(output: Path) -> dict[str, bytes]:
    """Every file of the per-wrist and participant result folders, by its relative path."""
    found = {str(p.relative_to(output)): p.read_bytes()
             for folder in ("single-wrist-processed", "processed")
             for p in sorted((output / folder).rglob("*")) if p.is_file()}
    assert found
    return found


# what legitimately names the run: its id, and when it ran; and a study summary's
# provenance names its inputs (the participant results) by their URI in the output
RUN_FIELDS = ("run_id", "started_utc", "finished_utc")


def test_the_same_study_under_two_profiles_gives_byte_identical_results(
        tmp_path: Path) -> None:
    root = study_dir(tmp_path)
    for name, seed in (("P1_L", 1), ("P1_R", 2), ("P2_L", 3)):
        write_csv(root / "raw" / f"{name}.csv", seed=seed, hours=0.5)
    for profile in ("dev", "prod"):  # inline vs 2 local worker processes, two databases
        result = runner.invoke(app, ["run", str(root), "--profile", profile],
                               env={"HOOK": "http://127.0.0.1:9/hook"})
        assert result.exit_code == 0, result.output
    dev, prod = results(root / "out-dev"), results(root / "out-prod")
    assert sorted(dev) == sorted(prod)
    assert any(path.endswith("/activity_level_classification.csv") for path in dev)
    assert any(path.startswith("processed/wrist/study-summary/") for path in dev)
    names_output = {p for p, data in dev.items() if str(root / "out-dev").encode() in data}
    assert names_output == {p for p in dev if p.startswith("processed/wrist/study-summary/")
                            and p.endswith("/provenance.json")}
    for path in sorted(dev):
        if path.endswith("provenance.json"):
            a, b = (json.loads(files[path].decode().replace(str(root / f"out-{name}"), "OUT"))
                    for files, name in ((dev, "dev"), (prod, "prod")))
            assert a["run_id"] != b["run_id"]
            for field in RUN_FIELDS:
                a.pop(field), b.pop(field)
            # the study fingerprint and every output's sha256 included
            assert a == b, path
        else:
            assert dev[path] == prod[path], path
    # each run recorded its profile, in its own state database
    for profile in ("dev", "prod"):
        engine = create_engine(f"sqlite:///{root / f'state-{profile}.db'}")
        with engine.connect() as conn:
            config = conn.execute(text("SELECT config_json FROM runs")).scalar_one()
        engine.dispose()
        assert json.loads(config)["profile"] == profile
    shown = runner.invoke(app, ["status", str(root), "--profile", "prod"],
                          env={"HOOK": "http://127.0.0.1:9/hook"})
    assert shown.exit_code == 0 and "study PROFILED (profile prod): 3 files" in shown.stdout
    assert not (root / "results").exists()  # the study file's own output was never used


def test_the_documented_profiles_example_holds(tmp_path: Path) -> None:
    """docs/deploy.md's example: every profile passes the key and secret checks (those
    reading /run/secrets stop only there), and dev and hpc load."""
    doc = (Path(__file__).parents[1] / "docs/deploy.md").read_text()
    example = doc.split("# wearflow.profiles.yaml\n", 1)[1].split("```", 1)[0]
    root = study_dir(tmp_path, example)
    env = {name: "x" for name in ("STAGE_DB_PASSWORD", "STAGE_S3_KEY",
                                  "STAGE_ALERTS_WEBHOOK", "PROD_ALERTS_WEBHOOK")}
    assert load_study(root, profile="dev", environ=env).executor == "inline"
    hpc = load_study(root, profile="hpc", environ=env)
    assert hpc.slurm is not None and hpc.slurm.jobs == 10
    for name in ("stage", "prod"):
        assert f"profile {name}: " in refused(root, name, environ=env)
        assert "cannot read ${file:/run/secrets/" in refused(root, name, environ=env)
