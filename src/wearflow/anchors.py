"""The audit trail's head kept outside the state database: signed, written once, read back.

The hash chain (:mod:`wearflow.state.audit`) shows any entry edited, inserted, moved or
deleted in the middle, but not the newest entries cut off, nor the whole chain rewritten
with fresh hashes. Each run therefore writes the head it leaves, ``(seq, entry_hash)``,
as an *anchor*: a small JSON file named ``<seq, 12 digits>-<entry_hash>.json`` in the
study's anchors location (``audit: anchors:``, default ``<output>/audit-anchors/``),
written once. ``wearflow audit verify`` and ``wearflow verify`` check the trail against
the latest anchor (its content and signature) and against the name of every other one.

An anchor is signed with HMAC-SHA256 under a key the database does not hold: the file
``audit: key_file:`` names, else the environment variable ``audit: key_env:``
(``WEARFLOW_AUDIT_KEY``). What each setup catches:

* **No key** (unsigned anchors): truncation, and any rewrite of anchored entries, as
  long as the anchors themselves are not rewritten. Someone who can rewrite both the
  database and the anchors location (delete the anchors, write new ones for a re-hashed
  chain) goes unseen: keep the anchors where the database's users cannot write, best a
  bucket with object lock.
* **A key**: a re-hashed chain cannot be given a matching anchor without the key; an
  unsigned or wrongly signed latest anchor fails verification. Deleting the newest
  anchors and truncating to an older one is still possible for someone who can delete
  anchors: object lock prevents that too.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wearflow.clock import utc_now
from wearflow.config import Study
from wearflow.errors import ConfigError, OutputExistsError, StorageError
from wearflow.storage import Store

MIN_KEY_BYTES = 16
_NAME_RE = re.compile(r"^(\d{12})-([0-9a-f]{64})\.json$")
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_SIGNED = ("entry_hash", "run_id", "seq", "study", "written_utc")  # what the HMAC covers

Signature = Literal["checked", "unsigned", "not checked (no key)"]


@dataclass(frozen=True)
class Anchor:
    """One head of a study's audit trail, as kept outside the database.

    ``signature``: hex HMAC-SHA256 of the other fields' canonical JSON; None unsigned.
    ``where``: the file it was read from (empty for one given as ``SEQ:HASH``).
    """

    study: str
    seq: int
    entry_hash: str
    written_utc: str = ""
    run_id: str = ""
    signature: str | None = None
    where: str = ""

    def body(self) -> bytes:
        """What the signature covers: the anchor's fields but the signature, as compact
        sorted JSON."""
        fields = {name: getattr(self, name) for name in _SIGNED}
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def to_json_bytes(self) -> bytes:
        data: dict[str, Any] = {name: getattr(self, name) for name in _SIGNED}
        data["signature"] = self.signature
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    @property
    def file_name(self) -> str:
        return f"{self.seq:012d}-{self.entry_hash}.json"

    def signed_with(self, key: bytes) -> Anchor:
        digest = hmac.new(key, self.body(), hashlib.sha256).hexdigest()
        return Anchor(self.study, self.seq, self.entry_hash, self.written_utc, self.run_id,
                      digest, self.where)

    def check_signature(self, key: bytes | None) -> tuple[Signature, str | None]:
        """How its signature fares under ``key``: the outcome, and the problem (None when
        the anchor can be trusted as far as the setup allows)."""
        if key is None:
            return ("unsigned" if self.signature is None else "not checked (no key)"), None
        if self.signature is None:
            return "unsigned", (f"anchor {self.where or self.seq} is unsigned, but the study "
                                "has a key: written by someone without it")
        if not hmac.compare_digest(self.signed_with(key).signature or "", self.signature):
            return "checked", (f"anchor {self.where or self.seq} has a wrong signature: "
                               "forged or edited, or signed with another key")
        return "checked", None


def audit_key(study: Study) -> bytes | None:
    """The study's HMAC key: the file ``audit: key_file`` names, else the environment
    variable ``audit: key_env``; None when neither gives one.

    Raises
    ------
    ConfigError
        The key file cannot be read, or a key is shorter than :data:`MIN_KEY_BYTES`.
    """
    config = study.audit
    if config.key_file:
        try:
            key = Path(config.key_file).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the audit key file ({exc.strerror or exc}); the "
                              "anchors cannot be signed or checked without it",
                              subject=config.key_file) from None
        where = config.key_file
    else:
        key = os.environ.get(config.key_env, "").strip().encode()
        where = f"${config.key_env}"
        if not key:
            return None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"the audit key is shorter than {MIN_KEY_BYTES} bytes: use a random "
                          "one (e.g. `openssl rand -hex 32`)", subject=where)
    return key


def anchor_store(study: Study) -> Store:
    return Store(study.anchors_location, study.storage_options)


def anchored_heads(store: Store) -> list[tuple[int, str]]:
    """``(seq, entry_hash)`` of every anchor in the location, by seq, from the names
    alone (one listing); an empty list when the location does not exist yet."""
    if not store.exists(""):
        return []
    found = [_NAME_RE.match(name) for name in store.listdir("")]
    return sorted((int(m.group(1)), m.group(2)) for m in found if m)


def read_anchor(store: Store, head: tuple[int, str]) -> Anchor:
    """The anchor file of ``head``.

    Raises
    ------
    StorageError
        It cannot be read, or is not an anchor.
    """
    name = f"{head[0]:012d}-{head[1]}.json"
    return parse_anchor_file(store.read_bytes(name), store.uri(name))


def parse_anchor_file(data: bytes, where: str) -> Anchor:
    try:
        raw = json.loads(data)
        anchor = Anchor(study=str(raw["study"]), seq=int(raw["seq"]),
                        entry_hash=str(raw["entry_hash"]),
                        written_utc=str(raw["written_utc"]), run_id=str(raw["run_id"]),
                        signature=None if raw.get("signature") is None
                        else str(raw["signature"]), where=where)
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"not an audit anchor ({type(exc).__name__}: {exc})",
                           subject=where) from None
    if not _HASH_RE.match(anchor.entry_hash) or anchor.seq < 1:
        raise StorageError("not an audit anchor (seq or entry_hash malformed)", subject=where)
    return anchor


def parse_given_anchor(text: str) -> Anchor:
    """An anchor given by hand: ``SEQ:HASH`` (as `audit verify` prints the head), or the
    path of an anchor file kept elsewhere.

    Raises
    ------
    ConfigError
        Neither.
    """
    seq, sep, digest = text.strip().partition(":")
    if sep and seq.isdigit() and _HASH_RE.match(digest.lower()):
        return Anchor(study="", seq=int(seq), entry_hash=digest.lower(), where="given")
    path = Path(text).expanduser()
    if sep and not path.exists():
        raise ConfigError("an anchor is SEQ:HASH (a number, a colon and 64 hex digits) or the "
                          "path of an anchor file", subject=text)
    try:
        return parse_anchor_file(path.read_bytes(), str(path))
    except OSError as exc:
        raise ConfigError(f"cannot read the anchor file ({exc.strerror or exc})",
                          subject=text) from None
    except StorageError as exc:
        raise ConfigError(exc.message, subject=text) from None


def write_anchor(study: Study, head: tuple[int, str], run_id: str,
                 key: bytes | None) -> Anchor:
    """Write ``head`` as an anchor (signed when there is a key), once: an anchor of the
    same head already there stays (another coordinator wrote it)."""
    anchor = Anchor(study.study, head[0], head[1], utc_now(), run_id)
    if key is not None:
        anchor = anchor.signed_with(key)
    store = anchor_store(study)
    with contextlib.suppress(OutputExistsError):  # written by another coordinator
        store.write_once(anchor.file_name, anchor.to_json_bytes())
    return Anchor(anchor.study, anchor.seq, anchor.entry_hash, anchor.written_utc,
                  anchor.run_id, anchor.signature, store.uri(anchor.file_name))
