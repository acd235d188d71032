"""Credentials never reach what wearflow records or prints: the one redaction module (URLs
keep all but their credentials; a configuration is masked by its keys too), error lines
and log lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from wearflow.errors import StateError
from wearflow.logs import add_file_handler, log_event, remove_handler
from wearflow.redact import redact_config, redact_json, redact_text, redact_url
from wearflow.state import State

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
