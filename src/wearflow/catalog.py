"""Scan the study's storage into a deterministic, sorted list of SensorFiles.

A file is a *sensor* file when its extension is one of the sensor patterns'
extensions or one of the formats wearflow reads. Its name is then parsed by the
first pattern that matches; a sensor-like file whose name parses under no pattern
is still cataloged, with the reason, so that it is reported instead of silently
ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, NamedTuple

from wearflow.config import FilesConfig
from wearflow.errors import NameParseError, StorageError
from wearflow.readers.header import HEADER_BYTES, header_serial
from wearflow.storage import Entry, Store

Kind = Literal["sensor", "metadata"]
# every file ending a reader decodes (see wearflow.readers)
READABLE_EXTENSIONS = (".cwa", ".cwa.gz", ".bin", ".bin.gz", ".csv", ".csv.gz", ".gt3x",
                       ".agdc")
_FIELD_RE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True)
class SensorFile:
    """A cataloged file."""

    uri: str
    location: str  # root URI of the store it was found in
    path: str  # relative to that root
    size_bytes: int
    mtime: str
    sha256: str
    kind: Kind = "sensor"
    fields: Mapping[str, str] = field(default_factory=dict)
    parse_error: str | None = None
    device_serial: str | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def participant(self) -> str | None:
        return self.fields.get("participant")

    @property
    def side(self) -> str | None:
        return self.fields.get("side")

    @property
    def visit(self) -> str | None:
        return self.fields.get("visit")

    @property
    def body_location(self) -> str | None:
        return self.fields.get("location")


class StoredFile(NamedTuple):
    """One cataloged file version as the state database keeps it (its ``files`` row).

    What the planner, the stages and ``status`` read, up to 100,000 at a time; a
    named tuple, not an ORM object, which cost more than the query.
    """

    id: int
    uri: str
    sha256: str
    size_bytes: int
    mtime: str
    location: str
    path: str
    kind: str
    participant: str | None
    side: str | None
    fields_json: str
    parse_error: str | None
    duplicate_of: str | None
    device_serial: str | None
    excluded_reason: str | None
    first_seen_utc: str
    last_seen_utc: str
    current: bool
    present: bool
    visit: str | None = None
    body_location: str | None = None  # the name's {location} field (wrist, lower_back, ...)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def _compile(pattern: str) -> re.Pattern[str]:
    out, pos = [], 0
    for m in _FIELD_RE.finditer(pattern):
        out.append(_glob_to_re(pattern[pos:m.start()]))
        out.append(f"(?P<{m.group(1)}>[^/]+?)")
        pos = m.end()
    out.append(_glob_to_re(pattern[pos:]))
    prefix = "" if "/" in pattern else "(?:.*/)?"
    return re.compile(f"^{prefix}{''.join(out)}$", re.IGNORECASE)


def _glob_to_re(text: str) -> str:
    return re.escape(text).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*")


class NameParser:
    """Parses file names with the study's patterns and side labels."""

    def __init__(self, files: FilesConfig) -> None:
        self._metadata = [re.compile(f"^{_glob_to_re(p)}$", re.IGNORECASE)
                          for p in files.metadata]
        self._patterns = [(p, _compile(p)) for p in files.sensor]
        self._extensions = tuple(sorted({_extension(p) for p in files.sensor}))
        self._sides = {
            label.lower(): side for side, labels in files.sides.items() for label in labels
        }
        self._labels = sorted(label for labels in files.sides.values() for label in labels)

    def is_metadata(self, path: str) -> bool:
        return any(m.match(path) for m in self._metadata)

    def is_sensor_like(self, path: str) -> bool:
        """A file of a study pattern's extension, or of any format wearflow reads: it is
        cataloged (and, when no pattern parses its name, reported), never skipped."""
        return path.lower().endswith(self._extensions + READABLE_EXTENSIONS)

    def parse(self, path: str) -> dict[str, str]:
        """Return the name's fields (side normalised to left/right) or raise NameParseError.

        The first pattern whose fields are all valid wins; when patterns match but a
        field is not (a side label not listed), the first such reason is raised.
        """
        first_error: NameParseError | None = None
        for _pattern, regex in self._patterns:
            m = regex.match(path)
            if not m:
                continue
            try:
                return self._fields(m.groupdict(), path)
            except NameParseError as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        patterns = ", ".join(p for p, _ in self._patterns)
        raise NameParseError(f"name matches none of the sensor patterns ({patterns})",
                             subject=path)

    def _fields(self, groups: Mapping[str, str], path: str) -> dict[str, str]:
        fields = {k: v.strip() for k, v in groups.items()}
        for name, value in fields.items():
            problem = _id_problem(value)
            if problem is not None:
                raise NameParseError(f"{'participant id' if name == 'participant' else name} "
                                     f"{value!r} {problem}", subject=path)
        if "side" in fields:
            side = self._sides.get(fields["side"].lower())
            if side is None:
                raise NameParseError(
                    f"side label {fields['side']!r} is not one of {self._labels}",
                    subject=path,
                )
            fields["side"] = side
        if not fields.get("participant"):
            raise NameParseError("empty participant id", subject=path)
        return fields


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _id_problem(value: str) -> str | None:
    """Why a field of a name cannot be an id: ``.`` and ``..`` are path parts (a result
    folder named so lands elsewhere), a control character breaks lines and logs."""
    if value in (".", ".."):
        return "is a path part, not an id"
    if _CONTROL.search(value):
        return "holds a control character (a line break, a tab, ...)"
    return None


def _extension(pattern: str) -> str:
    tail = pattern.rsplit("}", 1)[-1]
    name = tail.rsplit("/", 1)[-1]
    # ".cwa.gz" style double extensions are kept whole
    return name[name.index("."):].lower() if "." in name else name.lower()


Known = Mapping[str, tuple[int, str, str, str | None]]  # uri -> (size, mtime, sha256, serial)
Inspector = Callable[[Store, str], tuple[str, str | None]]  # -> (sha256, header serial)


def inspect_file(store: Store, path: str) -> tuple[str, str | None]:
    """Read a file once, streamed: its sha256 and the device serial its header records."""
    digest, head = store.sha256_and_head(path, HEADER_BYTES)
    return digest, header_serial(head)


def scan(
    stores: Iterable[Store],
    files: FilesConfig,
    *,
    known: Known | None = None,
    inspector: Inspector = inspect_file,
    unreadable: list[StorageError] | None = None,
) -> list[SensorFile]:
    """Catalog every sensor-like file in ``stores``, sorted by URI.

    ``known`` maps URIs already in the state database to (size, mtime, sha256):
    an unchanged file is not read again, so re-cataloging a large study costs a
    listing, not a full read.

    A file that cannot be read now (a storage hiccup, a permission) is, when
    ``unreadable`` is given, reported there and left for the next scan: a new
    file is not cataloged yet; a known one keeps its previous version, so nothing
    is marked absent or re-run because of it. Without ``unreadable`` it raises.
    """
    parser = NameParser(files)
    known = known or {}
    out: list[SensorFile] = []
    for store in stores:
        for entry in store.walk():
            if parser.is_metadata(entry.path):
                one = partial(_catalog_metadata, store, known=known, inspector=inspector)
            elif parser.is_sensor_like(entry.path):
                one = partial(_catalog_one, store, parser=parser, known=known,
                              inspector=inspector)
            else:
                continue
            try:
                out.append(one(entry))
            except StorageError as exc:
                if unreadable is None:
                    raise
                unreadable.append(exc)
                previous = known.get(store.uri(entry.path))
                if previous is not None:  # as it was when last read: not read again
                    out.append(one(Entry(entry.path, previous[0], previous[1])))
    return sorted(out, key=lambda f: f.uri)


def _inspect(store: Store, entry: Entry, known: Known,
             inspector: Inspector) -> tuple[str, str | None]:
    previous = known.get(store.uri(entry.path))
    if previous is not None and previous[:2] == (entry.size_bytes, entry.mtime):
        return previous[2], previous[3]
    return inspector(store, entry.path)


def _catalog_metadata(store: Store, entry: Entry, known: Known,
                      inspector: Inspector) -> SensorFile:
    return SensorFile(uri=store.uri(entry.path), location=store.root_uri, path=entry.path,
                      size_bytes=entry.size_bytes, mtime=entry.mtime,
                      sha256=_inspect(store, entry, known, inspector)[0], kind="metadata")


def _catalog_one(
    store: Store,
    entry: Entry,
    parser: NameParser,
    known: Known,
    inspector: Inspector,
) -> SensorFile:
    uri = store.uri(entry.path)
    digest, serial = _inspect(store, entry, known, inspector)
    try:
        fields, error = parser.parse(entry.path), None
    except NameParseError as exc:
        fields, error = {}, exc.message
    return SensorFile(
        uri=uri,
        location=store.root_uri,
        path=entry.path,
        size_bytes=entry.size_bytes,
        mtime=entry.mtime,
        sha256=digest,
        fields=fields,
        parse_error=error,
        device_serial=serial,
    )
