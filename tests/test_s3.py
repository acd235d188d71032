"""The same study on an S3-compatible server: inputs and results in a bucket."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig

from study_helpers import write_csv
from wearflow import load_study, run_study, study_status
from wearflow.executors import InlineExecutor
from wearflow.services.verify import verify_outputs

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning",
                                        "ignore::DeprecationWarning")

STUDY = """\
study: S3
input: s3://{bucket}/raw
output: s3://{bucket}/results
state: sqlite:///state/wearflow.db
storage_options: {{endpoint_url: "{endpoint}"}}
files:
  sensor: ["{{participant}}_{{side}}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


def s3(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def test_study_on_a_bucket(tmp_path: Path, s3_endpoint: str) -> None:
    bucket = f"study-{uuid.uuid4().hex[:8]}"
    client = s3(s3_endpoint)
    client.create_bucket(Bucket=bucket)
    local = tmp_path / "files"
    local.mkdir()
    for name, seed in (("P1_L.csv", 1), ("P1_R.csv", 1), ("P2_L.csv", 2), ("P2_R.csv", 2)):
        write_csv(local / name, seed=seed, hours=1.5 if name == "P1_L.csv" else 0.5)
    multipart = TransferConfig(multipart_threshold=5 * 1024 * 1024,
                               multipart_chunksize=5 * 1024 * 1024)
    big = local / "P1_L.csv"
    assert big.stat().st_size > 5 * 1024 * 1024  # uploaded in parts
    for f in sorted(local.iterdir()):
        client.upload_file(str(f), bucket, f"raw/{f.name}", Config=multipart)
    client.put_object(Bucket=bucket, Key="raw/P3_L.csv.part", Body=b"still uploading")
    (tmp_path / "study.yaml").write_text(STUDY.format(bucket=bucket, endpoint=s3_endpoint))

    study = load_study(tmp_path)
    report = run_study(study, executor=InlineExecutor())
    assert (report.exit_code, report.executed, report.participants_aggregated) == (0, 4, 2)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="results/")
            ["Contents"]]
    assert any(k.startswith("results/single-wrist-processed/wrist/P1/P1_L.csv/")
               and k.endswith("/activity_level_classification.parquet") for k in keys)
    assert any(k.startswith("results/processed/wrist/P2/") and k.endswith("provenance.json")
               for k in keys)
    assert any(k.startswith("results/audit-anchors/") for k in keys)  # the trail's head
    status = study_status(study)
    assert status["participants"] == {"total": 2, "processed": 2}
    assert status["files"]["total"] == 4  # the .part upload is not cataloged
    assert run_study(study, executor=InlineExecutor()).executed == 0
    assert verify_outputs(study).ok
    log = (tmp_path / "state").iterdir()
    assert all(s3_endpoint not in p.read_text(errors="ignore") for p in log if p.is_file()
               and p.suffix != ".db")


def test_watch_a_bucket_woken_by_sqs_notifications(tmp_path: Path, s3_endpoint: str) -> None:
    """Uploads (one multipart, so it notifies twice) plus a duplicate notification: every
    file processed, no task twice; the watcher polls its listing only every 120 s."""
    import signal
    import subprocess
    import sys
    import time

    from wearflow.state import State
    from wearflow.state.audit import AuditTrail

    bucket = f"watch-{uuid.uuid4().hex[:8]}"
    client = s3(s3_endpoint)
    client.create_bucket(Bucket=bucket)
    sqs = boto3.client("sqs", endpoint_url=s3_endpoint, region_name="us-east-1")
    queue = sqs.create_queue(QueueName=bucket)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    client.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    (tmp_path / "study.yaml").write_text(STUDY.format(bucket=bucket, endpoint=s3_endpoint)
                                         + f"notifications: {{sqs_queue_url: '{queue}', "
                                           f"endpoint_url: '{s3_endpoint}'}}\n")
    local = tmp_path / "files"
    local.mkdir()
    for name, seed, hours in (("P1_L.csv", 1, 1.5), ("P1_R.csv", 1, 0.5), ("P2_L.csv", 2, 0.5)):
        write_csv(local / name, seed=seed, hours=hours)
    proc = subprocess.Popen([sys.executable, "-m", "wearflow.cli", "watch", str(tmp_path),
                             "--executor", "inline", "--poll-s", "120", "--settle-s", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)  # the first (empty) cycle
        multipart = TransferConfig(multipart_threshold=5 * 1024 * 1024,
                                   multipart_chunksize=5 * 1024 * 1024)
        for f in sorted(local.iterdir()):
            client.upload_file(str(f), bucket, f"raw/{f.name}", Config=multipart)
        event = {"Records": [{"s3": {"bucket": {"name": bucket},
                                     "object": {"key": "raw/P1_R.csv"}}}]}
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(event))  # a duplicate
        deadline = time.monotonic() + 100
        study = load_study(tmp_path)
        while time.monotonic() < deadline:
            try:
                if study_status(study)["files"]["by_state"]["done"] == 3:
                    break
            except Exception:  # state briefly locked by the watcher
                pass
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert f"notification: s3://{bucket}/raw/P1_L.csv" in stdout
    assert stdout.count(f"notification: s3://{bucket}/raw/P1_R.csv") >= 2
    assert study_status(load_study(tmp_path))["files"]["by_state"]["done"] == 3
    state = State(load_study(tmp_path).state_url)
    try:
        started = [e.object for e in AuditTrail(state.engine).entries()
                   if e.action == "task.started"]
    finally:
        state.close()
    assert len(started) == len(set(started)) == 3


def test_write_once_on_a_bucket_keeps_the_first_object(s3_endpoint: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two writers racing for one key: the PUT is conditional, so the second (which saw
    no object when it looked) neither replaces the first nor fails on identical bytes."""
    from wearflow.errors import OutputExistsError
    from wearflow.storage import Store

    bucket = f"race-{uuid.uuid4().hex[:8]}"
    s3(s3_endpoint).create_bucket(Bucket=bucket)
    store = Store(f"s3://{bucket}/results", {"endpoint_url": s3_endpoint})
    store.write_once("a/provenance.json", b"first")
    monkeypatch.setattr(Store, "exists", lambda self, path: False)  # looked before it existed
    assert store.write_once("a/provenance.json", b"first") == hashlib.sha256(b"first").hexdigest()
    with pytest.raises(OutputExistsError) as raised:
        store.write_once("a/provenance.json", b"second")
    assert raised.value.subject == f"s3://{bucket}/results/a/provenance.json"
    body = s3(s3_endpoint).get_object(Bucket=bucket, Key="results/a/provenance.json")["Body"]
    assert body.read() == b"first"


TAGGED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[[A-Z_]+\] ")


def test_a_study_on_a_bucket_gets_its_log_and_issues_in_the_bucket(
        tmp_path: Path, s3_endpoint: str, capfd: pytest.CaptureFixture[str]) -> None:
    """Each run writes its log as ``logs/<run id>.log`` and its new issues as
    ``issues/<time>-<hash>.jsonl`` (write-once objects); warnings are tagged on stderr."""
    bucket = f"logs-{uuid.uuid4().hex[:8]}"
    client = s3(s3_endpoint)
    client.create_bucket(Bucket=bucket)
    local = tmp_path / "files"
    local.mkdir()
    write_csv(local / "P1_L.csv", seed=1, hours=0.3)
    client.upload_file(str(local / "P1_L.csv"), bucket, "raw/P1_L.csv")
    client.upload_file(str(local / "P1_L.csv"), bucket, "raw/P1_L_copy.csv")  # an issue
    (tmp_path / "study.yaml").write_text(STUDY.format(bucket=bucket, endpoint=s3_endpoint))
    study = load_study(tmp_path)
    capfd.readouterr()

    first = run_study(study, executor=InlineExecutor())
    second = run_study(study, executor=InlineExecutor())  # nothing new: no issues object

    def objects(prefix: str) -> dict[str, str]:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=f"results/{prefix}/")
        return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
                .decode() for o in listed.get("Contents", [])}

    logs = objects("logs")
    assert sorted(logs) == sorted(f"results/logs/{r.run_id}.log"
                                  for r in (first, second))
    lines = logs[f"results/logs/{first.run_id}.log"].splitlines()
    assert lines and all(TAGGED.match(line) for line in lines), lines
    assert any("[INFO]" in line and "processed" in line for line in lines)
    assert any("P1_L_copy.csv" in line and "[INFO]" not in line for line in lines)
    [(key, issues)] = objects("issues").items()
    assert re.fullmatch(r"results/issues/\d{8}T\d{6}Z-[0-9a-f]{16}\.jsonl", key)
    records = [json.loads(line) for line in issues.splitlines()]
    assert records and {r["study"] for r in records} == {"S3"}
    assert any((r["uri"] or "").endswith("/P1_L_copy.csv") for r in records)
    err = capfd.readouterr().err
    warned = [line for line in err.splitlines() if "P1_L_copy.csv" in line]
    assert warned and all(TAGGED.match(line) and "study=S3" in line for line in warned), err
