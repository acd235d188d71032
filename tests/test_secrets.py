"""Credentials in a study file never reach what wearflow records or prints.

The one redaction module (URLs keep all but their credentials; a configuration is masked
by its keys too); error and log lines; the study file (``${VAR}`` in ``state:``,
``$WEARFLOW_STATE_URL``, a state URL that does not parse, fingerprints that a study
without credentials keeps and a rotation does not change); what was recorded before
credentials were masked; an export under an earlier fingerprint. Last, end to end: a
study on PostgreSQL plants a secret everywhere a study file can hold one (the state URL's
password, the issue webhook's user:password@ and ?token=, the alert webhook's, storage
options, the SMTP password's environment variable), is run, has every secret rotated, is
run again, and is asked by every command and the dashboard; deliberately wrong state
URLs fail in one line. Every log, output file, provenance, state table, audit export,
JSON, page and error line is searched: no planted secret anywhere.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, insert, inspect, text
from typer.testing import CliRunner

from study_helpers import write_csv
from wearflow import load_study, run_study
from wearflow.cli import app
from wearflow.config import Study, parse_study
from wearflow.errors import ConfigError, StateError
from wearflow.executors import InlineExecutor
from wearflow.identity import Role
from wearflow.logs import add_file_handler, log_event, remove_handler
from wearflow.redact import redact_config, redact_json, redact_text, redact_url
from wearflow.services.audit import export_audit, verify_audit
from wearflow.services.export import export_results
from wearflow.services.runs import run_detail
from wearflow.services.users import add_user
from wearflow.state import State
from wearflow.state.tables import RunRow
from wearflow.web.app import create_app, study_id

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
cli = CliRunner()


# --- the one redaction module ----------------------------------------------------------

@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql+psycopg://wf:pw@db:5432/trial", "postgresql+psycopg://wf:***@db:5432/trial"),
    ("postgresql+psycopg://wf:p@ss@db/trial", "postgresql+psycopg://wf:***@db/trial"),
    ("postgresql+psycopg://wf@db/trial?password=pw&sslmode=require",
     "postgresql+psycopg://wf@db/trial?password=***&sslmode=require"),
    ("https://u:pw@h/x?token=t&a=1&api_key=k#access_token=z",
     "https://u:***@h/x?token=***&a=1&api_key=***#access_token=***"),
    ("https://h/f?code=c&sig=s&X-Amz-Signature=x&keepalives=1",
     "https://h/f?code=***&sig=***&X-Amz-Signature=***&keepalives=1"),
    # nothing to mask: exactly as written (the fingerprint of such a study is kept)
    ("postgresql+psycopg://wearflow@db/trial?options=-csearch_path%3Dt&passfile=/p",
     "postgresql+psycopg://wearflow@db/trial?options=-csearch_path%3Dt&passfile=/p"),
    ("sqlite:////data/wearflow.db", "sqlite:////data/wearflow.db"),
    ("file:///data/raw/P1_L.cwa", "file:///data/raw/P1_L.cwa"),
])
def test_a_url_keeps_all_but_its_credentials(url: str, masked: str) -> None:
    assert redact_url(url) == masked
    assert redact_text(f"cannot open {url}: refused") == f"cannot open {masked}: refused"


def test_a_configuration_is_masked_by_its_keys_too() -> None:
    config = {"webhook": "https://u:p@hooks.example.org/T/B/tok", "alerts": {
        "webhook": "https://hooks.example.org/..."}, "diff": {"alerts.webhook": {
            "before": "https://h/old-tok", "after": "https://h/new-tok"}},
        "storage_options": {"key": "k", "secret": "s", "endpoint_url": "http://u:p@s3:9000",
                            "client_kwargs": {"aws_session_token": "t", "region_name": "eu"}},
        "metadata": {"columns": {"token": "participant"}}, "workers": 2}
    assert redact_config(config) == {
        "webhook": "https://hooks.example.org/...", "alerts": {
            "webhook": "https://hooks.example.org/..."}, "diff": {"alerts.webhook": {
                "before": "https://h/...", "after": "https://h/..."}},
        "storage_options": {"key": "***", "secret": "***", "endpoint_url": "http://u:***@s3:9000",
                            "client_kwargs": {"aws_session_token": "***", "region_name": "eu"}},
        "metadata": {"columns": {"token": "participant"}}, "workers": 2}
    plain = '{"fingerprint": "ab", "diff": {"workers": {"after": 3, "before": 2}}}'
    assert redact_json(plain) is plain


# --- logs and error lines -------------------------------------------------------------

def test_an_error_or_a_log_line_never_holds_a_url_credential(tmp_path: Path) -> None:
    url = "postgresql+psycopg://wf:pw-PLANTED@db.example.org/trial?sslpassword=q-PLANTED"
    error = StateError(f"cannot open {url}", subject=url)
    assert "PLANTED" not in str(error) + error.message + (error.subject or "")
    assert "wf:***@db.example.org" in str(error)
    handler = add_file_handler(tmp_path / "w.log")
    try:
        log_event("ERROR", "webhook https://u:p-PLANTED@h/x?token=t-PLANTED failed", uri=url)
    finally:
        remove_handler(handler)
    line = (tmp_path / "w.log").read_text()
    assert "PLANTED" not in line and "u:***@h/x?token=***" in line


@pytest.mark.parametrize("url", [
    "postgresql+psycopg:/wf:pw-PLANTED@db.example.org/trial",  # does not parse
    "postgresql+psycopg://wf:pw-PLANTED@db.example.org:port/trial",  # not a port
    "postgresql+psycopg://wf:pw@PLANTED@127.0.0.1:1/trial",  # an @ in the password
    "postgresql+psycopg://wf:pw-PLANTED@127.0.0.1:1/trial?password=q-PLANTED",  # no server
])
def test_a_state_database_that_cannot_be_opened_is_one_line_without_its_password(
        url: str) -> None:
    with pytest.raises(StateError) as info:
        State(url)
    assert "PLANTED" not in str(info.value) and "\n" not in str(info.value)


# --- the study file: variables, the environment, fingerprints -----------------------

BASE = """\
study: FP
input: raw/
output: results/
files: {sensor: ["{participant}_{side}.csv"]}
solutions: [{name: wrist, pipeline: builtin:wrist}]
"""
# The fingerprint is the study's science only. Since deployment profiles (issue 18) it
# leaves out every key a profile may set (wearflow.deployment.DEPLOYMENT_FIELDS: input,
# output, state, storage options, notifications, alerts, ...), so these variants, which
# differ only there, have one fingerprint, pinned. (Before, each had its own, pinned at
# main 4e3f417; a study's first run after the change records a "study.changed" with an
# empty diff, as after credentials left the fingerprint.)
FINGERPRINT = "d6d1485a52720a6b4ee875aab8acd1984d31a5b96144920736158c2c5e37645e"
KEPT = {
    "": FINGERPRINT,
    "state: sqlite:////data/fp/wearflow.db\n": FINGERPRINT,
    "state: postgresql+psycopg://wearflow@db.example.org:5432/trial?sslmode=require\n":
        FINGERPRINT,
    "alerts: {run_failed: true, webhook: 'https://hooks.example.org/T/B/x'}\n"
    "notifications: {sqs_queue_url: 'https://sqs.eu-west-1.amazonaws.com/1/q'}\n"
    "storage_options: {key: k, secret: s}\n": FINGERPRINT,
    "output: s3://results/fp\ninput: [s3://landing/fp]\nexecutor: slurm\n"
    "slurm: {queue: short, memory_gb: 8}\n": FINGERPRINT,
}


def parse(extra: str, environ: dict[str, str] | None = None) -> Study:
    return parse_study(yaml.safe_load(BASE + extra), source="/data/fp/study.yaml",
                       base=Path("/data/fp"), environ=environ or {})


@pytest.mark.parametrize("extra", list(KEPT))
def test_the_deployment_keys_leave_the_fingerprint_as_it_is(extra: str) -> None:
    assert parse(extra).fingerprint() == KEPT[extra]


def test_rotating_a_credential_changes_neither_the_fingerprint_nor_the_recorded_config(
        ) -> None:
    def study(n: int) -> Study:
        return parse(f"state: postgresql+psycopg://wf:pw-{n}-PLANTED@db.example.org/trial"
                     f"?password=qpw-{n}-PLANTED\n"
                     f"webhook: https://hooks.example.org/T/tok-{n}-PLANTED?token=hook-{n}-PLANTED"
                     f"?token=qtok-{n}-PLANTED\n"
                     f"storage_options: {{secret: store-{n}-PLANTED}}\n")

    first, second = study(1), study(2)
    assert first.fingerprint() == second.fingerprint()
    assert first.public_dump() == second.public_dump()
    dump = first.public_dump()
    assert dump["state"] == "postgresql+psycopg://wf:***@db.example.org/trial?password=***"
    assert dump["webhook"] == "https://hooks.example.org/..."
    assert "PLANTED" not in json.dumps(dump) + repr(first)


def test_state_variables_come_from_the_environment() -> None:
    study = parse("state: postgresql+psycopg://wf:${PGPW}@${PGHOST}/trial\n",
                  {"PGPW": "pw-PLANTED", "PGHOST": "db.example.org"})
    assert study.state_url == "postgresql+psycopg://wf:pw-PLANTED@db.example.org/trial"
    assert study.public_dump()["state"] == "postgresql+psycopg://wf:***@db.example.org/trial"
    sqlite = parse("state: sqlite:///${WF_DIR}/wearflow.db\n", {"WF_DIR": "/srv/x"})
    assert sqlite.state_url == "sqlite:////srv/x/wearflow.db"


def test_an_unset_state_variable_is_a_one_line_error_naming_it() -> None:
    with pytest.raises(ConfigError) as info:
        parse("state: postgresql+psycopg://wf:${PGPW}@db.example.org/trial\n",
              {"PGHOST": "x"})
    message = str(info.value)
    assert "PGPW" in message and "not set" in message and "\n" not in message
    assert message.startswith("/data/fp/study.yaml: state:")


def test_the_state_url_comes_from_wearflow_state_url_when_the_study_file_has_none() -> None:
    env = {"WEARFLOW_STATE_URL": "postgresql+psycopg://wf:pw-PLANTED@db.example.org/trial"}
    assert parse("", env).state_url == env["WEARFLOW_STATE_URL"]
    assert parse("", env).public_dump()["state"] == (
        "postgresql+psycopg://wf:***@db.example.org/trial")
    own = "state: sqlite:////data/fp/own.db\n"
    assert parse(own, env).state_url == "sqlite:////data/fp/own.db"  # the study file wins


@pytest.mark.parametrize("state", [
    "postgresql+psycopg:/wf:pw-PLANTED@db.example.org/trial",   # one slash
    "postgresql+psycopg//wf:pw-PLANTED@db.example.org/trial",   # no colon
    "postgresql+psycopg://wf:pw-PLANTED@db.example.org:port/trial",  # not a port
    "postgresql+psycopg://wf:pw@PLANTED@db.example.org/trial",  # an @ in the password
])
def test_a_state_url_that_does_not_parse_is_a_one_line_error_without_its_password(
        state: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(f"state: '{state}'\n")
    message = str(info.value)
    assert message.startswith("/data/fp/study.yaml: state: ") and "\n" not in message
    assert "PLANTED" not in message


# --- what was recorded before credentials were masked -------------------------------

def test_configurations_and_audit_entries_recorded_before_are_shown_masked(
        tmp_path: Path) -> None:
    """A run recorded its configuration whole (the state's password, the webhook's
    token): the next run records no change for it (the fingerprint's new definition is
    one `study.changed` with an empty diff), `runs` and `audit export` mask the secrets,
    and the trail still verifies."""
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(
        BASE + "webhook: https://127.0.0.1:9/x?token=tok-PLANTED&password=hook-PLANTED\n")
    study = load_study(tmp_path)
    old = {**study.public_dump(), "webhook": "https://u:hook-PLANTED@127.0.0.1:9/x?token="
           "tok-PLANTED"}
    with State(study.state_url) as state:
        with state.engine.begin() as db:
            db.execute(insert(RunRow).values(
                id="20260101T000000-old", study=study.study, study_fingerprint="0" * 64,
                config_json=json.dumps(old, sort_keys=True), host="elsewhere", pid=1,
                user="ann", started_utc="2026-01-01T00:00:00.000Z", counts_json="{}"))
        state.audit.record("ann", "study.changed", study.source, after={
            "fingerprint": "0" * 64, "diff": {"state": {
                "before": "postgresql+psycopg://wf:pw0-PLANTED@db/trial",
                "after": "postgresql+psycopg://wf:pw-PLANTED@db/trial"}}})
    run_study(study, executor=InlineExecutor())
    assert "PLANTED" not in json.dumps(run_detail(study, "20260101T000000-old").to_json())
    export = tmp_path / "audit.json"
    export_audit(study, export, "json")
    entries = json.loads(export.read_text())
    assert "PLANTED" not in export.read_text()
    assert "wf:***@db" in entries[0]["after_json"]
    changed = [json.loads(e["after_json"]) for e in entries if e["action"] == "study.changed"]
    assert changed[1] == {"fingerprint": study.fingerprint(), "diff": {}}
    assert verify_audit(study).ok


# --- an export under an earlier fingerprint -----------------------------------------

def test_an_export_made_under_an_earlier_fingerprint_is_the_same_export(
        tmp_path: Path) -> None:
    """Leaving credentials out changes the fingerprint of a study that held some; the
    export of unchanged results is still the same export (not another one in its way)."""
    (tmp_path / "raw").mkdir()
    write_csv(tmp_path / "raw/P1_L.csv", seed=1, hours=0.2)
    (tmp_path / "study.yaml").write_text(BASE)
    before = load_study(tmp_path)
    run_study(before, executor=InlineExecutor())
    first = export_results(before)
    (tmp_path / "study.yaml").write_text(BASE + "metadata: {wait_deadline_h: 48}\n")
    after = load_study(tmp_path)
    assert after.fingerprint() != before.fingerprint()
    assert export_results(after).location == first.location


# --- end to end ------------------------------------------------------------------------

STUDY = """\
study: SECRETS
input: raw/
output: results/
files:
  sensor: ["{{participant}}_{{side}}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
state: {state}
webhook: http://127.0.0.1:{port}/issues?token=hooktok-{n}-PLANTED
storage_options: {{secret: store-{n}-PLANTED}}
alerts:
  run_failed: true
  webhook: http://alertuser:alertpw-{n}-PLANTED@127.0.0.1:{port}/alerts?token=alerttok-{n}-PLANTED
  email: {{smtp_host: 127.0.0.1, smtp_port: {closed}, from: w@example.org,
           to: [a@example.org], username: alerts, password_env: WF_TEST_SMTP}}
"""
KINDS = ("pgpw", "hookpw", "hooktok", "store", "alertpw", "alerttok", "smtp", "wrongpw")


def planted(n: int) -> list[str]:
    return [f"{kind}-{n}-PLANTED" for kind in KINDS]


class Receiver:
    """A webhook on 127.0.0.1 that answers every POST 200 and keeps its path and headers."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str]]] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                posts.append((self.path, dict(self.headers)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_password(url: str, password: str) -> str:
    """``postgresql+psycopg://postgres@host/db`` with a password (the test server trusts
    every login, so any password connects)."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def every_table(url: str) -> str:
    """The text of every value of every row of every table of the state database (a
    row's repr would cut long values)."""
    engine = create_engine(url)
    try:
        with engine.connect() as db:
            return "\n".join(str(value) for table in inspect(db).get_table_names()
                             for row in db.execute(text(f'SELECT * FROM "{table}"'))
                             for value in row)
    finally:
        engine.dispose()


def every_file(root: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace")
                     for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".yaml"
                     and "raw" not in p.relative_to(root).parts)


def dashboard(root: Path, run_id: str, printed: list[str]) -> None:
    """Every page and API answer of the dashboard about the study, its run and files."""
    from fastapi.testclient import TestClient  # warns (deprecated httpx) when imported

    study = load_study(root)
    client = TestClient(create_app([study], session_secret="t"))
    headers = {"Authorization": f"Bearer {add_user(study, 'val', Role.VIEWER)}"}
    sid = study_id(study)
    for path in ("/", f"/s/{sid}/", f"/s/{sid}/runs/{run_id}", f"/s/{sid}/issues?state=all",
                 f"/api/s/{sid}/overview", f"/api/s/{sid}/runs/{run_id}",
                 f"/api/s/{sid}/issues?state=all", "/metrics",
                 *(f"/{api}s/{sid}/files/{n}" for n in (1, 2, 3, 4) for api in ("", "api/"))):
        answer = client.get(path, headers=headers)
        assert answer.status_code == 200, (path, answer.text)
        printed.append(answer.text)


def test_no_planted_secret_reaches_any_record_output_or_error_line(
        tmp_path: Path, pg_url: str, receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "study"
    (root / "raw").mkdir(parents=True)
    write_csv(root / "raw/P1_L.csv", seed=1, hours=0.2)
    write_csv(root / "raw/P1_R.csv", seed=2, hours=0.2)
    (root / "raw/P2_L.csv").write_text("not,a\nrecording\n")  # fails: an issue, an alert
    port, closed = receiver.port, closed_port()

    def study_file(n: int, state: str) -> None:
        (root / "study.yaml").write_text(STUDY.format(n=n, state=state, port=port,
                                                      closed=closed))

    printed: list[str] = []

    def wearflow(command: str, *args: str, code: int | None = 0) -> str:
        result = cli.invoke(app, [*command.split(), str(root), *args])
        printed.extend([result.stdout, result.stderr])
        if code is not None:
            assert result.exit_code == code, (command, args, result.output)
        return result.stdout

    monkeypatch.setenv("WF_TEST_SMTP", "smtp-1-PLANTED")
    study_file(1, with_password(pg_url, "pgpw-1-PLANTED"))
    wearflow("run", "--executor", "inline", code=1)  # P2_L failed
    # every secret rotated; the state's password now from the environment, as deploy.md
    monkeypatch.setenv("WF_TEST_SMTP", "smtp-2-PLANTED")
    monkeypatch.setenv("WF_TEST_PGPW", "pgpw-2-PLANTED")
    study_file(2, with_password(pg_url, "${WF_TEST_PGPW}"))
    (root / "raw/P3_L.csv").write_text("not,a\nrecording\n")  # a second issue to post
    wearflow("run", "--executor", "inline", code=1)
    runs = json.loads(wearflow("runs", "--json"))
    assert len(runs) == 2
    detail = json.loads(wearflow("runs", runs[0]["run_id"], "--json"))
    assert detail["config"]["state"] == with_password(pg_url, "***")
    assert detail["config"]["webhook"] == f"http://127.0.0.1:{port}/..."
    wearflow("status", "--json")
    wearflow("validate", "--json")
    wearflow("alerts", "--json")
    wearflow("report", code=None)
    audit = json.loads(wearflow("audit export", "--format", "json"))
    wearflow("audit export", "--format", "csv")
    # a rotation changes neither the study's fingerprint nor its configuration as recorded
    assert [e["action"] for e in audit].count("study.loaded") == 1
    assert "study.changed" not in [e["action"] for e in audit]
    fingerprints = {json.loads(e["after_json"])["fingerprint"] for e in audit
                    if e["action"] == "study.loaded"}
    assert fingerprints == {detail["study_fingerprint"]}
    dashboard(root, detail["run"]["run_id"], printed)
    # the webhooks got their credentials (as a header) and their tokens (in the URL)
    paths = sorted({path for path, _ in receiver.posts})
    assert paths == ["/alerts?token=alerttok-1-PLANTED", "/issues?token=hooktok-1-PLANTED",
                     "/issues?token=hooktok-2-PLANTED"]

    # a wrong state URL: one line, no password
    wrong_pw = with_password(pg_url, "wrongpw-1-PLANTED")
    for wrong in (wrong_pw.replace("://", ":/"),  # does not parse
                  wrong_pw.rsplit(":", 1)[0] + ":port/db",  # not a port
                  with_password(pg_url, "wrongpw@1-PLANTED"),  # an @ in the password
                  wrong_pw.rsplit(":", 1)[0] + ":1/db"):  # no server there
        study_file(2, wrong)
        result = cli.invoke(app, ["status", str(root)])
        printed.extend([result.stdout, result.stderr])
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.splitlines()
        assert line.startswith("error [PIPELINE_ISSUE] "), line

    everything = {"printed": "\n".join(printed), "files": every_file(root),
                  "state": every_table(pg_url)}
    # what is searched holds the configuration, masked, and the log
    assert "postgres:***@127.0.0.1" in everything["state"]
    assert "alert fired" in everything["files"] and "postgres:***@" in everything["printed"]
    for n in (1, 2):
        for secret in [*planted(n), "wrongpw@1-PLANTED", "1-PLANTED"]:
            for where, content in everything.items():
                assert secret not in content, (secret, where)
