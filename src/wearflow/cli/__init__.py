"""The `wearflow` command line: a thin layer over the services.

Exit codes: 0 success; 1 some files failed (the rest of the study completed);
2 the command could not do its job (invalid study file, unreachable storage,
...), with a one-line reason on stderr and no traceback.

Commands are grouped by what they do: ``_running`` (init, validate, run, watch,
demo), ``_reading`` (status, issues, runs, metadata, qc, export, verify,
reproduce), ``_reporting`` (report), ``_acting`` (audit, retry, exclude, resolve,
users), ``_alerting`` (alerts), ``_serving`` (serve), ``_deploying`` (slurm-script);
``_common`` holds the app, the consoles, the shared options and the error decorator.
"""

from __future__ import annotations

import importlib

from wearflow.cli._common import app

# registers the commands, in this order
for _module in ("_running", "_reading", "_reporting", "_acting", "_alerting", "_serving",
                "_deploying"):
    importlib.import_module(f"wearflow.cli.{_module}")

__all__ = ["app", "main"]


def main() -> None:
    app()
