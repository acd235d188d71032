"""The audit trail's head kept outside the database (signed anchors): truncation and
re-hashing caught by `audit verify` and `verify`, with and without a key."""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from study_helpers import write_csv
from wearflow import load_study, run_study
from wearflow.cli import app
from wearflow.executors import InlineExecutor
from wearflow.state.audit import GENESIS_HASH, AuditEntry, compute_hash

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
runner = CliRunner()
KEY = "k" * 40

STUDY = """\
study: ANCHORED
input: raw/
output: results/
files:
  sensor: ["{{participant}}_{{side}}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
{audit}
"""


def make(root: Path, audit: str = "") -> Path:
    (root / "raw").mkdir(parents=True)
    (root / "study.yaml").write_text(STUDY.format(audit=audit))
    write_csv(root / "raw/P1_L.csv", seed=1, hours=0.2)
    return root


def run(root: Path) -> None:
    run_study(load_study(root), executor=InlineExecutor())


@pytest.fixture()
def study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("WEARFLOW_AUDIT_KEY", raising=False)
    root = make(tmp_path)
    run(root)
    return root


def owner(root: Path) -> sqlite3.Connection:
    """The database as its owner, who can drop the append-only triggers first."""
    db = sqlite3.connect(root / "results/wearflow.db")
    db.execute("drop trigger if exists audit_trail_no_update")
    db.execute("drop trigger if exists audit_trail_no_delete")
    return db


def entries(root: Path) -> list[AuditEntry]:
    with sqlite3.connect(root / "results/wearflow.db") as db:
        return [AuditEntry(*r) for r in db.execute("select * from audit_trail order by seq")]


def rehash_everything(root: Path, actor: str = "mallory") -> AuditEntry:
    """Rewrite every entry with a new actor and fresh hashes: a chain that verifies on
    its own. Returns the new head."""
    prev, head = GENESIS_HASH, None
    with owner(root) as db:
        for e in entries(root):
            forged = replace(e, actor=actor, prev_hash=prev)
            head = replace(forged, entry_hash=compute_hash(forged))
            db.execute("update audit_trail set actor = ?, prev_hash = ?, entry_hash = ? "
                       "where seq = ?", (actor, prev, head.entry_hash, e.seq))
            prev = head.entry_hash
    assert head is not None
    return head


def anchors(root: Path) -> list[Path]:
    return sorted((root / "results/audit-anchors").glob("*.json"))


def audit_verify(root: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify", str(root), *args])
    return result.exit_code, result.output


def test_each_run_writes_its_head_outside_the_database(study: Path) -> None:
    (anchor,) = anchors(study)
    head = entries(study)[-1]
    data = json.loads(anchor.read_text())
    assert (data["seq"], data["entry_hash"], data["study"]) == (head.seq, head.entry_hash,
                                                               "ANCHORED")
    assert data["signature"] is None  # no key: unsigned
    run(study)  # nothing new in the trail: no new anchor
    assert anchors(study) == [anchor]
    write_csv(study / "raw/P2_L.csv", seed=2, hours=0.2)
    run(study)
    assert len(anchors(study)) == 2
    assert json.loads(anchors(study)[-1].read_text())["seq"] == entries(study)[-1].seq
    code, output = audit_verify(study)
    assert code == 0 and "intact" in output and "anchor" in output and "unsigned" in output


@pytest.mark.parametrize("cut", [1, 5, "all"])
def test_truncating_the_newest_entries_is_caught(study: Path, cut: int | str) -> None:
    head = entries(study)[-1].seq
    first_cut = 1 if cut == "all" else head - int(cut) + 1
    with owner(study) as db:
        db.execute("delete from audit_trail where seq >= ?", (first_cut,))
    code, output = audit_verify(study)
    assert code == 1
    assert f"BROKEN at entry {first_cut}" in output and "missing" in output
    result = runner.invoke(app, ["verify", str(study)])
    assert result.exit_code == 1 and "audit" in result.output


def test_rehashing_the_whole_chain_is_caught_by_the_anchor(study: Path) -> None:
    rehash_everything(study)
    code, output = audit_verify(study)
    assert code == 1 and "does not match the anchor" in output


def test_a_signed_anchor_catches_anchors_rewritten_with_the_chain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEARFLOW_AUDIT_KEY", KEY)
    root = make(tmp_path)
    run(root)
    (anchor,) = anchors(root)
    assert len(json.loads(anchor.read_text())["signature"]) == 64
    assert audit_verify(root)[0] == 0
    head = rehash_everything(root)
    # ... and forges the anchors to match, without the key: unsigned, or signed with another
    shutil.rmtree(root / "results/audit-anchors")
    monkeypatch.setenv("WEARFLOW_AUDIT_KEY", "another key, not the study's")
    run(root)  # a run anchors the forged chain's head with the wrong key
    forged = json.loads(anchors(root)[-1].read_text())
    monkeypatch.setenv("WEARFLOW_AUDIT_KEY", KEY)
    code, output = audit_verify(root)
    assert code == 1 and "signature" in output
    (root / "results/audit-anchors" / anchors(root)[-1].name).write_text(
        json.dumps({**forged, "signature": None}))
    code, output = audit_verify(root)
    assert code == 1 and "unsigned" in output
    assert head.actor == "mallory"


def test_without_a_key_anchors_rewritten_with_the_chain_go_unseen(study: Path) -> None:
    """What the documentation says: unsigned anchors catch truncation, not re-hashing by
    someone who can also rewrite the anchors."""
    rehash_everything(study)
    shutil.rmtree(study / "results/audit-anchors")
    run(study)
    assert audit_verify(study)[0] == 0


def test_an_anchor_given_by_hand(study: Path) -> None:
    head = entries(study)[-1]
    kept = study / "kept-anchor.json"
    shutil.copy(anchors(study)[0], kept)
    shutil.rmtree(study / "results/audit-anchors")  # the stored anchors gone too
    with owner(study) as db:
        db.execute("delete from audit_trail where seq = ?", (head.seq,))
    assert audit_verify(study)[0] == 0  # nothing left to compare with
    for given in (f"{head.seq}:{head.entry_hash}", str(kept)):
        code, output = audit_verify(study, "--anchor", given)
        assert code == 1 and f"BROKEN at entry {head.seq}" in output, given
    code, output = audit_verify(study, "--anchor", "12:not-a-hash")
    assert code == 2 and "anchor" in output


def test_the_key_file_and_the_anchor_location_named_by_the_study_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEARFLOW_AUDIT_KEY", raising=False)
    (tmp_path / "audit.key").write_text(KEY + "\n")
    root = make(tmp_path / "s", audit="audit:\n  anchors: ../vault/\n  key_file: ../audit.key")
    run(root)
    (anchor,) = sorted((tmp_path / "vault").glob("*.json"))
    assert json.loads(anchor.read_text())["signature"]
    assert not (root / "results/audit-anchors").exists()
    assert audit_verify(root)[0] == 0
    rehash_everything(root)
    code, output = audit_verify(root)
    assert code == 1 and "does not match the anchor" in output
    (tmp_path / "audit.key").unlink()
    code, output = audit_verify(root)
    assert code == 2 and "key" in output


def test_a_run_never_anchors_a_trail_that_left_its_anchor(
        study: Path, caplog: pytest.LogCaptureFixture) -> None:
    before = anchors(study)
    rehash_everything(study)
    write_csv(study / "raw/P2_L.csv", seed=2, hours=0.2)
    run(study)
    assert anchors(study) == before
    assert "audit trail not anchored: the trail is broken at entry" in caplog.text
    assert "[ERROR]" in (study / "results/logs/wearflow.log").read_text()


def test_a_key_file_that_cannot_be_read_stops_the_run(tmp_path: Path) -> None:
    root = make(tmp_path, audit="audit:\n  key_file: missing.key")
    result = runner.invoke(app, ["run", str(root)])
    assert result.exit_code == 2 and "audit key file" in result.output
    assert not (root / "results/single-wrist-processed").exists()
