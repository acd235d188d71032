"""Commands that draw pictures of a study: report."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from wearflow.cli._common import (
    JsonOption,
    ProfileOption,
    ProfilesOption,
    StudyArg,
    app,
    open_study,
    print_json,
    print_reports,
    reports_errors,
)
from wearflow.errors import EXIT_SOME_FAILED


@app.command()
@reports_errors
def report(
    study: StudyArg,
    participant: Annotated[str | None, typer.Option(
        help="only this participant's reports (every visit)")] = None,
    run: Annotated[str | None, typer.Option(
        help="only the report of this run (its id, or the first 6+ characters)")] = None,
    as_json: JsonOption = False,
    profile: ProfileOption = None,
    profiles: ProfilesOption = None,
) -> None:
    """Write the participant, study and run reports (HTML) under <output>/reports/.

    Exit 1 when a report could not be drawn (its result unreadable; the others are
    written)."""
    from wearflow.services.reports import build_reports

    reports = build_reports(open_study(study, profile, profiles), participant=participant, run=run)
    if as_json:
        print_json({"reports": [asdict(b) for b in reports.built],
                    "problems": [asdict(p) for p in reports.problems]})
    else:
        print_reports(reports)
    if reports.problems:
        raise typer.Exit(EXIT_SOME_FAILED)
