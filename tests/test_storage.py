from __future__ import annotations

from pathlib import Path

import pytest

from wearflow.errors import OutputExistsError, StorageError
from wearflow.storage import Store


def test_write_once_is_atomic_and_refuses_overwrite(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    digest = store.write_once("a/b/out.csv", b"x,y\n1,2\n")
    assert (tmp_path / "a/b/out.csv").read_bytes() == b"x,y\n1,2\n"
    assert store.write_once("a/b/out.csv", b"x,y\n1,2\n") == digest  # same bytes: no-op
    with pytest.raises(OutputExistsError, match=r"out\.csv"):
        store.write_once("a/b/out.csv", b"different")
    assert (tmp_path / "a/b/out.csv").read_bytes() == b"x,y\n1,2\n"
    assert [p.name for p in (tmp_path / "a/b").iterdir()] == ["out.csv"]  # no temp left


def test_unreachable_location_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        Store(str(tmp_path / "missing")).check_reachable()
    with pytest.raises(StorageError, match="not found"):
        Store(str(tmp_path)).read_bytes("nope.cwa")
