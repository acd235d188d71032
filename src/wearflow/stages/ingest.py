"""Ingest: catalog the study's locations into the state, and add new metadata versions."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from wearflow import catalog
from wearflow.errors import StorageError, WearflowError, one_line
from wearflow.metadata import MetadataTuple, read_metadata_file
from wearflow.stages.context import RunContext
from wearflow.state.audit import AuditEvent
from wearflow.storage import Store


def catalog_files(ctx: RunContext, inputs: Sequence[Store]) -> list[StorageError]:
    """Scan ``inputs`` and record the scan; return the files that could not be read now
    (each is logged; it is read again at the next run). Each file version the recording
    made current gets its `file.cataloged` entry: once, also when two coordinators
    catalog at once (the database records the scan under a lock and says what changed)."""
    known = ctx.state.files.known()
    unreadable: list[StorageError] = []
    files = catalog.scan(inputs, ctx.study.files, known=known, unreadable=unreadable)
    for unread in unreadable:
        ctx.log(unread.tag.value, f"{unread.message}; tried again at the next run",
                level=logging.WARNING, uri=unread.subject)
    changed = ctx.state.files.sync(files, [s.root_uri for s in inputs])
    ctx.audit.record_many([
        AuditEvent(ctx.actor, "file.cataloged", f.uri,
                   before=None if before is None else {"sha256": before},
                   after={"sha256": f.sha256, "size_bytes": f.size_bytes, "kind": f.kind})
        for f, before in changed])
    return unreadable


def ingest_metadata(ctx: RunContext) -> None:
    """Parse every metadata file version not seen before; values are appended, never
    replaced. Each file on its own: one that cannot be read is recorded with its
    problem (one METADATA_ISSUE naming it), and the others are still ingested. A version
    another coordinator recorded meanwhile is left as it recorded it (and audited it)."""
    parsed = ctx.state.metadata.parsed_file_ids()
    for f in ctx.state.files.current(kind="metadata"):
        if f.id in parsed:
            continue
        try:
            values = read_metadata_file(Store(f.location, ctx.study.storage_options), f.path,
                                        f.uri, f.size_bytes, ctx.study.metadata.columns)
            rows: list[MetadataTuple] = [(v.participant, v.field, v.value, v.raw, v.row,
                                          v.problem) for v in values]
        except WearflowError as exc:
            rows = [(None, "__file__", None, "", 0, exc.message)]
        except Exception as exc:  # a bug met on one file: the others are still ingested
            rows = [(None, "__file__", None, "", 0,
                     one_line(f"metadata file cannot be read ({type(exc).__name__}: {exc})"))]
        if not ctx.state.metadata.add(f.id, rows or [(None, "__file__", None, "", 0, None)]):
            continue
        ctx.audit.record(ctx.actor, "metadata.added", f.uri, after={
            "sha256": f.sha256, "values": sum(1 for r in rows if r[2] is not None),
            "problems": sum(1 for r in rows if r[5] is not None)})
        ctx.log("INFO", f"metadata file version added ({len(rows)} values)", uri=f.uri)
