"""Storage locations behind fsspec: list, read, write-once atomic write, checksum.

A :class:`Store` wraps one root location (a local folder, ``file://``,
``s3://bucket/prefix`` or anything fsspec knows). Paths passed to its methods
are relative to that root and always use ``/``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import fsspec

from wearflow.config import strip_file_scheme
from wearflow.errors import OutputExistsError, StorageError
from wearflow.extras import require
from wearflow.filemodes import make_folders, make_read_only, open_new

_STREAM_CHUNK_BYTES = 16 << 20  # read size from storage (an object store's range request)
_HASH_BUFFER_BYTES = 1 << 20  # hashed from a buffer this size that stays in the CPU cache
# Files still being written by uploaders or by us: never cataloged.
TEMPORARY_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".filepart", ".uploading")
# fsspec protocol -> (module, wearflow extra) of the backends wearflow ships as extras
_EXTRAS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3")}


@dataclass(frozen=True)
class Entry:
    """One listed file: path relative to the store root, size and modification stamp."""

    path: str
    size_bytes: int
    mtime: str


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_temporary(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith((".", "~")) or base.lower().endswith(TEMPORARY_SUFFIXES)


class Store:
    """One storage location.

    Parameters
    ----------
    root
        A local path or URI.
    storage_options
        Passed to fsspec (endpoint, credentials); never logged.
    """

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None) -> None:
        self.root_uri = root.rstrip("/")
        protocol, _, rest = root.partition("://")
        if not rest:
            protocol, rest = "file", root
        self.protocol = "file" if protocol == "local" else protocol
        self._root = strip_file_scheme(root).rstrip("/") if self.protocol == "file" else rest
        self._root = self._root.rstrip("/")
        self._conditional_puts = True  # until the server shows it has none
        if self.protocol in _EXTRAS:
            require(*_EXTRAS[self.protocol], f"{self.protocol}:// storage", subject=root)
        try:
            self.fs = fsspec.filesystem(self.protocol, **(storage_options or {}))
        except (ImportError, ValueError) as exc:
            raise StorageError(f"unsupported storage ({exc})", subject=root) from None

    def uri(self, path: str) -> str:
        """The full URI of a relative path, as recorded in state and provenance."""
        if self.protocol == "file":
            return f"file://{self._full(path)}"
        return f"{self.protocol}://{self._full(path)}"

    def _full(self, path: str) -> str:
        return f"{self._root}/{path}" if path else self._root

    def check_reachable(self) -> None:
        """Raise StorageError when the root does not exist or cannot be listed.

        On object stores the bucket must exist; an empty prefix is a valid, empty folder.
        """
        try:
            if self.protocol != "file":
                ok = bool(self.fs.exists(self._root.split("/", 1)[0]))
            else:
                ok = self.fs.isdir(self._root)
        except Exception as exc:  # fsspec backends raise many types
            raise StorageError(f"location cannot be reached ({exc})",
                               subject=self.root_uri) from None
        if not ok:
            raise StorageError("location does not exist", subject=self.root_uri)

    def walk(self) -> Iterator[Entry]:
        """Every file under the root, sorted by path; temporary names skipped."""
        self.check_reachable()
        try:
            if self.protocol != "file":
                self.fs.invalidate_cache()  # listings must be fresh for the watcher
            found = self.fs.find(self._root, detail=True)
        except Exception as exc:
            raise StorageError(f"cannot list ({exc})", subject=self.root_uri,
                               transient=_transient(exc)) from None
        prefix = self._root + "/"
        for full in sorted(found):
            info = found[full]
            if info.get("type") != "file":
                info = self._linked_file(full, info)
                if info is None:
                    continue
            rel = full[len(prefix):] if full.startswith(prefix) else full
            if any(is_temporary(part) for part in rel.split("/")):
                continue
            stamp = info.get("mtime") or info.get("ETag") or info.get("LastModified") or ""
            yield Entry(rel, int(info.get("size") or 0), str(stamp))

    def _linked_file(self, full: str, info: dict[str, Any]) -> dict[str, Any] | None:
        """A local symbolic link to a file, as the file it points to (a study folder that
        links into a shared archive); None for anything else (a broken link, a folder)."""
        if self.protocol != "file" or not info.get("islink"):
            return None
        try:
            target = os.stat(full)  # follows the link
        except OSError:
            return None
        if not stat.S_ISREG(target.st_mode):
            return None
        return {"size": target.st_size, "mtime": target.st_mtime}

    def read_bytes(self, path: str) -> bytes:
        try:
            data: bytes = self.fs.cat_file(self._full(path))
        except FileNotFoundError:
            raise StorageError("file not found", subject=self.uri(path)) from None
        except MemoryError:  # the reader's memory, not the storage: its task's limit says
            raise
        except Exception as exc:
            raise StorageError(f"cannot read ({exc})", subject=self.uri(path),
                               transient=_transient(exc)) from None
        return data

    def open(self, path: str) -> BinaryIO:
        """A file object reading ``path`` from its first byte (seekable; close it after).

        For a streaming read (:func:`wearflow.readers.iter_recording`): an object
        store is read in ranges of 16 MiB as the reader asks, never whole.
        """
        try:
            handle: BinaryIO = self.fs.open(self._full(path), "rb",
                                            block_size=_STREAM_CHUNK_BYTES)
        except FileNotFoundError:
            raise StorageError("file not found", subject=self.uri(path)) from None
        except Exception as exc:
            raise StorageError(f"cannot read ({exc})", subject=self.uri(path),
                               transient=_transient(exc)) from None
        return handle

    def sha256_and_head(self, path: str, head_bytes: int) -> tuple[str, bytes]:
        """The sha256 of a file and its first ``head_bytes``, streamed in chunks.

        The file is never held whole in memory: cataloging a week-long 100 Hz
        recording reads 400 MB through a 1 MB buffer.
        """
        digest = hashlib.sha256()
        head = b""
        buffer = bytearray(min(_STREAM_CHUNK_BYTES, _HASH_BUFFER_BYTES))
        view = memoryview(buffer)
        try:
            with self.fs.open(self._full(path), "rb", block_size=_STREAM_CHUNK_BYTES) as fh:
                # one reused buffer: no fresh pages to fault in for every chunk
                while n := fh.readinto(buffer):
                    if len(head) < head_bytes:
                        head += view[:min(n, head_bytes - len(head))]
                    digest.update(view[:n])
        except FileNotFoundError:
            raise StorageError("file not found", subject=self.uri(path)) from None
        except Exception as exc:
            raise StorageError(f"cannot read ({exc})", subject=self.uri(path),
                               transient=_transient(exc)) from None
        return digest.hexdigest(), head

    def _put_new(self, full: str, data: bytes) -> bool:
        """PUT an object unless one exists at ``full``; False when one did.

        An object PUT is atomic (whole or absent). Servers and fsspec backends
        without conditional writes get a plain PUT.
        """
        if self._conditional_puts:
            try:
                self.fs.pipe_file(full, data, mode="create")
                return True
            except FileExistsError:
                return False
            except (TypeError, NotImplementedError):  # a backend without the mode
                self._conditional_puts = False
            except OSError as exc:
                # s3fs reports a failed condition (412) and a refused header (400,
                # 501) alike: the object being there now tells them apart
                if exc.errno not in (errno.ENOSYS, errno.EINVAL):
                    raise
                self.fs.invalidate_cache(full)
                if self.fs.exists(full):
                    return False
                self._conditional_puts = False
        self.fs.pipe_file(full, data)
        return True

    def listdir(self, path: str) -> list[str]:
        """Names (not paths) of the files directly in a folder, sorted."""
        try:
            found = self.fs.ls(self._full(path), detail=False)
        except FileNotFoundError:
            raise StorageError("folder not found", subject=self.uri(path)) from None
        except Exception as exc:
            raise StorageError(f"cannot list ({exc})", subject=self.uri(path),
                               transient=_transient(exc)) from None
        return sorted(str(p).rstrip("/").rsplit("/", 1)[-1] for p in found)

    def present_folders(self, folders: Collection[str]) -> set[str]:
        """Which of ``folders`` (relative paths) are there, found with listings, never one
        request per folder or file: on a local disk one directory read per parent folder
        (names only); on an object store one recursive listing per tree of the first two
        levels (``processed/<solution>``: a request per 1,000 objects), where a folder is
        there when an object lies directly in it."""
        if self.protocol == "file":
            return self._present_local(folders)
        present: set[str] = set()
        for tree in sorted({"/".join(f.split("/")[:2]) for f in folders}):
            full = self._full(tree)
            root = str(self.fs._strip_protocol(full)).rstrip("/") + "/"
            try:
                self.fs.invalidate_cache(full)
                found = self.fs.find(full, detail=False)
            except FileNotFoundError:
                continue
            except Exception as exc:
                raise StorageError(f"cannot list ({exc})", subject=self.uri(tree),
                                   transient=_transient(exc)) from None
            present.update(f"{tree}/{key[len(root):]}".rsplit("/", 1)[0]
                           for key in map(str, found) if key.startswith(root))
        return present & set(folders)

    def _present_local(self, folders: Collection[str]) -> set[str]:
        by_parent: dict[str, set[str]] = {}
        for folder in folders:
            parent, _, name = folder.rpartition("/")
            by_parent.setdefault(parent, set()).add(name)
        present: set[str] = set()
        for parent, names in sorted(by_parent.items()):
            try:
                with os.scandir(self._full(parent)) as entries:
                    there = {e.name for e in entries if e.is_dir()}
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                raise StorageError(f"cannot list ({exc})", subject=self.uri(parent),
                                   transient=_transient(exc)) from None
            present.update(f"{parent}/{n}" if parent else n for n in names & there)
        return present

    def exists(self, path: str) -> bool:
        try:
            return bool(self.fs.exists(self._full(path)))
        except Exception as exc:
            raise StorageError(f"cannot check ({exc})", subject=self.uri(path),
                               transient=_transient(exc)) from None

    def write_once(self, path: str, data: bytes) -> str:
        """Write ``data`` atomically to a path that must not exist yet; return its sha256.

        The bytes go to a temporary sibling first and are linked into place, so
        no reader ever sees half a file and of two writers racing for one local
        path the second never replaces the first. Writing identical bytes to an
        existing path is a no-op (a re-run of a deterministic task); different
        bytes raise :class:`OutputExistsError` (outputs are write-once). On object
        stores the PUT is conditional (``If-None-Match: *``), so there too the
        first writer's object stays; a server that does not know conditional
        writes gets a plain PUT, where two writers racing with different bytes
        leave the later one's.

        On a local disk the file is read-only (``0440``) and the folders made for
        it ``0750``, whatever the umask (:mod:`wearflow.filemodes`); on object
        stores modes do not apply (the bucket's policy decides who reads).
        """
        digest = sha256_bytes(data)
        taken = self.exists(path) or not self._write_new(path, data)
        if taken and sha256_bytes(self.read_bytes(path)) != digest:
            raise OutputExistsError("output exists with different content",
                                    subject=self.uri(path))
        return digest

    def _write_new(self, path: str, data: bytes) -> bool:
        """Write ``data`` at ``path`` unless something is there; False when it was."""
        full = self._full(path)
        tmp = f"{full}.{uuid.uuid4().hex}.tmp"
        try:
            if self.protocol != "file":
                return self._put_new(full, data)
            make_folders(full.rsplit("/", 1)[0])
            with os.fdopen(open_new(tmp), "wb") as fh:
                fh.write(data)
            make_read_only(tmp)  # in place read-only from its first moment
            return _link_new(tmp, full)
        except Exception as exc:
            raise StorageError(f"cannot write ({exc})", subject=self.uri(path),
                               transient=_transient(exc)) from None
        finally:
            if self.protocol == "file" and os.path.exists(tmp):
                os.unlink(tmp)


def _link_new(tmp: str, full: str) -> bool:
    """Move ``tmp`` to ``full`` atomically unless ``full`` exists; False when it did.

    A hard link fails when the name is taken, so of two writers racing for one path
    exactly one wins and nothing is overwritten; where the filesystem has no hard
    links, an atomic rename (the later writer replaces the file) is what is left.
    """
    try:
        os.link(tmp, full)
    except FileExistsError:
        return False
    except OSError:  # no hard links here (some network and FAT filesystems)
        os.replace(tmp, full)
        return True
    os.unlink(tmp)
    return True


def _transient(exc: BaseException) -> bool:
    """A storage failure that may pass (network, timeout, throttling), unlike a refusal."""
    return not isinstance(exc, PermissionError | IsADirectoryError | NotADirectoryError
                          | ValueError | TypeError)


def input_stores(locations: Sequence[str], storage_options: Mapping[str, Any],
                 source: str) -> list[Store]:
    """A reachable Store per input location; an unreachable one is an error naming the
    study file (``source``), the ``input`` key and the location."""
    stores = [Store(loc, dict(storage_options)) for loc in locations]
    for n, store in enumerate(stores):
        try:
            store.check_reachable()
        except StorageError as exc:
            key = "input" if len(stores) == 1 else f"input.{n}"
            raise StorageError(f"{key}: {store.root_uri}: {exc.message}",
                               subject=source or store.root_uri,
                               transient=exc.transient) from None
    return stores
