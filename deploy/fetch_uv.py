"""Fetch the uv binary pinned in uv.lock into a folder, verified by the lock's sha256.

Run in the image's builder stage (python3.11 deploy/fetch_uv.py uv.lock /usr/local/bin): the
base image needs neither pip nor a second registry, and the uv that resolves the image's
environment is the one the project pins (the Makefile's UV_VERSION, a dependency in uv.lock).
"""

from __future__ import annotations

import hashlib
import io
import platform
import sys
import tomllib
import urllib.request
import zipfile
from pathlib import Path

_PLATFORM_TAGS = {"x86_64": "manylinux_2_17_x86_64", "aarch64": "manylinux_2_17_aarch64"}


def main(lock_path: str, target_dir: str) -> None:
    lock = tomllib.loads(Path(lock_path).read_text(encoding="utf-8"))
    (uv,) = [p for p in lock["package"] if p["name"] == "uv"]
    tag = _PLATFORM_TAGS[platform.machine()]
    (wheel,) = [w for w in uv["wheels"] if tag in w["url"]]
    with urllib.request.urlopen(wheel["url"], timeout=120) as response:
        data = response.read()
    algorithm, expected = wheel["hash"].split(":", 1)
    if hashlib.new(algorithm, data).hexdigest() != expected:
        raise SystemExit(f"uv {uv['version']}: {wheel['url']} does not match uv.lock's hash")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (member,) = [n for n in archive.namelist() if n.endswith(".data/scripts/uv")]
        target = Path(target_dir) / "uv"
        target.write_bytes(archive.read(member))
    target.chmod(0o755)
    print(f"uv {uv['version']} -> {target}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
