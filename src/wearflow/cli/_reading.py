"""Commands that read a study: status, issues, metadata, qc, export, verify, reproduce."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from wearflow.cli._common import (
    JsonOption,
    StudyArg,
    app,
    err,
    file_name,
    folding_table,
    out,
    print_json,
    reports_errors,
)
from wearflow.config import load_study
from wearflow.errors import Tag


@app.command()
@reports_errors
def status(study: StudyArg, as_json: JsonOption = False) -> None:
    """Files by state, participants processed, and open issues."""
    from wearflow.services.status import study_status

    info = study_status(load_study(study))
    if as_json:
        print_json(info)
        return
    files = info["files"]
    out.print(f"study {info['study']}: {files['total']} files; " + ", ".join(
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
) -> None:
    """Open issues: what is wrong, with which file or participant, and what resolves it."""
    from wearflow.services.status import study_status

    info = study_status(load_study(study), tag=tag.value if tag else None)
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
def metadata(study: StudyArg, as_json: JsonOption = False) -> None:
    """Current metadata values per participant, and the file and row each came from."""
    from wearflow.services.status import study_metadata

    values = study_metadata(load_study(study))
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
def qc(study: StudyArg, as_json: JsonOption = False) -> None:
    """Per file and per day: valid or not, and why; also written as a CSV in the output."""
    from wearflow.services.status import export_qc

    export = export_qc(load_study(study))
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
) -> None:
    """Write analysis-ready tables (per day, night and participant-visit) and their data
    dictionary from the current participant results (exit 1 when there is none)."""
    from wearflow.services.export import export_results, parse_format

    report = export_results(load_study(study), parse_format(fmt), to, solution)
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
def verify(study: StudyArg, as_json: JsonOption = False) -> None:
    """Check every output on storage against its recorded sha256 (exit 1 on any problem)."""
    from wearflow.services.verify import verify_outputs

    report = verify_outputs(load_study(study))
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
) -> None:
    """Re-run one result's task in a scratch folder and compare every output byte for byte."""
    from wearflow.services.verify import reproduce as run_again

    report = run_again(load_study(study), result)
    if as_json:
        print_json(report.to_json())
    else:
        for f in report.files:
            out.print(f"{'identical' if f.identical else 'DIFFERENT':10} {f.path}",
                      highlight=False, soft_wrap=True)
    raise typer.Exit(0 if report.identical else 1)


