"""A Dask worker preload for tests only (``dask worker ... --preload <this file>``): the
worker claims another wearflow version, as a worker started from an older image would.
Visible on the worker's command line; nothing in wearflow itself reads it."""

from __future__ import annotations

import wearflow.worker

OTHER_VERSION = "0.0.0+other-image"


def _other_version() -> str:
    return OTHER_VERSION


wearflow.worker.installed_version = _other_version
