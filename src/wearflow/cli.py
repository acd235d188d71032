"""The `wearflow` command line: a thin layer over the runner.

Exit codes: 0 success; 1 some files failed (the rest of the study completed);
2 the command could not do its job (invalid study file, unreachable storage,
...), with a one-line reason on stderr and no traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wearflow.config import STUDY_FILE_NAME, Study, load_study, study_file_path
from wearflow.errors import WearflowError
from wearflow.executors import make_executor
from wearflow.runner import EXIT_CANNOT_RUN, RunReport, run_study
from wearflow.status import study_status

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Process wearable-sensor studies into digital biomarkers.")
out = Console()
err = Console(stderr=True)

StudyArg = Annotated[Path, typer.Argument(help="study file, or the folder holding study.yaml")]

STUDY_TEMPLATE = """\
# wearflow study file: see README.md for every key.
study: {name}
input: raw/                # folder (relative to this file), URI, or a list of them
output: results/           # per-wrist and participant results, logs, state database
time_zone: UTC             # participants' local time zone: days and nights are cut in it
files:
  sensor: ["{{participant}}_{{side}}.cwa", "{{participant}}_{{side}}.cwa.gz",
           "{{participant}}_{{side}}.bin", "{{participant}}_{{side}}.csv"]
  sides: {{left: [L, LW, left], right: [R, RW, right]}}
solutions:
  - name: wrist
    pipeline: builtin:wrist   # or a path to a scikit-digital-health pipeline file (.skdh)
# state: sqlite:///results/wearflow.db   # the default
"""


def _fail(exc: WearflowError) -> typer.Exit:
    typer.echo(f"error [{exc.tag.value}] {exc}", err=True)  # one plain line, never wrapped
    return typer.Exit(EXIT_CANNOT_RUN)


@app.command()
def init(directory: Path, name: str = typer.Option("MY-STUDY", help="study id")) -> None:
    """Create a new study folder with a commented study.yaml and an empty raw/ folder."""
    target = directory / STUDY_FILE_NAME
    if target.exists():
        err.print(f"error: {target} already exists; not overwritten")
        raise typer.Exit(EXIT_CANNOT_RUN)
    (directory / "raw").mkdir(parents=True, exist_ok=True)
    target.write_text(STUDY_TEMPLATE.format(name=name), encoding="utf-8")
    out.print(f"created {target}; put sensor files in {directory / 'raw'} and run "
              f"`wearflow run {directory}`")


@app.command()
def validate(study: StudyArg) -> None:
    """Check a study file: keys, patterns, time zones, solutions, storage."""
    from wearflow.solutions import load_solution
    from wearflow.storage import Store

    try:
        s = load_study(study)
        sols = [load_solution(c) for c in s.solutions]
        for loc in s.input:
            Store(loc, s.storage_options).check_reachable()
    except WearflowError as exc:
        raise _fail(exc) from None
    out.print(f"{study_file_path(study)}: valid (study {s.study}; "
              f"{len(s.input)} input location(s); solutions: "
              + ", ".join(f"{x.name} {x.version}" for x in sols) + ")")


EXECUTOR_HELP = ("inline, local, dask (a local Dask cluster) or dask://host:8786 "
                 "(default: the study's executor:, else local)")


@app.command()
def run(
    study: StudyArg,
    workers: Annotated[int | None, typer.Option(help="worker processes (default: cores)")] = None,
    executor: Annotated[str | None, typer.Option(help=EXECUTOR_HELP)] = None,
) -> None:
    """Catalog, process and aggregate the study once; only new work is done."""
    try:
        s = load_study(study)
        report = _run_with_progress(s, executor or s.executor, workers)
    except WearflowError as exc:
        raise _fail(exc) from None
    _print_report(report)
    raise typer.Exit(report.exit_code)


def _run_with_progress(s: Study, executor: str, workers: int | None) -> RunReport:
    # The bar appears only once processing starts, so an early error stays one line.
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=err, transient=False)
    task_id = bar.add_task("processing files", total=None)

    def progress(_phase: str, done: int, total: int) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(task_id, completed=done, total=total)

    try:
        return run_study(s, executor=make_executor(executor, workers or s.workers,
                                                   memory_limit_gb=s.memory_limit_gb),
                         progress=progress)
    finally:
        if bar.live.is_started:
            bar.stop()


def _print_report(report: RunReport) -> None:
    held = f" ({report.unparsable} held before processing)" if report.unparsable else ""
    out.print(f"run {report.run_id}: {report.files_total} files: {report.done} done, "
              f"{report.failed} failed{held}; {report.executed} tasks executed this run; "
              f"{report.participants_aggregated} participant results written")
    if report.failed:
        out.print("see `wearflow status` for each failed file and its reason")
    for folder in report.summary_dirs:
        out.print(f"study summary: {report.output}/{folder}/summary.csv")


@app.command()
def watch(
    study: StudyArg,
    workers: Annotated[int | None, typer.Option(help="worker processes (default: cores)")] = None,
    executor: Annotated[str | None, typer.Option(help=EXECUTOR_HELP)] = None,
    poll_s: Annotated[float, typer.Option(help="seconds between listings")] = 5.0,
    settle_s: Annotated[float, typer.Option(help="quiet seconds before reading")] = 2.0,
) -> None:
    """Process new and changed files as they land, until SIGINT/SIGTERM (exit 0)."""
    from wearflow.watch import watch_study

    try:
        s = load_study(study)
        pool = make_executor(executor or s.executor, workers or s.workers, persistent=True,
                             memory_limit_gb=s.memory_limit_gb)
    except WearflowError as exc:
        raise _fail(exc) from None

    def on_cycle(report: RunReport) -> None:
        if report.executed or report.participants_aggregated:
            _print_report(report)

    out.print(f"watching {', '.join(s.input)} (Ctrl-C to stop)")
    try:
        result = watch_study(s, executor=pool,
                             poll_s=poll_s, settle_s=settle_s, on_cycle=on_cycle,
                             on_notification=lambda uri: out.print(f"notification: {uri}",
                                                                   highlight=False))
    except WearflowError as exc:  # e.g. a trigger's optional dependency is not installed
        raise _fail(exc) from None
    for problem in result.errors[-5:]:
        err.print(f"cycle error: {problem}")
    out.print(f"stopped after {result.cycles} cycles, {result.executed} tasks executed")


@app.command()
def status(study: StudyArg, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Files by state, participants processed, and open issues."""
    try:
        info = study_status(load_study(study))
    except WearflowError as exc:
        raise _fail(exc) from None
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
        return
    files = info["files"]
    out.print(f"study {info['study']}: {files['total']} files; " + ", ".join(
        f"{k} {v}" for k, v in files["by_state"].items()))
    out.print(f"participants: {info['participants']['processed']} of "
              f"{info['participants']['total']} processed")
    if info["issues"]:
        table = Table("tag", "file", "message", title="open issues")
        for i in info["issues"]:
            table.add_row(i["tag"], i["uri"] or i["participant"] or "", i["message"])
        out.print(table)


@app.command()
def issues(
    study: StudyArg,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    tag: Annotated[str | None, typer.Option(help="only this tag, e.g. WAITING")] = None,
) -> None:
    """Open issues: what is wrong, with which file or participant, and what resolves it."""
    try:
        info = study_status(load_study(study), tag=tag)
    except WearflowError as exc:
        raise _fail(exc) from None
    if as_json:
        sys.stdout.write(json.dumps(info["issues"], indent=2, sort_keys=True) + "\n")
        return
    table = Table("id", "tag", "participant", "file", "message", "resolves it",
                  title="open issues")
    for i in info["issues"]:
        table.add_row(str(i["id"]), i["tag"], i["participant"] or "", i["uri"] or "",
                      i["message"], i["resolution"])
    out.print(table if info["issues"] else "no open issues")


@app.command()
def metadata(study: StudyArg, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Current metadata values per participant, and the file and row each came from."""
    from wearflow.status import study_metadata

    try:
        values = study_metadata(load_study(study))
    except WearflowError as exc:
        raise _fail(exc) from None
    if as_json:
        sys.stdout.write(json.dumps(values, indent=2, sort_keys=True) + "\n")
        return
    table = Table("participant", "field", "value", "source", "row", "added (UTC)")
    for participant, cells in values.items():
        for name, cell in cells.items():
            table.add_row(participant, name, cell["value"], cell["source_uri"],
                          str(cell["row"]), cell["added_utc"])
    out.print(table)


@app.command()
def qc(study: StudyArg, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Per file and per day: valid or not, and why; also written as a CSV in the output."""
    import pandas as pd

    from wearflow.results import csv_bytes
    from wearflow.status import study_qc
    from wearflow.storage import Store, sha256_bytes

    try:
        s = load_study(study)
        rows = study_qc(s)
        table = pd.DataFrame(rows, columns=["solution", "participant", "side", "uri", "state",
                                            "date", "wear_hours", "valid_day", "reason",
                                            "flags"])
        data = csv_bytes(table)
        path = f"qc/{sha256_bytes(data)[:16]}/qc.csv"  # write-once, named by content
        Store(s.output, s.storage_options).write_once(path, data)
    except WearflowError as exc:
        raise _fail(exc) from None
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, sort_keys=True, default=str) + "\n")
        return
    view = Table("participant", "side", "file", "date", "wear h", "valid", "reason")
    for r in rows:
        view.add_row(str(r["participant"] or ""), str(r["side"] or ""),
                     r["uri"].rsplit("/", 1)[-1], r["date"] or "",
                     "" if r["wear_hours"] is None else f"{r['wear_hours']:.1f}",
                     "yes" if r["valid_day"] else "no", r["reason"] or "")
    out.print(view)
    out.print(f"written: {s.output}/{path}")


@app.command()
def verify(study: StudyArg) -> None:
    """Check every output on storage against its recorded sha256 (exit 1 on any problem)."""
    from wearflow.verify import verify_outputs

    try:
        report = verify_outputs(load_study(study))
    except WearflowError as exc:
        raise _fail(exc) from None
    for p in report.problems:
        out.print(f"{p.kind.upper():10} {p.path}: {p.detail}", highlight=False)
    out.print(f"{report.checked} files checked, {len(report.problems)} problems")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def reproduce(
    study: StudyArg,
    result: Annotated[str, typer.Argument(help="a per-wrist result folder or its task key")],
) -> None:
    """Re-run one result's task in a scratch folder and compare every output byte for byte."""
    from wearflow.verify import reproduce as run_again

    try:
        report = run_again(load_study(study), result)
    except WearflowError as exc:
        raise _fail(exc) from None
    for f in report.files:
        out.print(f"{'identical' if f.identical else 'DIFFERENT':10} {f.path}", highlight=False)
    raise typer.Exit(0 if report.identical else 1)


audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit trail.")
app.add_typer(audit_app, name="audit")
Reason = Annotated[str, typer.Option("--reason", help="why (mandatory, audited)")]


@audit_app.command("verify")
def audit_verify(study: StudyArg) -> None:
    """Re-compute the hash chain; name the first edited, deleted, inserted or moved entry."""
    from wearflow.audit import AuditTrail
    from wearflow.state import State

    try:
        state = State(load_study(study).state_url)
        try:
            report = AuditTrail(state.engine).verify()
        finally:
            state.close()
    except WearflowError as exc:
        raise _fail(exc) from None
    if report.ok:
        out.print(f"audit trail intact: {report.entries} entries; head {report.head_seq} "
                  f"{report.head_hash} (keep it as an external anchor)", highlight=False)
        return
    out.print(f"audit trail BROKEN at entry {report.first_bad_seq}: {report.reason}",
              highlight=False)
    raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    study: StudyArg,
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    output: Annotated[Path | None, typer.Option(help="file to write (default stdout)")] = None,
) -> None:
    """Write the whole audit trail, in order, for an inspector."""
    from wearflow.audit import AuditTrail
    from wearflow.state import State

    if fmt not in ("csv", "json"):
        err.print("error: --format must be csv or json")
        raise typer.Exit(EXIT_CANNOT_RUN)
    try:
        state = State(load_study(study).state_url)
        try:
            AuditTrail(state.engine).export(output or sys.stdout,
                                            "csv" if fmt == "csv" else "json")
        finally:
            state.close()
    except WearflowError as exc:
        raise _fail(exc) from None


@app.command()
def retry(study: StudyArg, file: str, reason: Reason) -> None:
    """Queue a file's failed tasks again (the next run processes them)."""
    from wearflow import manual

    try:
        keys = manual.retry(load_study(study), file, reason)
    except WearflowError as exc:
        raise _fail(exc) from None
    out.print(f"{len(keys)} task(s) queued again; run `wearflow run {study}`")


@app.command()
def exclude(study: StudyArg, file: str, reason: Reason,
            undo: Annotated[bool, typer.Option("--undo", help="include it again")] = False
            ) -> None:
    """Keep a file out of processing and aggregation (or, with --undo, bring it back)."""
    from wearflow import manual

    try:
        uri = manual.exclude(load_study(study), file, reason, undo=undo)
    except WearflowError as exc:
        raise _fail(exc) from None
    out.print(f"{'included' if undo else 'excluded'}: {uri}")


@app.command()
def resolve(study: StudyArg, issue: int, reason: Reason) -> None:
    """Close an issue by hand (its id is in `wearflow issues`)."""
    from wearflow import manual

    try:
        message = manual.resolve(load_study(study), issue, reason)
    except WearflowError as exc:
        raise _fail(exc) from None
    out.print(f"resolved issue {issue}: {message}")


@app.command()
def demo(
    directory: Annotated[Path, typer.Argument()] = Path("demo-study"),
    participants: int = 4,
    days: float = 2.0,
    seed: int = 0,
    workers: Annotated[int | None, typer.Option(help="worker processes")] = None,
) -> None:
    """Write a synthetic study (Axivity .cwa with temperature), run it, print the summary."""
    from wearflow.demo import print_summary, write_demo_study

    try:
        study_file = write_demo_study(directory, participants=participants, days=days, seed=seed)
        s = load_study(study_file)
        report = _run_with_progress(s, "local", workers)
    except WearflowError as exc:
        raise _fail(exc) from None
    _print_report(report)
    print_summary(out, s, report)
    raise typer.Exit(report.exit_code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
