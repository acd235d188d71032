"""Alerts: ``wearflow alerts`` lists them (``--evaluate`` evaluates first, for a cron job
watching a study no watcher runs); ``alerts_after_run`` is what ``run``, ``demo`` and
``watch`` call after each run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from wearflow.cli._common import (
    JsonOption,
    ProfileOption,
    ProfilesOption,
    StudyArg,
    app,
    err,
    open_study,
    out,
    print_json,
    reports_errors,
)
from wearflow.config import Study
from wearflow.errors import WearflowError, one_line

if TYPE_CHECKING:
    from wearflow.alerts import AlertRecord
    from wearflow.services.alerts import AlertsReport


@app.command()
@reports_errors
def alerts(
    study: StudyArg,
    evaluate: Annotated[bool, typer.Option(
        "--evaluate", help="evaluate the rules first and send what is due (as a run does)")]
    = False,
    as_json: JsonOption = False,
    profile: ProfileOption = None,
    profiles: ProfilesOption = None,
) -> None:
    """The firing alerts and those cleared in the last day, with their deliveries."""
    from wearflow.services.alerts import current_alerts, evaluate_alerts

    s = open_study(study, profile, profiles)
    if evaluate:
        print_evaluation(evaluate_alerts(s), to_stderr=as_json)
    found = current_alerts(s)
    if as_json:
        print_json([a.to_json() for a in found])
        return
    if not found:
        rules = "" if s.alerts.has_rules else " (the study file has no alerts: rules)"
        out.print(f"no alert firing or cleared in the last day{rules}", highlight=False)
        return
    for a in found:  # a block per alert: its lines wrap whole on a narrow terminal
        status = "FIRING" if a.firing else f"cleared {a.cleared_utc},"
        out.print(f"{status} {a.key} since {a.since_utc} (fired {a.first_fired_utc})",
                  highlight=False, soft_wrap=True)
        for line in (a.message, *_deliveries(a)):
            out.print(f"  {line}", highlight=False, soft_wrap=True)


def _deliveries(alert: AlertRecord) -> list[str]:
    """A line per target: which notice, and how sending it went."""
    lines = []
    for d in alert.deliveries:
        text = f"{d.target}: {d.notice} notice {d.state}"
        if d.state == "delivered":
            text += f" {d.delivered_utc}"
        elif d.attempts:
            later = f"next try {d.next_retry_utc}" if d.next_retry_utc else "given up"
            text += f" after {d.attempts} attempt{'s' if d.attempts > 1 else ''}, {later}"
            if d.last_error:
                text += f": {d.last_error}"
        lines.append(text)
    return lines or ["not sent: the study file's alerts: name no webhook or email"]


def print_evaluation(report: AlertsReport, *, to_stderr: bool = False) -> None:
    """One line per alert fired or cleared and per notice not delivered."""
    console = err if to_stderr else out
    for a in report.fired:
        console.print(f"alert fired: {a.message}", highlight=False, soft_wrap=True)
    for a in report.cleared:
        console.print(f"alert cleared: {a.message}", highlight=False, soft_wrap=True)
    for d in report.failed:
        err.print(f"alert {d.key}: {d.notice} notice to {d.target} not delivered: {d.error}",
                  highlight=False, soft_wrap=True)


def alerts_after_run(s: Study, *, to_stderr: bool = False) -> None:
    """Evaluate the study's alerts after a run and say what changed; an evaluation that
    cannot be made is said on stderr and never fails the run."""
    from wearflow.services.alerts import evaluate_alerts

    try:
        report = evaluate_alerts(s)
    except WearflowError as exc:
        err.print(f"alerts not evaluated: {one_line(exc.message)}", highlight=False)
        return
    print_evaluation(report, to_stderr=to_stderr)
