"""What every command shares: the app, the consoles, options, the error decorator."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from wearflow import __version__
from wearflow.config import Study
from wearflow.errors import EXIT_CANNOT_RUN, WearflowError, one_line

if TYPE_CHECKING:
    from wearflow.identity import Signer
    from wearflow.services.reports import Reports

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Process wearable-sensor studies into digital biomarkers.")
out = Console()
err = Console(stderr=True)

StudyArg = Annotated[Path, typer.Argument(help="study file, or the folder holding study.yaml")]
ProfileOption = Annotated[str | None, typer.Option(
    "--profile", envvar="WEARFLOW_PROFILE", show_default=False,
    help="deployment profile (dev, stage, prod, ...) from the profiles file: where and how "
         "the study runs (state, executor, locations, alerts); docs/deploy.md")]
ProfilesOption = Annotated[Path | None, typer.Option(
    "--profiles", envvar="WEARFLOW_PROFILES", show_default=False,
    help="the profiles file (default: wearflow.profiles.yaml next to the study file)")]


def open_study(study: Path, profile: str | None = None,
               profiles: Path | None = None) -> Study:
    """The study file with its deployment profile applied (:mod:`wearflow.profiles`)."""
    from wearflow.profiles import load_study

    return load_study(study, profile=profile, profiles=profiles)

P = ParamSpec("P")
R = TypeVar("R")
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A command's wearflow errors as one plain line on stderr (never wrapped, no
    traceback, no credential: see :class:`~wearflow.errors.WearflowError`) and exit
    code 2."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except WearflowError as exc:
            typer.echo(f"error [{exc.tag.value}] {one_line(str(exc), limit=1000)}", err=True)
            raise typer.Exit(EXIT_CANNOT_RUN) from None

    return wrapper


def file_name(uri: str | None) -> str:
    """The file name of a URI: the one part of it a table must never cut."""
    return (uri or "").rsplit("/", 1)[-1]


def folding_table(*columns: str, title: str) -> Table:
    """A table whose cells wrap (fold) instead of being cut with an ellipsis."""
    table = Table(*columns, title=title)
    for column in table.columns:
        column.overflow = "fold"
    return table


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wearflow {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="print the version and exit")] = False) -> None:
    """Process wearable-sensor studies into digital biomarkers."""


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")



EXECUTOR_HELP = ("inline, local, dask (a local Dask cluster), dask://host:8786 or slurm "
                 "(default: the study's executor:, else local)")
Reason = Annotated[str, typer.Option("--reason", help="why (mandatory, audited)")]
TokenOption = Annotated[str, typer.Option(
    "--token", envvar="WEARFLOW_TOKEN", show_default=False,
    help="your user token (or WEARFLOW_TOKEN): the audit entry names you and your role; "
         "without one it says unauthenticated OS user")]
FileArg = Annotated[str, typer.Argument(help="the file: its URI, path in the location, or name")]


def signer(study: Study, token: str) -> Signer | None:
    """The signer of a manual action: the token's user, or None (the OS user)."""
    if not token:
        return None
    from wearflow.services.manual import authenticate

    return authenticate(study, token)


def print_reports(reports: Reports) -> None:
    """One line per report written (the study report last, where a reader looks); one
    line on stderr per report that could not be drawn."""
    order = {"participant": 0, "run": 1, "study": 2}
    for b in sorted(reports.built, key=lambda b: (order[b.kind], b.subject)):
        out.print(f"{b.kind} report {b.subject}: {b.uri}", highlight=False, soft_wrap=True)
    for p in reports.problems:
        err.print(f"no report for {p.subject}: {p.message}", highlight=False, soft_wrap=True)


def reports_after_run(s: Study, run_id: str) -> None:
    """The study's reports after a run, when its study file asks for them; a report that
    cannot be written is said on stderr and never fails the run."""
    if not s.reports.after_run:
        return
    from wearflow.services.reports import build_reports

    try:
        reports = build_reports(s, latest_run=run_id)
    except WearflowError as exc:
        err.print(f"reports not written: {one_line(exc.message)}", highlight=False)
        return
    out.print(f"reports: {len(reports.built)} written under {s.output}/reports/",
              highlight=False, soft_wrap=True)
    for p in reports.problems:
        err.print(f"no report for {p.subject}: {p.message}", highlight=False, soft_wrap=True)
    for b in reports.built:
        if b.kind == "study":
            out.print(f"study report: {b.uri}", highlight=False, soft_wrap=True)
