"""Commands that act on a study by hand, each audited: audit, retry, exclude, resolve,
users."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from wearflow.cli._common import (
    FileArg,
    JsonOption,
    ProfileOption,
    ProfilesOption,
    Reason,
    StudyArg,
    TokenOption,
    app,
    err,
    folding_table,
    open_study,
    out,
    print_json,
    reports_errors,
    signer,
)
from wearflow.errors import EXIT_CANNOT_RUN

audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit trail.")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
@reports_errors
def audit_verify(
    study: StudyArg,
    anchor: Annotated[str | None, typer.Option(
        "--anchor", help="check against this head instead of the stored anchors: SEQ:HASH "
                         "(as printed here) or an anchor file kept elsewhere")] = None,
    as_json: JsonOption = False,
    profile: ProfileOption = None,
    profiles: ProfilesOption = None,
) -> None:
    """Re-compute the hash chain against the latest anchor kept outside the database; name
    the first edited, deleted, inserted, moved or cut-off entry."""
    from wearflow.anchors import parse_given_anchor
    from wearflow.services.audit import verify_audit

    given = parse_given_anchor(anchor) if anchor is not None else None
    check = verify_audit(open_study(study, profile, profiles), given)
    report = check.report
    if as_json:
        print_json(check.to_json())
    elif check.ok:
        out.print(f"audit trail intact: {report.entries} entries; head {report.head_seq}:"
                  f"{report.head_hash}; {check.anchor_text()}", highlight=False,
                  soft_wrap=True)
    else:
        out.print(f"audit trail {check.problem()}; {check.anchor_text()}", highlight=False,
                  soft_wrap=True)
    raise typer.Exit(0 if check.ok else 1)


@audit_app.command("export")
@reports_errors
def audit_export(
    study: StudyArg,
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    output: Annotated[Path | None, typer.Option(help="file to write (default stdout)")] = None,
    profile: ProfileOption = None,
    profiles: ProfilesOption = None,
) -> None:
    """Write the whole audit trail, in order, for an inspector."""
    from wearflow.services.audit import export_audit

    if fmt not in ("csv", "json"):
        err.print("error: --format must be csv or json")
        raise typer.Exit(EXIT_CANNOT_RUN)
    export_audit(open_study(study, profile, profiles), output or sys.stdout,
                 "csv" if fmt == "csv" else "json")


@app.command()
@reports_errors
def retry(study: StudyArg, reason: Reason,
          file: Annotated[str | None, typer.Argument(
              help="the file: its URI, path in the location, or name")] = None,
          missing: Annotated[bool, typer.Option(
              "--missing", help="instead of a file: every result folder gone from storage "
                                "(deleted by hand), written again by the next run")] = False,
          token: TokenOption = "", profile: ProfileOption = None,
        profiles: ProfilesOption = None) -> None:
    """Queue a file's failed tasks again, or (--missing) the results gone from storage;
    the next run processes them."""
    from wearflow.services import manual

    if (file is None) == (not missing):
        err.print("error: give a file or --missing (not both)")
        raise typer.Exit(EXIT_CANNOT_RUN)
    s = open_study(study, profile, profiles)
    if file is not None:
        keys = manual.retry(s, file, reason, signer(s, token))
        out.print(f"{len(keys)} task(s) queued again; run `wearflow run {study}`")
        return
    queued = manual.retry_missing(s, reason, signer(s, token))
    out.print(f"{len(queued.folders)} result folder(s) missing: {len(queued.tasks)} task(s) "
              f"and {len(queued.participant_results)} participant result(s) to be written "
              f"again; run `wearflow run {study}`", highlight=False, soft_wrap=True)


@app.command()
@reports_errors
def exclude(study: StudyArg, file: FileArg, reason: Reason,
            undo: Annotated[bool, typer.Option("--undo", help="include it again")] = False,
            token: TokenOption = "", profile: ProfileOption = None,
        profiles: ProfilesOption = None) -> None:
    """Keep a file out of processing and aggregation (or, with --undo, bring it back)."""
    from wearflow.services import manual

    s = open_study(study, profile, profiles)
    uri = manual.exclude(s, file, reason, undo=undo, signer=signer(s, token))
    out.print(f"{'included' if undo else 'excluded'}: {uri}")


@app.command()
@reports_errors
def resolve(study: StudyArg, issue: Annotated[int, typer.Argument(
        help="the issue's id (the first column of `wearflow issues`)")], reason: Reason,
            token: TokenOption = "", profile: ProfileOption = None,
        profiles: ProfilesOption = None) -> None:
    """Close an issue by hand (its id is in `wearflow issues`)."""
    from wearflow.services import manual

    s = open_study(study, profile, profiles)
    message = manual.resolve(s, issue, reason, signer(s, token))
    out.print(f"resolved issue {issue}: {message}")



users_app = typer.Typer(no_args_is_help=True,
                        help="The study's users and roles (viewer, operator, admin).")
app.add_typer(users_app, name="users")
RoleArg = Annotated[str, typer.Option("--role", help="viewer, operator or admin")]
NameArg = Annotated[str, typer.Argument(help="the user's name")]


@users_app.command("add")
@reports_errors
def users_add(study: StudyArg, name: NameArg, role: RoleArg = "viewer",
              token: TokenOption = "", profile: ProfileOption = None,
        profiles: ProfilesOption = None) -> None:
    """Add a user; print their token once (only its hash is kept)."""
    from wearflow.identity import parse_role
    from wearflow.services.users import add_user

    s = open_study(study, profile, profiles)
    new = add_user(s, name, parse_role(role), signer(s, token))
    err.print(f"user {name} added as {parse_role(role)}; their token (shown once, keep it "
              "secret):", highlight=False)
    print(new)  # alone on stdout, for a pipe


@users_app.command("list")
@reports_errors
def users_list(study: StudyArg, as_json: JsonOption = False,
        profile: ProfileOption = None, profiles: ProfilesOption = None) -> None:
    """Users, roles, who added them and whether they are active (never a token)."""
    from wearflow.services.users import list_users

    users = list_users(open_study(study, profile, profiles))
    if as_json:
        print_json([{"name": u.name, "role": u.role.value, "created_utc": u.created_utc,
                     "created_by": u.created_by, "active": u.active} for u in users])
        return
    if not users:
        out.print("no users yet: `wearflow users add STUDY NAME --role admin`")
        return
    table = folding_table("name", "role", "active", "added", "by", title="users")
    for u in users:
        table.add_row(u.name, u.role.value, "yes" if u.active else "no", u.created_utc,
                      u.created_by)
    out.print(table)


@users_app.command("role")
@reports_errors
def users_role(study: StudyArg, name: NameArg, role: RoleArg, token: TokenOption = "",
        profile: ProfileOption = None, profiles: ProfilesOption = None) -> None:
    """Change a user's role."""
    from wearflow.identity import parse_role
    from wearflow.services.users import set_role

    s = open_study(study, profile, profiles)
    before = set_role(s, name, parse_role(role), signer(s, token))
    out.print(f"user {name}: {before.role} -> {parse_role(role)}")


@users_app.command("disable")
@reports_errors
def users_disable(study: StudyArg, name: NameArg, token: TokenOption = "",
        profile: ProfileOption = None, profiles: ProfilesOption = None) -> None:
    """Disable a user: their token stops working (they stay in the audit trail)."""
    from wearflow.services.users import disable_user

    s = open_study(study, profile, profiles)
    disable_user(s, name, signer(s, token))
    out.print(f"user {name} disabled")


@users_app.command("token")
@reports_errors
def users_token(study: StudyArg, name: NameArg, token: TokenOption = "",
        profile: ProfileOption = None, profiles: ProfilesOption = None) -> None:
    """Give a user a new token (a lost or leaked one stops working); print it once."""
    from wearflow.services.users import new_token

    s = open_study(study, profile, profiles)
    fresh = new_token(s, name, signer(s, token))
    err.print(f"new token of {name} (shown once):", highlight=False)
    print(fresh)
