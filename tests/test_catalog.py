from __future__ import annotations

from pathlib import Path

import pytest

from wearflow.catalog import NameParser, scan
from wearflow.config import FilesConfig
from wearflow.errors import NameParseError
from wearflow.storage import Store, sha256_bytes

FILES = FilesConfig(
    sensor=("{participant}_{side}.cwa", "{participant}_{visit}_{side}.bin"),
    sides={"left": ("L", "LW", "left"), "right": ("R", "RW", "right")},
)


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("P001_L.cwa", {"participant": "P001", "side": "left"}),
        ("site1/P001_rw.CWA", {"participant": "P001", "side": "right"}),
        ("P-7_V2_LW.bin", {"participant": "P-7", "visit": "V2", "side": "left"}),
    ],
)
def test_parse(path: str, fields: dict[str, str]) -> None:
    assert NameParser(FILES).parse(path) == fields


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("P001.cwa", "matches none of the sensor patterns"),
        ("P001_X.cwa", "side label 'X' is not one of"),
    ],
)
def test_unparsable_names_say_why(path: str, reason: str) -> None:
    with pytest.raises(NameParseError, match=reason):
        NameParser(FILES).parse(path)


def test_scan_is_sorted_hashes_and_reports_unparsable(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "P002_R.cwa").write_bytes(b"two")
    (tmp_path / "b" / "P001_L.cwa").write_bytes(b"one")
    (tmp_path / "notes.txt").write_text("ignored: not a sensor extension")
    (tmp_path / "P003_L.cwa.part").write_bytes(b"still uploading")
    (tmp_path / "garbage.cwa").write_bytes(b"x")
    files = scan([Store(str(tmp_path))], FILES)
    assert [f.path for f in files] == ["P002_R.cwa", "b/P001_L.cwa", "garbage.cwa"]
    by_path = {f.path: f for f in files}
    assert by_path["b/P001_L.cwa"].sha256 == sha256_bytes(b"one")
    assert by_path["b/P001_L.cwa"].side == "left"
    assert by_path["garbage.cwa"].parse_error is not None
    assert by_path["P002_R.cwa"].uri == f"file://{tmp_path}/P002_R.cwa"


def test_scan_reuses_known_checksums_of_unchanged_files(tmp_path: Path) -> None:
    (tmp_path / "P001_L.cwa").write_bytes(b"one")
    store = Store(str(tmp_path))
    first = scan([store], FILES)
    known = {f.uri: (f.size_bytes, f.mtime, "cached", None) for f in first}
    calls: list[str] = []

    def inspector(s: Store, path: str) -> tuple[str, str | None]:
        calls.append(path)
        return "fresh", None

    assert scan([store], FILES, known=known, inspector=inspector)[0].sha256 == "cached"
    assert calls == []
    (tmp_path / "P001_L.cwa").write_bytes(b"changed")
    assert scan([store], FILES, known=known, inspector=inspector)[0].sha256 == "fresh"
    assert calls == ["P001_L.cwa"]
