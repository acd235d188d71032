"""Metadata values: appended per metadata file version, never replaced (history kept)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.engine import Engine

from wearflow.clock import utc_now
from wearflow.metadata import MetaCell, MetadataTuple
from wearflow.state.bulk import insert_many
from wearflow.state.engine import exclusive, retry_on_conflict
from wearflow.state.tables import FileRow, MetadataRow


class MetadataRepository:
    """The ``metadata_values`` table: one row per value of one metadata file version."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def parsed_file_ids(self) -> set[int]:
        """The file versions whose values are recorded."""
        with self._engine.connect() as conn:
            return set(conn.scalars(select(MetadataRow.file_id).distinct()))

    @retry_on_conflict
    @retry_on_conflict
    def add(self, file_id: int, values: Sequence[MetadataTuple]) -> bool:
        """Record one metadata file version's values: (participant, field, value, raw, row,
        problem). A file that could not be read is one row with field ``__file__``.
        False when the version was recorded already (by another coordinator: the check
        and the insert hold the metadata lock)."""
        now = utc_now()
        with exclusive(self._engine, "metadata") as conn:
            if conn.scalars(select(MetadataRow.id).where(MetadataRow.file_id == file_id)
                            .limit(1)).first() is not None:
                return False  # another coordinator parsed this file version first
            insert_many(conn, MetadataRow, [
                {"file_id": file_id, "participant": participant, "field": name,
                 "value": value, "raw": raw, "row": row, "problem": problem,
                 "added_utc": now}
                for participant, name, value, raw, row, problem in values])
        return True

    def current(self) -> dict[str, dict[str, MetaCell]]:
        """Per participant and field, the latest valid value ever recorded (history kept)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(MetadataRow.participant, MetadataRow.field, MetadataRow.value,
                       FileRow.uri, MetadataRow.row, MetadataRow.added_utc)
                .join(FileRow, MetadataRow.file_id == FileRow.id)
                .where(MetadataRow.value.is_not(None))
                .order_by(MetadataRow.id)).all()
        out: dict[str, dict[str, MetaCell]] = {}
        for participant, name, value, uri, row, added in rows:
            if participant:
                out.setdefault(participant, {})[name] = MetaCell(value or "", uri, row, added)
        return out

    def participants(self) -> set[str]:
        """Every participant id any metadata file version has listed, valid values or not."""
        with self._engine.connect() as conn:
            return {p for p in conn.scalars(select(MetadataRow.participant).distinct()) if p}

    def problems(self) -> list[tuple[str, str | None, str]]:
        """(file URI, participant, problem) for the current version of each metadata file."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(FileRow.uri, MetadataRow.participant, MetadataRow.problem)
                                .join(FileRow, MetadataRow.file_id == FileRow.id)
                                .where(FileRow.current, FileRow.present,
                                       MetadataRow.problem.is_not(None))
                                .order_by(FileRow.uri, MetadataRow.row)).all()
        return [(r[0], r[1], r[2] or "") for r in rows]
