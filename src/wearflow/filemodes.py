"""The modes of what wearflow writes on a local disk, whatever the process's umask.

The state database (metadata, users' token hashes) ``0600``; folders ``0750``; logs and
the issues file ``0640``; a result file read-only once written (``0440``: write-once
outputs are never written again, by wearflow or by hand). A stricter umask still
applies (it only takes permissions away); a looser one (``000``, ``022``) no longer
makes anything readable by others or writable by the group.

On object stores (``s3://``) modes do not apply: who may read or write is the bucket's
policy, and wearflow sets none.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DATABASE_MODE = 0o600
FOLDER_MODE = 0o750
FILE_MODE = 0o640
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def make_folders(path: str | os.PathLike[str]) -> None:
    """Create folder ``path`` and any missing parent, each with :data:`FOLDER_MODE` (as
    ``os.makedirs`` gives only the last one its mode); folders already there stay as
    they are."""
    missing: list[Path] = []
    folder = Path(path)
    while not folder.is_dir():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for new in reversed(missing):
        try:
            new.mkdir(mode=FOLDER_MODE)
        except FileExistsError:  # made meanwhile by another process
            if not new.is_dir():
                raise


def create_file(path: str | os.PathLike[str], mode: int = FILE_MODE) -> None:
    """Make sure file ``path`` exists (empty when new) with at most ``mode``; a file
    already there loses the permissions ``mode`` does not grant."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
    tighten(path, mode)


def tighten(path: str | os.PathLike[str], mode: int) -> None:
    """Take from ``path`` the permissions ``mode`` does not grant (never adds any)."""
    current = stat.S_IMODE(os.stat(path).st_mode)
    if current & ~mode:
        os.chmod(path, current & mode)


def open_new(path: str | os.PathLike[str]) -> int:
    """A new file's descriptor, opened for writing with :data:`FILE_MODE` (the file must
    not exist: temporary names are unique)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)


def make_read_only(path: str | os.PathLike[str]) -> None:
    """Take every write permission from ``path``."""
    current = stat.S_IMODE(os.stat(path).st_mode)
    os.chmod(path, current & ~_WRITE_BITS)
