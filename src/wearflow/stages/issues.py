"""Issues: what this run saw that people must act on, kept in the issues queue.

:func:`derive_issues` is pure: the plan's held files and waiting tasks, failed tasks,
two files for one wrist, metadata problems and participants missing on either side
-> issues. :func:`sync_issues` opens new ones, refreshes those seen again, closes
those whose cause is gone, and publishes the new ones (log, issues file; owed to the
webhook in the issues table, which the run's sender posts).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence

from wearflow.catalog import StoredFile
from wearflow.errors import Tag
from wearflow.issue import IssueSpec
from wearflow.notify import publish_issues, webhook_deadline
from wearflow.stages.context import RunContext
from wearflow.task import TaskRecord, TaskState


def derive_issues(
    held: Iterable[IssueSpec],
    tasks: Iterable[tuple[TaskRecord, StoredFile]],
    metadata_problems: Iterable[tuple[str, str | None, str]],
    listed: set[str],
    has_metadata_files: bool,
) -> list[IssueSpec]:
    """Every open problem of a study, from what one run saw.

    Parameters
    ----------
    held
        The plan's held files and waiting tasks.
    tasks
        The current tasks of the current files, with their file.
    metadata_problems
        (metadata file URI, participant, problem) of the current metadata files.
    listed
        The participants any metadata file lists.
    has_metadata_files
        Whether the study has metadata files at all (only then is a participant missing
        from them an issue).
    """
    issues = list(held)
    per_side: dict[tuple[str, str, str, str, str], list[str]] = defaultdict(list)
    sensor_participants: set[str] = set()
    for task, f in tasks:
        if task.state == TaskState.DONE:
            issues.extend(_degraded(task, f))
        if task.state == TaskState.FAILED:
            issues.append(IssueSpec(task.tag or Tag.ERROR.value, task.message or "failed",
                                    uri=f.uri, participant=f.participant,
                                    resolution="replace the file or fix the solution; "
                                               "a new version is processed automatically"))
        if f.participant:
            sensor_participants.add(f.participant)
        if f.participant and f.side:
            per_side[(task.solution, f.participant, f.visit or "", f.body_location or "wrist",
                      f.side)].append(f.uri)
    for (sol, pid, visit, where, side), uris in sorted(per_side.items()):
        if len(set(uris)) > 1:
            at = f" visit {visit}" if visit else ""
            issues.append(IssueSpec(
                Tag.DATA_ISSUE.value,
                f"{len(uris)} tasks for participant {pid}{at} {side} {where} "
                f"({', '.join(sorted(uris))}); not aggregated for solution {sol}",
                participant=pid, resolution="remove or rename the wrong file"))
    for meta_uri, participant, problem in metadata_problems:
        issues.append(IssueSpec(Tag.METADATA_ISSUE.value, problem, uri=meta_uri,
                                participant=participant,
                                resolution="upload a corrected metadata file"))
    if has_metadata_files:
        issues.extend(_missing_on_either_side(sensor_participants, listed))
    return issues


# What a done task's flags say that a person must know: a step that did not run, or
# ran on an assumption instead of data (the result is there, and weaker).
_DEGRADED = (("skipped:", Tag.ALGORITHM_ISSUE, "a step of the solution was skipped"),
             ("never_worn:", Tag.DATA_ISSUE, "the device was never worn"))
# warnings that mean a step ran on an assumption instead of data (SKDH's own words). A
# calibration not done on a short recording stays a QC flag: it is what short means.
_ASSUMED = {"assuming 100% wear": "assumed the device was worn the whole time (no wear "
                                  "detection reached it)"}


def _degraded(task: TaskRecord, f: StoredFile) -> list[IssueSpec]:
    out = []
    for flag in task.flags:
        if flag.startswith("header_tz="):
            out.append(IssueSpec(
                Tag.DATA_ISSUE.value,
                f"the file's header says its clock ran at UTC{flag.removeprefix('header_tz=')}"
                "; the study's device_time_zone was used to convert its times to UTC",
                uri=f.uri, participant=f.participant,
                resolution="check which zone the device was set to; set device_time_zone "
                           "(study file) or time_zone (metadata) if the header is right"))
        step = flag.split(":", 2)
        for prefix, tag, what in _DEGRADED:
            if flag.startswith(prefix) and len(step) == 3:
                out.append(IssueSpec(tag.value, f"{what} ({step[1]}): {step[2]}", uri=f.uri,
                                     participant=f.participant,
                                     resolution="check the recording; the result is kept, "
                                                "with this flag"))
        if not flag.startswith("warning:") or len(step) != 3:
            continue
        for words, what in _ASSUMED.items():
            if words in step[2].lower():
                out.append(IssueSpec(Tag.ALGORITHM_ISSUE.value,
                                     f"step {step[1]} {what}: {step[2]}", uri=f.uri,
                                     participant=f.participant,
                                     resolution="check the file (how long, how worn); the "
                                                "result is kept, with this flag"))
    return out


def _missing_on_either_side(sensor: set[str], listed: set[str]) -> list[IssueSpec]:
    missing = [IssueSpec(Tag.METADATA_ISSUE.value,
                         f"participant {p} has sensor files but no metadata",
                         participant=p, resolution=f"add {p} to the metadata")
               for p in sorted(sensor - listed)]
    missing += [IssueSpec(Tag.METADATA_ISSUE.value,
                          f"participant {p} is in the metadata but has no sensor files",
                          participant=p,
                          resolution="upload the sensor files or correct the id")
                for p in sorted(listed - sensor)]
    return missing


def sync_issues(ctx: RunContext, held: Sequence[IssueSpec], listed: set[str],
                extra: Sequence[IssueSpec] = ()) -> None:
    """Derive this run's issues, bring the queue up to date and publish the new ones."""
    state = ctx.state
    issues = derive_issues([*held, *extra], state.tasks.for_current_files(),
                           state.metadata.problems(), listed,
                           bool(state.files.current(kind="metadata")))
    new = state.issues.sync(ctx.study.study, issues, webhook_deadline_utc=(
        webhook_deadline() if ctx.study.webhook else None))  # owed to it: the outbox
    for issue in new:
        ctx.log(issue.tag, issue.message, level=logging.WARNING, uri=issue.uri,
                participant=issue.participant)
    publish_issues(ctx.study, new)
