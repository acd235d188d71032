"""Warnings and errors reach stderr as tagged lines, for every study, whether or not its
log goes to a file."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from wearflow.logs import add_file_handler, log_event, remove_handler


def test_warnings_reach_stderr_tagged_beside_the_log_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    handler = add_file_handler(tmp_path / "logs/wearflow.log")
    try:
        log_event("DATA_ISSUE", "cannot be read", level=logging.WARNING, study="S",
                  uri="file:///raw/P1_L.cwa")
        log_event("INFO", "processed", study="S")
    finally:
        remove_handler(handler)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err  # warnings and errors only
    assert re.fullmatch(r"\S+Z \[DATA_ISSUE\] study=S uri=file:///raw/P1_L.cwa cannot be read",
                        err[0]), err
    logged = (tmp_path / "logs/wearflow.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in logged] == [
        "[DATA_ISSUE] study=S uri=file:///raw/P1_L.cwa cannot be read",
        "[INFO] study=S processed"]
