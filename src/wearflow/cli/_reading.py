"""Commands that read a study: status, issues, runs, metadata, qc, export, verify,
reproduce."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from wearflow.cli._common import (
    JsonOption,
    ProfileOption,
    ProfilesOption,
    StudyArg,
    app,
    err,
    file_name,
    folding_table,
    open_study,
    out,
    print_json,
    reports_errors,
)
from wearflow.errors import Tag
from wearflow.memory import GB, format_gb

if TYPE_CHECKING:
    from wearflow.services.runs import RunDetail, RunSummary


@app.command()
@reports_errors
def status(study: StudyArg, as_json: JsonOption = False,
        profile: ProfileOption = None, profiles: ProfilesOption = None) -> None:
    """Files by state, participants processed, and open issues."""
    from wearflow.services.status import study_status

    s = open_study(study, profile, profiles)
    info = study_status(s)
    if as_json:
        print_json(info)
        return
    files = info["files"]
    under = f" (profile {s.profile})" if s.profile else ""
    out.print(f"study {info['study']}{under}: {files['total']} files; " + ", ".join(
        f"{k} {v}" for k, v in files["by_state"].items()))
    visits = info["participant_visits"]
    out.print(f"participants: {info['participants']['processed']} of "
              f"{info['participants']['total']} processed; participant-visits: "
              f"{visits['processed']} of {visits['total']}")
    if info["issues"]:
        table = folding_table("tag", "file", "message", title="open issues")
        for i in info["issues"]:
            table.add_row(i["tag"], file_name(i["uri"]) or i["participant"] or "", i["message"])
        out.print(table)


@app.command()
@reports_errors
def issues(
    study: StudyArg,
    as_json: JsonOption = False,
    tag: Annotated[Tag | None, typer.Option(help="only this tag (any case)",
                                            case_sensitive=False)] = None,
    profile: ProfileOption = None,
    profiles: ProfilesOption = None,
) -> None:
    """Open issues: what is wrong, with which file or participant, and what resolves it."""
    from wearflow.services.status import study_status

    info = study_status(open_study(study, profile, profiles), tag=tag.value if tag else None)
    if as_json:
        print_json(info["issues"])
        return
    table = folding_table("id", "tag", "participant", "file", "message", "resolves it",
                           title="open issues")
    for i in info["issues"]:
        table.add_row(str(i["id"]), i["tag"], i["participant"] or "", file_name(i["uri"]),
                      i["message"], i["resolution"])
    out.print(table if info["issues"] else "no open issues")


@app.command()
@reports_errors
def runs(
    study: StudyArg,
    run: Annotated[str | None, typer.Argument(
        help="one run: its id, or its first 6 or more characters")] = None,
    as_json: JsonOption = False,
    profile: ProfileOption = None,
    profiles: ProfilesOption = None,
) -> None:
    """Runs, newest first (duration, tasks, CPU, peak memory); with a run id, its attempts."""
    from wearflow.services.runs import list_runs, run_detail

    s = open_study(study, profile, profiles)
    if run is not None:
        detail = run_detail(s, run)
        if as_json:
            print_json(detail.to_json())
        else:
            _print_run(detail)
        return
    summaries = list_runs(s)
    if as_json:
        print_json([r.to_json() for r in summaries])
        return
    if not summaries:
        out.print("no run yet")
        return
    # borderless columns: a full run id (24 characters) and six figures fit 80 columns
    table = Table("run", "took", "done", "failed", "retried", "cpu s", "peak",
                  title=f"runs of study {s.study}",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.columns[0].no_wrap = True
    for r in summaries:
        table.add_row(r.run_id, _took(r), str(r.tasks_done), str(r.tasks_failed),
                      str(r.tasks_retried), _cpu(r.cpu_s), _size(r.peak_rss_bytes))
    out.print(table)


def _print_run(detail: RunDetail) -> None:
    r = detail.run
    took = f"finished in {_took(r)}" if r.status == "finished" else r.status
    out.print(f"run {r.run_id} of study {detail.study}: {took}", highlight=False)
    out.print(f"started {r.started_utc} by {r.user} on {r.host}", highlight=False)
    out.print(f"{r.attempts} attempt{'' if r.attempts == 1 else 's'}: {r.tasks_done} done, "
              f"{r.tasks_failed} failed, {r.tasks_retried} retried; {_cpu(r.cpu_s)} CPU s; "
              f"peak {_size(r.peak_rss_bytes) or 'not measured'}", highlight=False)
    if not detail.attempts:
        return
    table = folding_table("file", "try", "worker", "state", "took", "cpu s", "peak",
                          title="attempts")
    for a in detail.attempts:
        table.add_row(file_name(a.uri), str(a.attempt), a.worker,
                      "retried" if a.transient else a.state.value, _seconds(a.wall_s),
                      _cpu(a.cpu_s), _size(a.peak_rss_bytes))
    out.print(table)
    for a in detail.attempts:
        if a.message:
            out.print(f"{file_name(a.uri)} (try {a.attempt}): {a.tag} {a.message}",
                      highlight=False)


def _took(run: RunSummary) -> str:
    """How long a run took, or why that is not known."""
    return _seconds(run.duration_s) if run.duration_s is not None else run.status


def _seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m {int(seconds % 60):02d}s"
    return f"{minutes // 60}h {minutes % 60:02d}m"


def _cpu(seconds: float) -> str:
    return f"{seconds:.1f}" if seconds < 1000 else f"{seconds:.0f}"


def _size(n_bytes: int) -> str:
    """Memory in MB below a GB, else in GB; "" when not measured."""
    if not n_bytes:
        return ""
    return f"{n_bytes / 2**20:.0f} MB" if n_bytes < GB else format_gb(n_bytes)


@app.command()
@reports_errors
def metadata(study: StudyArg, as_json: JsonOption = False,
        profile: ProfileOption = None, profiles: ProfilesOption = None) -> None:
    """Current metadata values per participant, and the file and row each came from."""
    from wearflow.services.status import study_metadata

    values = study_metadata(open_study(study, profile, profiles))
    if as_json:
        print_json(values)
        return
    table = Table("participant", "field", "value", "source", "row", "added (UTC)")
    for participant, cells in values.items():
        for name, cell in cells.items():
            table.add_row(participant, name, cell["value"], cell["source_uri"],
                          str(cell["row"]), cell["added_utc"])
    out.print(table)


@app.command()
@reports_errors
def qc(study: StudyArg, as_json: JsonOption = False,
        profile: ProfileOption = None, profiles: ProfilesOption = None) -> None:
    """Per file and per day: valid or not, and why; also written as a CSV in the output."""
    from wearflow.services.status import export_qc

    export = export_qc(open_study(study, profile, profiles))
    if as_json:
        print_json(export.to_json())
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
    profile: ProfileOption = None,
    profiles: ProfilesOption = None,
) -> None:
    """Write analysis-ready tables and their data dictionary from the current results.

    One table per day, per night and per participant-visit (exit 1 when there is no
    current participant result)."""
    from wearflow.services.export import export_results, parse_format

    report = export_results(open_study(study, profile, profiles), parse_format(fmt), to, solution)
    if as_json:
        print_json(report.to_json())
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
def verify(study: StudyArg, as_json: JsonOption = False,
        profile: ProfileOption = None, profiles: ProfilesOption = None) -> None:
    """Check every output on storage against its recorded sha256 (exit 1 on any problem)."""
    from wearflow.services.verify import verify_outputs

    report = verify_outputs(open_study(study, profile, profiles))
    if as_json:
        print_json(report.to_json())
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
    profile: ProfileOption = None,
    profiles: ProfilesOption = None,
) -> None:
    """Re-run one result's task in a scratch folder and compare every output byte for byte."""
    from wearflow.services.verify import reproduce as run_again

    report = run_again(open_study(study, profile, profiles), result)
    if as_json:
        print_json(report.to_json())
    else:
        for f in report.files:
            out.print(f"{'identical' if f.identical else 'DIFFERENT':10} {f.path}",
                      highlight=False, soft_wrap=True)
    raise typer.Exit(0 if report.identical else 1)


