"""Commands that draw pictures of a study: report."""

from __future__ import annotations

from typing import Annotated

import typer

from wearflow.cli._common import JsonOption, StudyArg, app, print_built, print_json, reports_errors
from wearflow.config import load_study


@app.command()
@reports_errors
def report(
    study: StudyArg,
    participant: Annotated[str | None, typer.Option(
        help="only this participant's reports (every visit)")] = None,
    run: Annotated[str | None, typer.Option(
        help="only the report of this run (its id, or the first 6+ characters)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Write the participant, study and run reports (HTML) under <output>/reports/."""
    from wearflow.services.reports import build_reports

    built = build_reports(load_study(study), participant=participant, run=run)
    if as_json:
        print_json([{"kind": b.kind, "subject": b.subject, "path": b.path, "uri": b.uri,
                     "sha256": b.sha256} for b in built])
        return
    print_built(built)
