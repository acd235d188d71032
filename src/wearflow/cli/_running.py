"""Commands that set up and run a study: init, validate, run, watch, demo. Each run
(a ``watch`` cycle too, and ``watch`` while idle) ends by evaluating the study's alerts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from wearflow.cli._common import (
    EXECUTOR_HELP,
    JsonOption,
    ProfileOption,
    ProfilesOption,
    StudyArg,
    app,
    err,
    open_study,
    out,
    print_json,
    reports_after_run,
    reports_errors,
)
from wearflow.config import Study, load_study, study_file_path

if TYPE_CHECKING:  # the commands import what they run: `wearflow --help` stays quick
    from wearflow.runner import RunReport



@app.command()
@reports_errors
def init(directory: Path, name: str = typer.Option("MY-STUDY", help="study id")) -> None:
    """Create a new study folder with a commented study.yaml and an empty raw/ folder."""
    from wearflow.services.new_study import create_study

    target = create_study(directory, name)
    out.print(f"created {target}; put sensor files in {directory / 'raw'} and run "
              f"`wearflow run {directory}`")


@app.command()
@reports_errors
def validate(study: StudyArg, as_json: JsonOption = False,
        profile: ProfileOption = None, profiles: ProfilesOption = None) -> None:
    """Check a study and say what a run would do with every file (nothing is written)."""
    from wearflow.services.validate import validate_study

    report = validate_study(open_study(study, profile, profiles))
    if as_json:
        print_json(report.to_json())
        return
    counts = ", ".join(f"{n} {what}" for what, n in report.counts().items()) or "no files"
    out.print(f"{study_file_path(study)}: valid (study {report.study}); a run would: "
              f"{counts}", highlight=False, soft_wrap=True)
    for loc in report.locations:
        out.print(f"  {loc.uri}: {loc.sensor} sensor, {loc.metadata} metadata, "
                  f"{loc.ignored} other files", highlight=False, soft_wrap=True)
    for sol in report.solutions:
        needs = f"; requires {', '.join(sol.requires)}" if sol.requires else ""
        out.print(f"  solution {sol.name} ({sol.version}): {sol.applies_to}; "
                  f"{sol.files} files{needs}", highlight=False, soft_wrap=True)
    table = Table("file", "participant", "side", "visit", "solutions", "a run would",
                  title="files")
    for column in (table.columns[0], table.columns[-1]):
        column.overflow = "fold"  # never cut a file name or a reason
    for f in report.files:
        note = f"{f.what}: {f.reason}" if f.reason else f.what
        if f.combined_with:
            note += f" (combined with {', '.join(u.rsplit('/', 1)[-1] for u in f.combined_with)})"
        table.add_row(f.name, f.participant or "", f.side or "", f.visit or "",
                      ", ".join(f.solutions), note)
    out.print(table)
    for uri, why in report.ignored:
        out.print(f"  not cataloged: {uri}: {why}", highlight=False, soft_wrap=True)
    if not report.sensor_files:  # the study file is valid; the locations are empty
        err.print("no sensor file in the input locations yet: a run would process nothing")




@app.command()
@reports_errors
def run(
    study: StudyArg,
    workers: Annotated[int | None, typer.Option(help="worker processes (default: cores)",
                                                min=1)] = None,
    executor: Annotated[str | None, typer.Option(help=EXECUTOR_HELP)] = None,
    as_json: JsonOption = False,
    profile: ProfileOption = None,
    profiles: ProfilesOption = None,
) -> None:
    """Catalog, process and aggregate the study once; only new work is done."""
    from wearflow.cli._alerting import alerts_after_run

    s = open_study(study, profile, profiles)
    report = _run_with_progress(s, executor or s.executor, workers)
    if as_json:
        print_json(report.to_json())
    else:
        _print_report(report)
        reports_after_run(s, report.run_id)
    alerts_after_run(s, to_stderr=as_json)
    _let_the_webhook_sender_finish()
    raise typer.Exit(report.exit_code)


def _let_the_webhook_sender_finish() -> None:
    """Before the process ends: a moment (one post's timeout at most) for the run's webhook
    sender; whatever it has not posted stays owed, for the next run."""
    from wearflow.notify import flush

    flush()


def _run_with_progress(s: Study, executor: str, workers: int | None) -> RunReport:
    """Run with the stages shown: a live bar on a terminal, one line per stage (and per
    tenth of the files) in a pipe or a log."""
    from wearflow.executors import make_executor
    from wearflow.runner import run_study

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False)
    task_id = bar.add_task("starting", total=None)
    said: dict[str, int] = {}

    def progress(phase: str, done: int, total: int) -> None:
        label = phase
        if phase == "process":
            label = "processing files" + (" (workers starting)" if done == 0 else "")
        if not err.is_terminal:
            step = max(1, total // 10)
            if label not in said or (total and done - said[label] >= step) or (
                    total and done == total and said[label] != done):
                said[label] = done
                err.print(f"{label}" + (f": {done}/{total}" if total else ""),
                          highlight=False)
            return
        # The bar appears only once the run is under way, so an early error stays one line.
        if not bar.live.is_started:
            bar.start()
        bar.update(task_id, description=label, completed=done, total=total or None)

    try:
        return run_study(s, executor=make_executor(executor, workers or s.workers,
                                                   memory_limit_gb=s.memory_limit_gb,
                                                   slurm=s.slurm),
                         progress=progress)
    finally:
        if bar.live.is_started:
            bar.stop()


def _print_report(report: RunReport) -> None:
    if not report.files_total:
        out.print(f"run {report.run_id}: no sensor file in the input locations (see "
                  "`wearflow validate` for what is there and why it is not cataloged)",
                  highlight=False, soft_wrap=True)
        return
    held = f" ({report.unparsable} held before processing)" if report.unparsable else ""
    out.print(f"run {report.run_id}: {report.files_total} files: {report.done} done, "
              f"{report.failed} failed{held}; {report.executed} tasks executed this run; "
              f"{report.participants_aggregated} participant results written")
    if report.failed:
        out.print("see `wearflow status` for each failed file and its reason")
    if report.missing_outputs:
        out.print(f"{report.missing_outputs} result folder(s) gone from the output (see "
                  "`wearflow issues`); `wearflow retry STUDY --missing --reason ...` has the "
                  "next run write them again", highlight=False, soft_wrap=True)
    for folder in report.summary_dirs:
        out.print(f"study summary: {report.output}/{folder}/summary.csv", soft_wrap=True,
                  highlight=False)


@app.command()
@reports_errors
def watch(
    study: StudyArg,
    workers: Annotated[int | None, typer.Option(help="worker processes (default: cores)",
                                                min=1)] = None,
    executor: Annotated[str | None, typer.Option(help=EXECUTOR_HELP)] = None,
    poll_s: Annotated[float, typer.Option(help="seconds between listings")] = 5.0,
    settle_s: Annotated[float, typer.Option(help="quiet seconds before reading")] = 2.0,
    profile: ProfileOption = None,
    profiles: ProfilesOption = None,
) -> None:
    """Process new and changed files as they land, until SIGINT/SIGTERM (exit 0)."""
    from wearflow.cli._alerting import print_evaluation
    from wearflow.executors import make_executor
    from wearflow.watch import watch_study

    s = open_study(study, profile, profiles)
    pool = make_executor(executor or s.executor, workers or s.workers, persistent=True,
                         memory_limit_gb=s.memory_limit_gb, slurm=s.slurm)

    def on_cycle(report: RunReport) -> None:
        if report.executed or report.participants_aggregated:
            _print_report(report)
            reports_after_run(s, report.run_id)

    out.print(f"watching {', '.join(s.input)} (Ctrl-C to stop)")
    result = watch_study(s, executor=pool,
                         poll_s=poll_s, settle_s=settle_s, on_cycle=on_cycle,
                         on_alerts=print_evaluation,
                         on_notification=lambda uri: out.print(f"notification: {uri}",
                                                               highlight=False))
    for problem in result.errors[-5:]:
        err.print(f"cycle error: {problem}")
    _let_the_webhook_sender_finish()
    out.print(f"stopped after {result.cycles} cycles, {result.executed} tasks executed")


@app.command()
@reports_errors
def demo(
    directory: Annotated[Path, typer.Argument()] = Path("demo-study"),
    participants: int = 4,
    days: float = 2.0,
    seed: int = 0,
    workers: Annotated[int | None, typer.Option(help="worker processes", min=1)] = None,
) -> None:
    """Write a synthetic study (Axivity .cwa with temperature), run it, print the summary."""
    from wearflow.cli._alerting import alerts_after_run
    from wearflow.demo import print_summary, write_demo_study

    study_file = write_demo_study(directory, participants=participants, days=days, seed=seed)
    s = load_study(study_file)
    report = _run_with_progress(s, "local", workers)
    _print_report(report)
    print_summary(out, s, report)
    reports_after_run(s, report.run_id)
    alerts_after_run(s)
    raise typer.Exit(report.exit_code)


