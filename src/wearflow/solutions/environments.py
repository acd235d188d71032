"""Per-solution Python environments, built with uv from a lock and cached by its hash.

A solution that names ``environment: [requirements]`` in the study file runs
in its own virtual environment, so two solutions pinned to different versions
of the same package run in one study, and upgrading wearflow's own
dependencies never changes a pinned solution's output. The requirements are
resolved once into a lock with every package's hashes (``uv pip compile
--generate-hashes``); the coordinator stores that lock in the study's state the
first time it is resolved and hands it to every task, so each machine builds
exactly it (``uv pip sync``, hashes checked) into ``<cache>/envs/<lock
sha256[:16]>``, reused by every later run and worker, and never resolves again.

Cache: ``$WEARFLOW_ENV_CACHE``, else ``~/.cache/wearflow``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wearflow.errors import SolutionError

# What the step runner (skdh_core.py) itself needs beside the solution's packages.
RUNNER_REQUIREMENTS = ("numpy", "pandas", "pyarrow")
ENV_INFO = "wearflow-env.json"


@dataclass(frozen=True)
class SolutionEnvironment:
    python: Path
    lock_sha256: str
    packages: dict[str, str]
    lock_text: str = field(default="", repr=False)  # the lock it was built from, hashes included


def requirements_text(requirements: Sequence[str]) -> str:
    """What is resolved for ``requirements``: sorted, the runner's own needs added."""
    return "\n".join(sorted({*requirements, *RUNNER_REQUIREMENTS})) + "\n"


def lock_key(requirements: Sequence[str]) -> str:
    """The sha256 naming the lock of ``requirements`` on this Python (major.minor): the key
    the state stores a resolved lock under."""
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return hashlib.sha256(f"{requirements_text(requirements)}|py{python}|hashes".encode()
                          ).hexdigest()


def lock_sha256(lock_text: str) -> str:
    """The sha256 of a lock's text: what names its environment and enters the fingerprint."""
    return hashlib.sha256(lock_text.encode()).hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("WEARFLOW_ENV_CACHE") or Path.home() / ".cache" / "wearflow")


def _uv() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


def _run(args: Sequence[str], subject: str, what: str, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False,
                              timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SolutionError(f"environment cannot be built: {what} ({exc})",
                            subject=subject) from None
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])[:400]
        raise SolutionError(f"environment cannot be built: {what} failed: {tail}",
                            subject=subject)
    return done.stdout


def lock(requirements: Sequence[str], subject: str) -> str:
    """The lock text for ``requirements``, every package with its hashes (resolved once on
    this machine, then read from its cache; a study keeps the lock it first used in its
    state, see :func:`ensure_environment`'s ``lock_text``)."""
    wanted = requirements_text(requirements)
    path = cache_dir() / "locks" / f"{lock_key(requirements)[:16]}.txt"
    if path.exists():
        return path.read_text(encoding="utf-8")
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    text = _run([_uv(), "pip", "compile", "-", "--quiet", "--no-header", "--generate-hashes",
                 "--python-version", version], subject, "resolving the requirements",
                stdin=wanted)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return text


def ensure_environment(requirements: Sequence[str], subject: str,
                       lock_text: str | None = None) -> SolutionEnvironment:
    """Build (or reuse) the environment for ``requirements``.

    ``lock_text``: the lock to build exactly (the study's stored one, carried by the
    task), never resolved again; None: this machine's lock of ``requirements``
    (:func:`lock`).

    Raises
    ------
    SolutionError
        The requirements cannot be resolved or installed; the message says which step.
    """
    text = lock(requirements, subject) if lock_text is None else lock_text
    digest = lock_sha256(text)
    target = cache_dir() / "envs" / digest[:16]
    info = target / ENV_INFO
    if not info.exists():
        staging = target.with_name(f"{target.name}.{uuid.uuid4().hex}.building")
        try:
            _run([_uv(), "venv", "--quiet", "--python", sys.executable, str(staging)],
                 subject, "creating the virtual environment")
            lock_file = staging / "requirements.lock"
            lock_file.write_text(text, encoding="utf-8")
            python = staging / "bin" / "python"
            _run([_uv(), "pip", "sync", "--quiet", "--python", str(python), str(lock_file)],
                 subject, "installing the locked packages")
            frozen = _run([_uv(), "pip", "freeze", "--python", str(python)], subject,
                          "listing the installed packages")
            packages = dict(sorted(_parse_freeze(frozen).items()))
            (staging / ENV_INFO).write_text(json.dumps(
                {"lock_sha256": digest, "packages": packages}, sort_keys=True, indent=1))
            try:
                staging.rename(target)
            except OSError:  # another process finished first: use its environment
                shutil.rmtree(staging, ignore_errors=True)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    data = json.loads(info.read_text(encoding="utf-8"))
    return SolutionEnvironment(target / "bin" / "python", digest, dict(data["packages"]), text)


def _parse_freeze(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        name, sep, ver = line.partition("==")
        if sep:
            out[name.strip().lower()] = ver.strip()
    return out
