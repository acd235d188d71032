"""A throwaway PostgreSQL cluster for tests, benchmarks and trying wearflow on PostgreSQL.

:func:`throwaway_postgres` starts a private PostgreSQL cluster (``initdb`` +
``pg_ctl`` into a temporary folder, on a free loopback port, no fsync) and
stops and deletes it afterwards. It needs PostgreSQL's server binaries
(Debian: ``postgresql``; found on ``PATH``, in ``$WEARFLOW_PG_BIN`` or under
``/usr/lib/postgresql/*/bin``). Run as root, the server runs as the
``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wearflow.errors import StateError


def postgres_bin() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``."""
    candidates = [os.environ.get("WEARFLOW_PG_BIN", "")]
    found = shutil.which("initdb")
    candidates.append(str(Path(found).parent) if found else "")
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    raise StateError("PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's "
                     "postgresql package or set WEARFLOW_PG_BIN", subject="postgresql")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str]) -> None:
    done = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StateError(f"{Path(cmd[0]).name} failed: {done.stderr.strip()[-400:]}",
                         subject="postgresql")


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Yield the URL of a fresh cluster's ``postgres`` database; stop and delete it after."""
    pg = postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="wearflow-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", _free_port()
    try:
        _run([str(pg / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
              "-E", "UTF8", "--locale=C.UTF-8", "-N"])
        _run([str(pg / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
              f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
              "-c full_page_writes=off -c max_connections=200", "start"])
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            _run([str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def create_database(server_url: str, name: str | None = None) -> str:
    """Create an empty database on the server of ``server_url``; return its URL."""
    from sqlalchemy import create_engine, text

    name = name or f"wf_{uuid.uuid4().hex[:12]}"
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"
