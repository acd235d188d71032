"""Bounds on hostile input, checked before a parser allocates anything in proportion to it.

A small file can cost without bound: a CSV line of ten million fields (a table as wide),
a workbook whose one cell sits at row 1,048,576 and column 16,384 (a grid as large),
a zip part that inflates a thousandfold, XML whose entities expand exponentially. These
helpers measure such inputs in a streamed pass of bounded memory and say what is wrong,
as one line, or None; the caller raises its own error naming the file.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO
from xml.parsers import expat

import numpy as np

_SCAN_BYTES = 1 << 20  # a chunk of the field count: its working arrays stay a few MB
_LINE_BREAKS = (ord("\n"), ord("\r"))
_XML_SUFFIXES = (".xml", ".rels", ".vml")
_CELL_REF = re.compile(r"^\$?([A-Za-z]+)\$?(\d+)$")


def widest_line(data: bytes, separators: bytes, *,
                stop_above: int | None = None) -> tuple[int, int]:
    """The widest line of ``data``: (its 1-based number, its fields), counting the
    fields split by each one of ``separators`` and keeping the widest count; with
    ``stop_above``, the first line with more fields than that.

    Quotes are not honoured: a separator inside a quoted cell counts, so the count errs
    high, never low. ``\\n`` and ``\\r`` both end a line.
    """
    if not data:
        return 1, 0
    best = (1, 1)
    for sep in separators:
        found = _widest_line(data, sep, stop_above)
        if found[1] > best[1]:
            best = found
        if stop_above is not None and best[1] > stop_above:
            break
    return best


def _widest_line(data: bytes, sep: int, stop_above: int | None) -> tuple[int, int]:
    view = np.frombuffer(data, np.uint8)
    stop = np.iinfo(np.int64).max if stop_above is None else stop_above
    best_at, best = 0, 0  # where the widest line so far starts, and its separators
    open_at, carried = 0, 0  # the same of the line still open after the previous chunk
    for start in range(0, view.size, _SCAN_BYTES):
        chunk = view[start:start + _SCAN_BYTES]
        breaks = np.flatnonzero((chunk == _LINE_BREAKS[0]) | (chunk == _LINE_BREAKS[1]))
        seps = np.flatnonzero(chunk == sep)
        # separators per line of the chunk; the last entry is the line left open
        per_line = np.bincount(np.searchsorted(breaks, seps), minlength=breaks.size + 1)
        per_line[0] += carried
        if breaks.size:
            widest = int(np.argmax(per_line[:-1]))
            if per_line[widest] > best:
                best = int(per_line[widest])
                best_at = open_at if widest == 0 else start + int(breaks[widest - 1]) + 1
            open_at = start + int(breaks[-1]) + 1
        carried = int(per_line[-1])
        if carried > best:
            best_at, best = open_at, carried
        if best + 1 > stop:
            break
    return _line_number(data, best_at), best + 1


def _line_number(data: bytes, offset: int) -> int:
    """The 1-based number of the line holding byte ``offset`` (lines end in ``\\n``)."""
    return data.count(b"\n", 0, offset) + 1


def count_lines(data: bytes) -> int:
    """Lines of a text (a last line without its line break counts)."""
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


@dataclass(frozen=True)
class SheetSize:
    """The grid a spreadsheet part spans: a reader pads every row to the widest."""

    rows: int
    columns: int

    @property
    def cells(self) -> int:
        return self.rows * self.columns


def zip_problem(data: bytes, *, max_unzipped_bytes: int, max_parts: int,
                required: Iterable[str] = ()) -> str | None:
    """What makes ``data`` a zip container not to open: not a zip, a ``required`` part
    missing, more than ``max_parts`` parts, or parts that inflate to more than
    ``max_unzipped_bytes`` together (as their headers declare them; a reader of the zip
    stops at the declared size), else None."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        return f"not a readable zip container ({type(exc).__name__}: {exc})"
    if len(parts) > max_parts:
        return f"a zip of {len(parts)} parts (at most {max_parts})"
    names = {p.filename for p in parts}
    missing = [name for name in required if name not in names]
    if missing:
        return f"the zip lacks its {', '.join(missing)}"
    unzipped = sum(p.file_size for p in parts)
    if unzipped > max_unzipped_bytes:
        return (f"the zip's parts unzip to {unzipped} bytes, more than "
                f"{max_unzipped_bytes}")
    return None


class _Refused(Exception):
    """Stops the XML scan: the part declares a document type."""


@dataclass(frozen=True)
class WorkbookShape:
    """What a workbook's parts will make a reader build: each worksheet's grid (by part
    name) and the strings of its shared-strings table (held in memory whole)."""

    sheets: dict[str, SheetSize]
    shared_strings: int


def xml_parts_problem(data: bytes) -> tuple[str | None, WorkbookShape]:
    """Scan every XML part of a zip that :func:`zip_problem` accepted, streamed: a part
    that declares a document type (``<!DOCTYPE``: the only place entities are defined,
    so none can expand) or is not well-formed is a problem; each worksheet part's grid
    (``xl/worksheets/...``: its last row and widest column, as a reader pads them) and
    the shared strings (``<si>`` of ``xl/sharedStrings.xml``) are counted. Returns
    (problem or None, the workbook's shape as far as it was scanned)."""
    sheets: dict[str, SheetSize] = {}
    strings = _Strings()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for part in archive.infolist():
            name = part.filename
            if not name.lower().endswith(_XML_SUFFIXES):
                continue
            grid = _Grid() if name.startswith("xl/worksheets/") else None
            counter: _Grid | _Strings | None = (
                strings if name.lower() == "xl/sharedstrings.xml" else grid)
            try:
                with archive.open(part) as stream:
                    _scan_xml(stream, counter)
            except _Refused:
                return (f"part {name} declares an XML document type (<!DOCTYPE>): refused, "
                        "its entities could expand without bound"), WorkbookShape(
                            sheets, strings.count)
            except (expat.ExpatError, zipfile.BadZipFile, OSError, ValueError,
                    EOFError) as exc:
                return (f"part {name} is not readable XML ({exc})",
                        WorkbookShape(sheets, strings.count))
            if grid is not None:
                sheets[name] = SheetSize(grid.rows, grid.columns)
    return None, WorkbookShape(sheets, strings.count)


class _Strings:
    """The strings of a shared-strings table."""

    def __init__(self) -> None:
        self.count = 0

    def start(self, name: str, _attrs: dict[str, str]) -> None:
        if name.rsplit(" ", 1)[-1] == "si":
            self.count += 1


class _Grid:
    """The last row and the widest column of a worksheet, as openpyxl numbers them: a
    row or cell without its ``r`` reference follows the one before it."""

    def __init__(self) -> None:
        self.rows = 0
        self.columns = 0
        self._column = 0

    def start(self, name: str, attrs: dict[str, str]) -> None:
        local = name.rsplit(" ", 1)[-1]
        if local == "row":
            number = _row_number(attrs.get("r"))
            self.rows = self.rows + 1 if number is None else max(self.rows, number)
            self._column = 0
        elif local == "c":
            match = _CELL_REF.match(attrs.get("r", ""))
            if match:
                self._column = _column_index(match.group(1))
                self.rows = max(self.rows, int(match.group(2)))
            else:
                self._column += 1
            self.columns = max(self.columns, self._column)


def _row_number(text: str | None) -> int | None:
    """A row's ``r`` as openpyxl reads it (``7``, ``7.0``, ``1e6``), None when absent."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _column_index(letters: str) -> int:
    index = 0
    for letter in letters.upper():
        index = index * 26 + ord(letter) - ord("A") + 1
    return index


def _scan_xml(stream: IO[bytes], counter: _Grid | _Strings | None) -> None:
    parser = expat.ParserCreate(namespace_separator=" ")

    def refuse(*_args: object) -> None:
        raise _Refused

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    if counter is not None:
        parser.StartElementHandler = counter.start
    while chunk := stream.read(_SCAN_BYTES):
        parser.Parse(chunk, False)
    parser.Parse(b"", True)
