"""The `wearflow` command line: a thin layer over the runner.

Exit codes: 0 success; 1 some files failed (the rest of the study completed);
2 the command could not do its job (invalid study file, unreachable storage,
...), with a one-line reason on stderr and no traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from wearflow import __version__
from wearflow.config import Study, load_study, study_file_path
from wearflow.errors import EXIT_CANNOT_RUN, Tag, WearflowError

if TYPE_CHECKING:  # the commands import what they run: `wearflow --help` stays quick
    from wearflow.runner import RunReport

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Process wearable-sensor studies into digital biomarkers.")
out = Console()
err = Console(stderr=True)

StudyArg = Annotated[Path, typer.Argument(help="study file, or the folder holding study.yaml")]

P = ParamSpec("P")
R = TypeVar("R")
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A command's wearflow errors as one plain line on stderr (never wrapped, no
    traceback) and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except WearflowError as exc:
            typer.echo(f"error [{exc.tag.value}] {exc}", err=True)
            raise typer.Exit(EXIT_CANNOT_RUN) from None

    return wrapper


def _name(uri: str | None) -> str:
    """The file name of a URI: the one part of it a table must never cut."""
    return (uri or "").rsplit("/", 1)[-1]


def _folding_table(*columns: str, title: str) -> Table:
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


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


@app.command()
@reports_errors
@reports_errors
def init(directory: Path, name: str = typer.Option("MY-STUDY", help="study id")) -> None:
    """Create a new study folder with a commented study.yaml and an empty raw/ folder."""
    from wearflow.services.new_study import create_study

    target = create_study(directory, name)
    out.print(f"created {target}; put sensor files in {directory / 'raw'} and run "
              f"`wearflow run {directory}`")


@app.command()
@reports_errors
def validate(study: StudyArg, as_json: JsonOption = False) -> None:
    """Check a study and say what a run would do with every file (a dry run: nothing is
    written)."""
    from wearflow.services.validate import validate_study

    report = validate_study(load_study(study))
    if as_json:
        _print_json(report.to_json())
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


EXECUTOR_HELP = ("inline, local, dask (a local Dask cluster) or dask://host:8786 "
                 "(default: the study's executor:, else local)")


@app.command()
@reports_errors
def run(
    study: StudyArg,
    workers: Annotated[int | None, typer.Option(help="worker processes (default: cores)",
                                                min=1)] = None,
    executor: Annotated[str | None, typer.Option(help=EXECUTOR_HELP)] = None,
    as_json: JsonOption = False,
) -> None:
    """Catalog, process and aggregate the study once; only new work is done."""
    s = load_study(study)
    report = _run_with_progress(s, executor or s.executor, workers)
    if as_json:
        _print_json(report.to_json())
    else:
        _print_report(report)
    raise typer.Exit(report.exit_code)


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
                                                   memory_limit_gb=s.memory_limit_gb),
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
) -> None:
    """Process new and changed files as they land, until SIGINT/SIGTERM (exit 0)."""
    from wearflow.executors import make_executor
    from wearflow.watch import watch_study

    s = load_study(study)
    pool = make_executor(executor or s.executor, workers or s.workers, persistent=True,
                         memory_limit_gb=s.memory_limit_gb)

    def on_cycle(report: RunReport) -> None:
        if report.executed or report.participants_aggregated:
            _print_report(report)

    out.print(f"watching {', '.join(s.input)} (Ctrl-C to stop)")
    result = watch_study(s, executor=pool,
                         poll_s=poll_s, settle_s=settle_s, on_cycle=on_cycle,
                         on_notification=lambda uri: out.print(f"notification: {uri}",
                                                               highlight=False))
    for problem in result.errors[-5:]:
        err.print(f"cycle error: {problem}")
    out.print(f"stopped after {result.cycles} cycles, {result.executed} tasks executed")


@app.command()
@reports_errors
def status(study: StudyArg, as_json: JsonOption = False) -> None:
    """Files by state, participants processed, and open issues."""
    from wearflow.services.status import study_status

    info = study_status(load_study(study))
    if as_json:
        _print_json(info)
        return
    files = info["files"]
    out.print(f"study {info['study']}: {files['total']} files; " + ", ".join(
        f"{k} {v}" for k, v in files["by_state"].items()))
    visits = info["participant_visits"]
    out.print(f"participants: {info['participants']['processed']} of "
              f"{info['participants']['total']} processed; participant-visits: "
              f"{visits['processed']} of {visits['total']}")
    if info["issues"]:
        table = _folding_table("tag", "file", "message", title="open issues")
        for i in info["issues"]:
            table.add_row(i["tag"], _name(i["uri"]) or i["participant"] or "", i["message"])
        out.print(table)


@app.command()
@reports_errors
def issues(
    study: StudyArg,
    as_json: JsonOption = False,
    tag: Annotated[Tag | None, typer.Option(help="only this tag (any case)",
                                            case_sensitive=False)] = None,
) -> None:
    """Open issues: what is wrong, with which file or participant, and what resolves it."""
    from wearflow.services.status import study_status

    info = study_status(load_study(study), tag=tag.value if tag else None)
    if as_json:
        _print_json(info["issues"])
        return
    table = _folding_table("id", "tag", "participant", "file", "message", "resolves it",
                           title="open issues")
    for i in info["issues"]:
        table.add_row(str(i["id"]), i["tag"], i["participant"] or "", _name(i["uri"]),
                      i["message"], i["resolution"])
    out.print(table if info["issues"] else "no open issues")


@app.command()
@reports_errors
def metadata(study: StudyArg, as_json: JsonOption = False) -> None:
    """Current metadata values per participant, and the file and row each came from."""
    from wearflow.services.status import study_metadata

    values = study_metadata(load_study(study))
    if as_json:
        _print_json(values)
        return
    table = Table("participant", "field", "value", "source", "row", "added (UTC)")
    for participant, cells in values.items():
        for name, cell in cells.items():
            table.add_row(participant, name, cell["value"], cell["source_uri"],
                          str(cell["row"]), cell["added_utc"])
    out.print(table)


@app.command()
@reports_errors
def qc(study: StudyArg, as_json: JsonOption = False) -> None:
    """Per file and per day: valid or not, and why; also written as a CSV in the output."""
    from wearflow.services.status import export_qc

    export = export_qc(load_study(study))
    if as_json:
        _print_json(export.to_json())
        return
    view = Table("participant", "side", "file", "date", "wear h", "valid", "reason")
    for r in export.rows:
        view.add_row(str(r["participant"] or ""), str(r["side"] or ""),
                     r["uri"].rsplit("/", 1)[-1], r["date"] or "",
                     "" if r["wear_hours"] is None else f"{r['wear_hours']:.1f}",
                     "yes" if r["valid_day"] else "no", r["reason"] or "")
    out.print(view)
    out.print(f"written: {export.output}/{export.path}")


@app.command()
@reports_errors
def export(
    study: StudyArg,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    to: Annotated[str | None, typer.Option(
        "--to", help="folder or URI to write into (default: <output>/export/<content hash>/)")
    ] = None,
    solution: Annotated[str | None, typer.Option(help="only this solution")] = None,
    as_json: JsonOption = False,
) -> None:
    """Write analysis-ready tables (per day, night and participant-visit) and their data
    dictionary from the current participant results (exit 1 when there is none)."""
    from wearflow.services.export import export_results, parse_format

    report = export_results(load_study(study), parse_format(fmt), to, solution)
    if as_json:
        _print_json(report.to_json())
    elif report.written:
        out.print(f"{report.participant_visits} participant-visits exported to "
                  f"{report.location}/", highlight=False, soft_wrap=True)
        for f in report.files:
            rows = "" if f.rows is None else f"{f.rows} rows"
            out.print(f"  {f.path:34} {rows}", highlight=False)
    for x in report.left_out:
        visit = f" visit {x.visit}" if x.visit else ""
        err.print(f"left out: {x.solution} {x.participant}{visit}: {x.reason}",
                  highlight=False, soft_wrap=True)
    if not report.written:
        err.print(f"study {report.study}: no current participant result yet, nothing "
                  f"exported (run `wearflow run {study}` first)", highlight=False,
                  soft_wrap=True)
        raise typer.Exit(1)


@app.command()
@reports_errors
def verify(study: StudyArg, as_json: JsonOption = False) -> None:
    """Check every output on storage against its recorded sha256 (exit 1 on any problem)."""
    from wearflow.services.verify import verify_outputs

    report = verify_outputs(load_study(study))
    if as_json:
        _print_json(report.to_json())
    else:
        for p in report.problems:
            out.print(f"{p.kind.upper():10} {p.path}: {p.detail}", highlight=False)
        out.print(f"{report.checked} files checked, {len(report.problems)} problems")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
@reports_errors
def reproduce(
    study: StudyArg,
    result: Annotated[str, typer.Argument(
        help="a per-wrist result folder (absolute, relative, or the input file's folder "
             "above it) or its task key")],
    as_json: JsonOption = False,
) -> None:
    """Re-run one result's task in a scratch folder and compare every output byte for byte."""
    from wearflow.services.verify import reproduce as run_again

    report = run_again(load_study(study), result)
    if as_json:
        _print_json(report.to_json())
    else:
        for f in report.files:
            out.print(f"{'identical' if f.identical else 'DIFFERENT':10} {f.path}",
                      highlight=False, soft_wrap=True)
    raise typer.Exit(0 if report.identical else 1)


audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit trail.")
app.add_typer(audit_app, name="audit")
Reason = Annotated[str, typer.Option("--reason", help="why (mandatory, audited)")]
FileArg = Annotated[str, typer.Argument(help="the file: its URI, path in the location, or name")]


@audit_app.command("verify")
@reports_errors
def audit_verify(study: StudyArg, as_json: JsonOption = False) -> None:
    """Re-compute the hash chain; name the first edited, deleted, inserted or moved entry."""
    from wearflow.services.audit import verify_audit

    check = verify_audit(load_study(study))
    report = check.report
    if as_json:
        _print_json(check.to_json())
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
    from wearflow.demo import print_summary, write_demo_study

    study_file = write_demo_study(directory, participants=participants, days=days, seed=seed)
    s = load_study(study_file)
    report = _run_with_progress(s, "local", workers)
    _print_report(report)
    print_summary(out, s, report)
    raise typer.Exit(report.exit_code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
