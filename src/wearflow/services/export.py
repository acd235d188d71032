"""``wearflow export`` and ``wearflow.load_results``: the analysis-ready tables of a study.

Built (:func:`wearflow.analysis.build_tables`) only from the *current* participant
result of each (solution, participant, visit): the one made from exactly its current
done tasks (:func:`wearflow.services.status.current_participant_results`); a stale
one (its files changed, went or were excluded since, or are not processed yet) is
left out and said so. :func:`load_results` returns the tables; :func:`export_results`
writes them (CSV or Parquet) with the data dictionary and a provenance.json listing
the participant result folders used (:func:`wearflow.results.write_export`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from wearflow.analysis import (
    DICTIONARY,
    build_tables,
    data_dictionary,
    source_columns,
)
from wearflow.clock import utc_now
from wearflow.config import Study
from wearflow.errors import ConfigError
from wearflow.provenance import ExportProvenance, ExportSource, default_actor, software
from wearflow.results import EXPORT_FORMATS, ExportFormat, read_json, read_tables, write_export
from wearflow.services.status import current_participant_results
from wearflow.state import State
from wearflow.state.tables import ParticipantResultRow
from wearflow.storage import Store, sha256_bytes

# --------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class Source:
    """One current participant result and what the export tells about it."""

    row: ParticipantResultRow
    solution_version: str
    time_zone: str

    def context(self) -> dict[str, str]:
        return {"solution": self.row.solution, "solution_version": self.solution_version,
                "participant": self.row.participant, "visit": self.row.visit or "",
                "time_zone": self.time_zone,
                "result_flags": ";".join(json.loads(self.row.flags_json or "[]"))}

    def to_provenance(self) -> ExportSource:
        r = self.row
        return ExportSource(solution=r.solution, solution_version=self.solution_version,
                            participant=r.participant, visit=r.visit or "",
                            result_dir=r.result_dir, result_key=r.key,
                            provenance_sha256=r.provenance_sha256)


@dataclass(frozen=True)
class LeftOut:
    """A participant result left out of an export, and why."""

    solution: str
    participant: str
    visit: str
    result_dir: str
    reason: str


@dataclass(frozen=True)
class Collected:
    tables: dict[str, pd.DataFrame]
    sources: tuple[Source, ...]
    left_out: tuple[LeftOut, ...]


def _check_solution(study: Study, solution: str | None) -> None:
    names = [s.name for s in study.solutions]
    if solution is not None and solution not in names:
        raise ConfigError(f"no solution named {solution!r} in the study (its solutions: "
                          f"{', '.join(names)})", subject=study.source or study.study)



def collect(study: Study, solution: str | None = None) -> Collected:
    """Read the current participant results of ``study`` (of one solution, or all) and
    build the three tables; stale results are left out, each with its reason."""
    _check_solution(study, solution)
    with State(study.state_url) as state:
        current, stale = current_participant_results(state)
        wrist_dirs = {t.key: t.result_dir for t, _ in state.tasks.for_current_files()
                      if t.result_dir}
    out = Store(study.output, study.storage_options)
    wanted = source_columns()
    sources: list[Source] = []
    results: list[tuple[Mapping[str, str], Mapping[str, pd.DataFrame]]] = []
    for row in current:
        if solution is not None and row.solution != solution:
            continue
        prov = read_json(out, f"{row.result_dir}/provenance.json")
        version = str((prov.get("solution") or {}).get("version", ""))
        source = Source(row, version, _time_zone(out, row, wrist_dirs))
        sources.append(source)
        results.append((source.context(), read_tables(out, row.result_dir, wanted)))
    left_out = tuple(
        LeftOut(r.solution, r.participant, r.visit or "", r.result_dir,
                "made from files that have changed, gone or been excluded since, or are "
                "not processed yet; run `wearflow run`")
        for r in stale if solution is None or r.solution == solution)
    return Collected(build_tables(results), tuple(sources), left_out)


def _time_zone(out: Store, row: ParticipantResultRow, wrist_dirs: Mapping[str, str]) -> str:
    """The time zone the result's days and nights were cut in: its first wrist's."""
    for key in sorted(json.loads(row.task_keys_json)):
        if key in wrist_dirs:
            prov = read_json(out, f"{wrist_dirs[key]}/provenance.json")
            return str((prov.get("task_inputs") or {}).get("time_zone", ""))
    return ""


def load_results(study: Study, solution: str | None = None) -> dict[str, pd.DataFrame]:
    """The analysis-ready tables of a study, from its current participant results.

    Parameters
    ----------
    study
        A loaded study (:func:`wearflow.load_study`).
    solution
        Only this solution's results (default: every solution's).

    Returns
    -------
    dict of str to pandas.DataFrame
        ``participant_visit_day``, ``participant_visit_night`` and
        ``participant_visit``; the columns are described in the data dictionary
        that ``wearflow export`` writes. Nothing is written.

    Raises
    ------
    ConfigError
        ``solution`` is not one of the study's solutions.
    """
    return collect(study, solution).tables


# --------------------------------------------------------------------------- writing

def parse_format(text: str) -> ExportFormat:
    """``csv`` or ``parquet``; anything else is a ConfigError naming the choices."""
    for fmt in EXPORT_FORMATS:
        if text == fmt:
            return fmt
    raise ConfigError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {text!r}",
                      subject="wearflow export")


@dataclass(frozen=True)
class ExportedFile:
    path: str  # relative to the export's location
    sha256: str
    rows: int | None  # None for provenance.json


@dataclass(frozen=True)
class ExportReport:
    """What ``wearflow export`` wrote, and from what. ``location`` is empty when there was
    no current participant result, and so nothing was written."""

    study: str
    format: ExportFormat
    location: str
    files: tuple[ExportedFile, ...]
    participant_visits: int
    sources: tuple[ExportSource, ...]
    left_out: tuple[LeftOut, ...]

    @property
    def written(self) -> bool:
        return bool(self.location)

    def to_json(self) -> dict[str, Any]:
        return {"study": self.study, "format": self.format, "location": self.location,
                "written": self.written, "participant_visits": self.participant_visits,
                "files": [asdict(f) for f in self.files],
                "sources": [s.model_dump(mode="json") for s in self.sources],
                "left_out": [asdict(x) for x in self.left_out]}


def export_results(study: Study, fmt: ExportFormat = "csv", to: str | None = None,
                   solution: str | None = None) -> ExportReport:
    """Write the analysis-ready tables and the data dictionary, with a provenance.json
    naming the participant result folders used.

    ``to`` is a local folder or URI to write into; by default
    ``<output>/export/<content hash>/``. Write-once: a different file already there is
    never replaced (OutputExistsError). With no current participant result nothing is
    written and the report's ``location`` is empty.
    """
    collected = collect(study, solution)
    sources = tuple(s.to_provenance() for s in collected.sources)
    if not sources:
        return ExportReport(study.study, fmt, "", (), 0, (), collected.left_out)
    tables = {**collected.tables, DICTIONARY: data_dictionary()}
    prov = ExportProvenance(
        study=study.study, study_fingerprint=study.fingerprint(), format=fmt,
        solution=solution, user=default_actor(study.identity), software=software(),
        created_utc=utc_now(), sources=list(sources))
    if to is None:
        store, folder = Store(study.output, study.storage_options), None
    else:
        target = to if "://" in to else os.path.abspath(to)
        store, folder = Store(target, study.storage_options), ""
    written, final = write_export(store, tables, fmt, prov, folder)
    rows = {f"{name}.{fmt}": len(table) for name, table in tables.items()}
    prefix = f"{written}/" if written else ""
    files = tuple(ExportedFile(o.path.removeprefix(prefix), o.sha256,
                               rows[o.path.removeprefix(prefix)]) for o in final.outputs)
    prov_sha = sha256_bytes(store.read_bytes(f"{prefix}provenance.json"))
    return ExportReport(study.study, fmt, store.uri(written),
                        (*files, ExportedFile("provenance.json", prov_sha, None)),
                        len(sources), sources, collected.left_out)
