"""The only writer of outputs: tables as CSV and Parquet, a provenance.json beside them.

Layout under the study's output location::

    single-wrist-processed/<solution>/<participant>/<input file name>/<task key>/
    processed/<solution>/<participant>/[<visit>/]<aggregate key>/
    processed/<solution>/study-summary/<summary key>/
    qc/<content hash>/qc.csv
    export/<content hash>/   (``wearflow export``: analysis-ready tables, provenance.json)
    reports/participants/<participant>/[<visit>/]<content hash>/report.html
    reports/study/<content hash>/report.html
    reports/runs/<run id>/<content hash>/report.html

(a participant named ``study-summary`` is written under ``~study-summary``)

Every folder is keyed by the hash of what made it, so outputs are write-once:
a changed input or solution writes a new folder and the old one stays.
Bytes are deterministic: rows sorted, floats printed with a fixed format,
no wall-clock time inside tables (those live in provenance.json only). The CSVs
meant for spreadsheets (study summary, export, QC table) have the string cells a
spreadsheet would take for a formula prefixed with ``'``; the per-file and
participant tables are written as they are.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from wearflow.errors import OutputExistsError, StorageError
from wearflow.provenance import ExportProvenance, OutputRef, Provenance, ReportProvenance
from wearflow.storage import Store, sha256_bytes

SINGLE_WRIST = "single-wrist-processed"
PROCESSED = "processed"
QC = "qc"
EXPORT = "export"
REPORTS = "reports"
REPORT_FILE = "report.html"
ExportFormat = Literal["csv", "parquet"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "parquet")
FLOAT_FORMAT = "%.10g"


def _safe(part: str) -> str:
    """``part`` as one folder name: only letters, digits, ``-_.``; never ``.`` or ``..``
    (which are path parts: a result folder named so would land elsewhere)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in part) or "_"
    return "_" * len(safe) if safe in (".", "..") else safe


def single_wrist_dir(solution: str, participant: str, file_name: str, task_key: str) -> str:
    return "/".join((SINGLE_WRIST, _safe(solution), _safe(participant), _safe(file_name),
                     task_key[:16]))


SUMMARY_FOLDER = "study-summary"


def participant_dir(solution: str, participant: str, key: str, visit: str = "") -> str:
    """``processed/<solution>/<participant>/[<visit>/]<key>``: a study whose names give no
    visit keeps the layout it had before visits existed."""
    visit_part = (_safe(visit),) if visit else ()
    return "/".join((PROCESSED, _safe(solution), _participant_folder(participant), *visit_part,
                     key[:16]))


def summary_dir(solution: str, key: str) -> str:
    return "/".join((PROCESSED, _safe(solution), SUMMARY_FOLDER, key[:16]))


def _participant_folder(participant: str) -> str:
    """The participant's folder under ``processed/<solution>/``. A participant whose id
    is the summary folder's name gets a ``~`` prefix (a character no other id keeps:
    :func:`_safe` replaces it), so their results never mix with the study summaries."""
    folder = _safe(participant)
    return f"~{folder}" if folder == SUMMARY_FOLDER else folder


def csv_bytes(table: pd.DataFrame, *, spreadsheet: bool = False) -> bytes:
    """The table as CSV. ``spreadsheet``: a CSV meant to be opened in a spreadsheet (the
    study summary, the export, the QC table) has its formulas neutralised
    (:func:`spreadsheet_safe`)."""
    buf = io.StringIO()
    (spreadsheet_safe(table) if spreadsheet else table).to_csv(
        buf, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
    return buf.getvalue().encode()


# what a spreadsheet reads as the start of a formula (OWASP's list: = + - @, tab, CR)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _neutralised(value: object) -> object:
    if (isinstance(value, str) and value.startswith(_FORMULA_START)
            and not _PLAIN_NUMBER.fullmatch(value)):
        return "'" + value
    return value


def spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with each string cell that a spreadsheet would take for a formula
    (``=2+5``, ``+x``, ``-x``, ``@SUM(...)``: a participant id can be anything) prefixed
    with ``'``, so it is shown as text. Numbers are never touched (``-1.5`` stays a
    number, and so does a string that is a plain number); a table with no such cell is
    returned as it is, so its CSV bytes do not change."""
    changed: dict[str, pd.Series] = {}
    for name in table.columns:
        column = table[name]
        if not (column.dtype == object or pd.api.types.is_string_dtype(column.dtype)):
            continue
        safe = column.map(_neutralised)
        if not safe.equals(column):
            changed[name] = safe
    if not changed:
        return table
    out = table.copy()
    for name, safe in changed.items():
        out[name] = safe
    return out


def parquet_bytes(table: pd.DataFrame) -> bytes:
    # The encoding options are part of the output bytes: changing them would make
    # every earlier result differ from a re-run of the same task (write-once
    # folders, `wearflow reproduce`). Keep them as they are.
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    sink = io.BytesIO()
    pq.write_table(arrow, sink, compression="zstd", write_statistics=False)
    return sink.getvalue()


def json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, default=str) + "\n").encode()


def write_result(
    store: Store,
    folder: str,
    tables: Mapping[str, pd.DataFrame],
    extra_json: Mapping[str, Any],
    provenance: Provenance,
    *,
    spreadsheet: bool = False,
) -> tuple[Provenance, str]:
    """Write tables (CSV + Parquet), extra JSON files and provenance.json into ``folder``.

    ``spreadsheet``: the CSVs are meant for spreadsheets (the study summary): formulas
    in their string cells are neutralised (the Parquet files keep the values as they are).

    Returns the provenance with its ``outputs`` filled in (path and sha256 of
    every file written, provenance.json itself excluded) and the sha256 of the
    provenance.json on storage, which the state database keeps so that
    ``wearflow verify`` can tell if it was altered.
    """
    outputs: list[OutputRef] = []
    for name in sorted(tables):
        table = tables[name]
        for suffix, data in ((".csv", csv_bytes(table, spreadsheet=spreadsheet)),
                             (".parquet", parquet_bytes(table))):
            path = f"{folder}/{_safe(name)}{suffix}"
            outputs.append(OutputRef(path=path, sha256=store.write_once(path, data)))
    for name in sorted(extra_json):
        path = f"{folder}/{_safe(name)}.json"
        digest = store.write_once(path, json_bytes(extra_json[name]))
        outputs.append(OutputRef(path=path, sha256=digest))
    final = provenance.model_copy(update={"outputs": outputs})
    prov_path = f"{folder}/provenance.json"
    try:
        return final, store.write_once(prov_path, final.to_json_bytes())
    except OutputExistsError:
        # A deterministic re-run of the same task, or the same result written by two
        # coordinators at once: outputs matched byte for byte above, the first
        # provenance (and its times) is the record that stays.
        return final, sha256_bytes(store.read_bytes(prov_path))


def write_qc_table(store: Store, table: pd.DataFrame) -> str:
    """Write a study's QC table as ``qc/<content hash>/qc.csv`` (write-once: the same
    rows give the same file; formulas neutralised, a CSV for spreadsheets); return its
    path."""
    data = csv_bytes(table, spreadsheet=True)
    path = f"{QC}/{sha256_bytes(data)[:16]}/qc.csv"
    store.write_once(path, data)
    return path


def table_bytes(table: pd.DataFrame, fmt: ExportFormat) -> bytes:
    """An export table's bytes; a CSV export is meant for spreadsheets."""
    return csv_bytes(table, spreadsheet=True) if fmt == "csv" else parquet_bytes(table)


def write_export(store: Store, tables: Mapping[str, pd.DataFrame], fmt: ExportFormat,
                 provenance: ExportProvenance, folder: str | None = None
                 ) -> tuple[str, ExportProvenance]:
    """Write analysis-ready tables as ``<name>.<fmt>`` with a provenance.json beside them.

    ``folder`` is relative to the store's root (``""``: the root itself); by default
    ``export/<content hash>/``, the hash of the tables' bytes and of the results they
    were built from, so the same export is the same folder with the same bytes.
    Write-once: when any file already there differs from what would be written (a
    provenance.json: records another export) nothing is written and
    :class:`OutputExistsError` names the file; a provenance.json recording the same
    export, made earlier or by someone else, stays as it is. Returns the folder and
    the provenance on storage (outputs: paths relative to the store's root, sha256).
    """
    encoded = {f"{_safe(name)}.{fmt}": table_bytes(tables[name], fmt) for name in sorted(tables)}
    if folder is None:
        content = {"files": {name: sha256_bytes(data) for name, data in encoded.items()},
                   "sources": [s.model_dump(mode="json") for s in provenance.sources]}
        folder = f"{EXPORT}/{sha256_bytes(json_bytes(content))[:16]}"
    prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
    planned = {prefix + name: data for name, data in encoded.items()}
    final = provenance.model_copy(update={"outputs": [
        OutputRef(path=path, sha256=sha256_bytes(data)) for path, data in planned.items()]})
    prov_path = prefix + "provenance.json"
    earlier = _earlier_export(store, prov_path, final)
    for path, data in planned.items():  # refuse before writing anything
        if store.exists(path) and store.read_bytes(path) != data:
            raise OutputExistsError("output exists with different content",
                                    subject=store.uri(path))
    for path, data in planned.items():
        store.write_once(path, data)
    if earlier is None:
        store.write_once(prov_path, final.to_json_bytes())
    return prefix.rstrip("/"), earlier or final


def _earlier_export(store: Store, path: str, export: ExportProvenance
                    ) -> ExportProvenance | None:
    """The provenance.json at ``path`` when it records ``export``; None when there is none;
    OutputExistsError when something else is there."""
    if not store.exists(path):
        return None
    try:
        earlier = ExportProvenance.model_validate_json(store.read_bytes(path))
    except ValidationError:
        earlier = None
    if earlier is None or not earlier.same_export(export):
        raise OutputExistsError("output exists with different content (another export)",
                                subject=store.uri(path))
    return earlier


def report_dir(kind: str, html: bytes, *subject: str) -> str:
    """``reports/<kind>/<subject...>/<hash of the page>``: the same page, the same folder."""
    return "/".join((REPORTS, kind, *(_safe(s) for s in subject if s),
                     sha256_bytes(html)[:16]))


def write_report(store: Store, folder: str, html: bytes, provenance: ReportProvenance
                 ) -> tuple[str, str]:
    """Write ``<folder>/report.html`` and its provenance.json (write-once; a report that is
    already there keeps its first provenance). Returns the page's path and sha256."""
    path = f"{folder}/{REPORT_FILE}"
    digest = store.write_once(path, html)
    prov_path = f"{folder}/provenance.json"
    if not store.exists(prov_path):
        final = provenance.model_copy(update={"outputs": [OutputRef(path=path, sha256=digest)]})
        # written by another builder of the same page meanwhile: the first one stays
        with contextlib.suppress(OutputExistsError):
            store.write_once(prov_path, final.to_json_bytes())
    return path, digest


def read_json(store: Store, path: str, *, missing_ok: bool = False) -> dict[str, Any]:
    """A JSON object written beside a result (provenance.json, qc.json); ``{}`` for one
    that is not an object, or (``missing_ok``) not there; StorageError when it is not
    JSON."""
    if missing_ok and not store.exists(path):
        return {}
    try:
        value = json.loads(store.read_bytes(path))
    except ValueError:
        raise StorageError("not a JSON document", subject=store.uri(path)) from None
    return value if isinstance(value, dict) else {}


def read_tables(store: Store, folder: str,
                select: Mapping[str, Sequence[str] | None] | None = None
                ) -> dict[str, pd.DataFrame]:
    """The Parquet tables of one result folder, by name.

    ``select`` maps the names of the tables wanted to the columns wanted (None:
    all); a table or column the folder does not have is left out. Without it,
    every table is read whole.
    """
    out = {}
    for name in store.listdir(folder):
        table = name.removesuffix(".parquet")
        if table == name or (select is not None and table not in select):
            continue
        source = pq.ParquetFile(io.BytesIO(store.read_bytes(f"{folder}/{name}")))
        wanted = None if select is None else select[table]
        columns = None if wanted is None else [c for c in wanted
                                               if c in source.schema_arrow.names]
        # one thread: pyarrow's decoding threads each keep their own allocator arenas,
        # which stayed resident (+19 MiB after reading a 14-day minute series, 2 MB)
        out[table] = source.read(columns=columns, use_threads=False).to_pandas()
    return out
