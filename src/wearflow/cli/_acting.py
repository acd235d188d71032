"""Commands that act on a study by hand, each audited: audit, retry, exclude, resolve."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from wearflow.cli._common import (
    FileArg,
    JsonOption,
    Reason,
    StudyArg,
    app,
    err,
    out,
    print_json,
    reports_errors,
)
from wearflow.config import load_study
from wearflow.errors import EXIT_CANNOT_RUN

audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit trail.")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
@reports_errors
def audit_verify(study: StudyArg, as_json: JsonOption = False) -> None:
    """Re-compute the hash chain; name the first edited, deleted, inserted or moved entry."""
    from wearflow.services.audit import verify_audit

    check = verify_audit(load_study(study))
    report = check.report
    if as_json:
        print_json(check.to_json())
    elif report.ok:
        out.print(f"audit trail intact: {report.entries} entries; head {report.head_seq} "
                  f"{report.head_hash} (keep it as an external anchor)", highlight=False,
                  soft_wrap=True)
    else:
        out.print(f"audit trail BROKEN at entry {report.first_bad_seq}: {report.reason}",
                  highlight=False, soft_wrap=True)
    raise typer.Exit(0 if check.ok else 1)


@audit_app.command("export")
@reports_errors
def audit_export(
    study: StudyArg,
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    output: Annotated[Path | None, typer.Option(help="file to write (default stdout)")] = None,
) -> None:
    """Write the whole audit trail, in order, for an inspector."""
    from wearflow.services.audit import export_audit

    if fmt not in ("csv", "json"):
        err.print("error: --format must be csv or json")
        raise typer.Exit(EXIT_CANNOT_RUN)
    export_audit(load_study(study), output or sys.stdout, "csv" if fmt == "csv" else "json")


@app.command()
@reports_errors
def retry(study: StudyArg, file: FileArg, reason: Reason) -> None:
    """Queue a file's failed tasks again (the next run processes them)."""
    from wearflow.services import manual

    keys = manual.retry(load_study(study), file, reason)
    out.print(f"{len(keys)} task(s) queued again; run `wearflow run {study}`")


@app.command()
@reports_errors
def exclude(study: StudyArg, file: FileArg, reason: Reason,
            undo: Annotated[bool, typer.Option("--undo", help="include it again")] = False
            ) -> None:
    """Keep a file out of processing and aggregation (or, with --undo, bring it back)."""
    from wearflow.services import manual

    uri = manual.exclude(load_study(study), file, reason, undo=undo)
    out.print(f"{'included' if undo else 'excluded'}: {uri}")


@app.command()
@reports_errors
def resolve(study: StudyArg, issue: Annotated[int, typer.Argument(
        help="the issue's id (the first column of `wearflow issues`)")], reason: Reason) -> None:
    """Close an issue by hand (its id is in `wearflow issues`)."""
    from wearflow.services import manual

    message = manual.resolve(load_study(study), issue, reason)
    out.print(f"resolved issue {issue}: {message}")


