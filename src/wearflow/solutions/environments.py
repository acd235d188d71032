"""Per-solution Python environments, built with uv from a lock and cached by its hash.

A solution that names ``environment: [requirements]`` in the study file runs
in its own virtual environment, so two solutions pinned to different versions
of the same package run in one study, and upgrading wearflow's own
dependencies never changes a pinned solution's output. The requirements are
resolved once into a lock (``uv pip compile``), kept in the cache; the
environment is built from that lock (``uv pip sync``) into
``<cache>/envs/<lock sha256[:16]>`` and reused by every later run and worker.

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
from dataclasses import dataclass
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
    """The lock text for ``requirements`` (resolved once, then read from the cache)."""
    wanted = "\n".join(sorted({*requirements, *RUNNER_REQUIREMENTS})) + "\n"
    key = hashlib.sha256(f"{wanted}|py{sys.version_info[:2]}".encode()).hexdigest()[:16]
    path = cache_dir() / "locks" / f"{key}.txt"
    if path.exists():
        return path.read_text(encoding="utf-8")
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    text = _run([_uv(), "pip", "compile", "-", "--quiet", "--no-header",
                 "--python-version", version], subject, "resolving the requirements",
                stdin=wanted)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return text


def ensure_environment(requirements: Sequence[str], subject: str) -> SolutionEnvironment:
    """Build (or reuse) the environment for ``requirements``.

    Raises
    ------
    SolutionError
        The requirements cannot be resolved or installed; the message says which step.
    """
    text = lock(requirements, subject)
    digest = hashlib.sha256(text.encode()).hexdigest()
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
    return SolutionEnvironment(target / "bin" / "python", digest, dict(data["packages"]))


def _parse_freeze(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        name, sep, ver = line.partition("==")
        if sep:
            out[name.strip().lower()] = ver.strip()
    return out
