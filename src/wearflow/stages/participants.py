"""Participants: combine the wrists of each participant and visit into ``processed/``,
then write the study summary of each solution.

A participant result is keyed by the hash of the aggregator version, the solution,
the participant, the visit (when the names give one), the dominant hand and the task
keys of the wrists combined: a new wrist, a corrected hand or a re-processed file
writes a new result; the old one stays. A lone wrist waits ``single_wrist_grace_h``
for the other before it is written alone.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta

from wearflow import aggregate
from wearflow.catalog import StoredFile
from wearflow.clock import parse_iso, utc_now
from wearflow.errors import Tag
from wearflow.issue import IssueSpec
from wearflow.metadata import Metadata
from wearflow.provenance import InputRef, Provenance, software
from wearflow.results import participant_dir, read_tables, summary_dir, write_result
from wearflow.solutions import Solution, solution_ref
from wearflow.stages.context import RunContext
from wearflow.stages.outputs import (
    lost_output_issues,
    lost_participant_results,
    lost_task_results,
)
from wearflow.state.tables import ParticipantResultRow
from wearflow.storage import Store
from wearflow.task import TaskRecord

Wrist = tuple[TaskRecord, StoredFile]


def aggregate_participants(ctx: RunContext, metadata: Metadata) -> list[IssueSpec]:
    """Write every participant result that is due and not written yet (or to be written
    again: ``wearflow retry --missing``), then the summaries; return the problems that
    kept a participant-visit from being combined, and the result folders gone from
    storage (counted in the report's ``missing_outputs``).

    A participant-visit one of whose wrists' result folders is gone is not combined (not
    from the other wrist alone either), nor a summary over a participant result that is
    gone, until they are written again."""
    out = Store(ctx.study.output, ctx.study.storage_options)
    done = ctx.state.tasks.done_for_current_files()
    lost_wrists = lost_task_results(ctx.state, out, done)
    lost = {t.key for t, _ in lost_wrists}
    again = ctx.state.results.to_rewrite()
    existing = ctx.state.results.participant_keys() - again
    problems: list[IssueSpec] = []
    for (sol_name, participant, visit), wrists in sorted(_due_groups(ctx, done).items()):
        if any(t.key in lost for t, _ in wrists):
            continue  # said below
        hand_cell = metadata.get(participant, {}).get("dominant_hand")
        hand = hand_cell.value if hand_cell else None
        key = participant_key(sol_name, participant, visit, hand, [t.key for t, _ in wrists])
        if key in existing:
            continue
        apart = _apart_in_time(out, wrists)
        if apart is not None:
            problems.append(apart)
            continue
        _write_participant(ctx, out, ctx.solutions_by_name[sol_name], participant, visit,
                           hand, wrists, key, again=key in again)
    lost_people = lost_participant_results(ctx.state, out)
    write_summaries(ctx, out, without={r.solution for r in lost_people})
    ctx.report.missing_outputs = len(lost_wrists) + len(lost_people)
    return [*problems, *lost_output_issues(out, lost_wrists, lost_people)]


def _apart_in_time(out: Store, wrists: Sequence[Wrist]) -> IssueSpec | None:
    """Left and right recordings that share no moment are not one participant-visit's
    wrists (a file of another visit or participant): not combined, and said."""
    if len(wrists) != 2:
        return None
    spans = []
    for task, _f in wrists:
        qc = json.loads(out.read_bytes(f"{task.result_dir}/qc.json"))
        spans.append((str(qc.get("start_utc", "")), str(qc.get("end_utc", ""))))
    (start_a, end_a), (start_b, end_b) = spans
    if not all((start_a, end_a, start_b, end_b)) or (start_a <= end_b and start_b <= end_a):
        return None
    (_, left), (_, right) = wrists
    return IssueSpec(
        Tag.DATA_ISSUE.value,
        f"the {left.side} and {right.side} recordings of participant {left.participant}"
        + (f" visit {left.visit}" if left.visit else "")
        + f" do not overlap in time ({left.name}: {start_a[:10]}..{end_a[:10]}, "
        f"{right.name}: {start_b[:10]}..{end_b[:10]}); not combined",
        uri=left.uri, participant=left.participant,
        resolution="rename or exclude the file that belongs to another visit or participant")


def participant_key(solution: str, participant: str, visit: str, dominant_hand: str | None,
                    task_keys: Sequence[str]) -> str:
    """The key of the result combining ``task_keys`` (the wrists, by side). Without a
    visit it is the key results had before visits existed."""
    text = "|".join([aggregate.AGGREGATOR_VERSION, solution, participant,
                     *([f"visit={visit}"] if visit else []), f"dominant={dominant_hand}",
                     *task_keys])
    return hashlib.sha256(text.encode()).hexdigest()


Group = tuple[str, str, str]  # solution, participant, visit ("" when the names give none)


def _due_groups(ctx: RunContext, done: Sequence[Wrist]) -> dict[Group, list[Wrist]]:
    """Per (solution, participant, visit): the wrists to combine, by side, when due, of
    the ``done`` current tasks (with their files).

    Two tasks for one wrist are never combined silently (the issues stage reports them);
    a lone wrist is due once its grace period is over. A recording whose name gives no
    side (a lower-back sensor) is the participant-visit's result by itself; where the
    same solution also has sided files for the group, the sided ones are combined.

    A group is not due while one of its tasks is pending or held by a coordinator's
    claim (this one's or another's on the same study): its result would miss the wrist
    that task writes."""
    groups: dict[Group, dict[str, list[Wrist]]] = defaultdict(lambda: defaultdict(list))
    busy = ctx.state.tasks.busy_groups(ctx.state.runs.dead())
    for task, f in done:
        if task.solution in ctx.solutions_by_name:
            group = (task.solution, f.participant or "", f.visit or "")
            groups[group][f.side or ""].append((task, f))
    due: dict[Group, list[Wrist]] = {}
    for group, sides in groups.items():
        if group in busy:
            continue  # a wrist is still to run, or running (here or in another coordinator)
        if "" in sides and len(sides) > 1:
            del sides[""]
        if any(len(v) > 1 for v in sides.values()):
            continue
        chosen = [sides[side][0] for side in sorted(sides)]
        if len(chosen) == 1 and not _grace_over(chosen[0][0], ctx.study.single_wrist_grace_h):
            continue  # the other wrist may still arrive
        due[group] = chosen
    return due


def _grace_over(task: TaskRecord, grace_h: float) -> bool:
    if grace_h <= 0:
        return True
    return datetime.now(UTC) - parse_iso(task.finished_utc or "") >= timedelta(hours=grace_h)


def _write_participant(ctx: RunContext, out: Store, sol: Solution, participant: str,
                       visit: str, hand: str | None, wrists: Sequence[Wrist], key: str,
                       *, again: bool = False) -> None:
    started = utc_now()
    tables_by_side = {f.side: read_tables(out, t.result_dir or "") for t, f in wrists}
    if None in tables_by_side:  # no side (e.g. lower back): the recording's own tables
        tables, flags = tables_by_side[None], ["single_recording"]
    else:
        tables = aggregate.combine_wrists(tables_by_side.get("left"),
                                          tables_by_side.get("right"), hand)
        flags = [] if len(wrists) == 2 else [f"single_wrist:{wrists[0][1].side}"]
    folder = participant_dir(sol.name, participant, key, visit)
    prov = Provenance(
        kind="participant", study=ctx.study.study, study_fingerprint=ctx.study.fingerprint(),
        task_key=key, run_id=ctx.run_id, user=ctx.actor,
        input=[InputRef(uri=f.uri, sha256=f.sha256, size_bytes=f.size_bytes,
                        participant=f.participant, side=f.side, task_key=t.key)
               for t, f in wrists],
        task_inputs={"visit": visit} if visit else {},
        solution=solution_ref(sol), software=software(), started_utc=started,
        finished_utc=utc_now(), flags=flags,
    )
    _, prov_sha = write_result(out, folder, tables, {}, prov)
    if not ctx.state.results.add_participant(
            key=key, solution=sol.name, participant=participant, visit=visit,
            task_keys=[t.key for t, _ in wrists], result_dir=folder,
            provenance_sha256=prov_sha, flags=flags, run_id=ctx.run_id):
        return  # another coordinator wrote the same result meanwhile, and recorded it
    ctx.audit.record(ctx.actor, "result.written", folder,
                     after={"participant": participant, "provenance_sha256": prov_sha,
                            **({"visit": visit} if visit else {}),
                            **({"written_again": True} if again else {})})
    ctx.report.participants_aggregated += 1


def write_summaries(ctx: RunContext, out: Store, without: Collection[str] = ()) -> None:
    """One study summary per solution over the latest participant results (write-once:
    an unchanged set of results keeps its summary); none for the solutions ``without``
    (one of their participant results is gone from storage)."""
    latest = ctx.state.results.latest_participants()
    for sol_name, sol in sorted(ctx.solutions_by_name.items()):
        rows = [r for r in latest if r.solution == sol_name]
        if rows and sol_name not in without:
            _write_summary(ctx, out, sol, rows)


def _write_summary(ctx: RunContext, out: Store, sol: Solution,
                   rows: Sequence[ParticipantResultRow]) -> None:
    key = hashlib.sha256("|".join(["summary", aggregate.AGGREGATOR_VERSION,
                                   *aggregate.SUMMARY_VERSION, *(r.key for r in rows)])
                         .encode()).hexdigest()
    folder = summary_dir(sol.name, key)
    ctx.report.summary_dirs.append(folder)
    if out.exists(f"{folder}/provenance.json"):
        return
    started = utc_now()
    summary = aggregate.study_summary(
        {(r.participant, r.visit): read_tables(out, r.result_dir, aggregate.SUMMARY_INPUTS)
         for r in rows})
    prov = Provenance(
        kind="study-summary", study=ctx.study.study, study_fingerprint=ctx.study.fingerprint(),
        task_key=key, run_id=ctx.run_id, user=ctx.actor,
        input=[InputRef(uri=out.uri(r.result_dir), sha256=r.key, size_bytes=0,
                        participant=r.participant, task_key=r.key) for r in rows],
        solution=solution_ref(sol), software=software(), started_utc=started,
        finished_utc=utc_now(),
    )
    _, prov_sha = write_result(out, folder, {"summary": summary}, {}, prov, spreadsheet=True)
    if ctx.state.results.add_summary(key=key, solution=sol.name, result_dir=folder,
                                     provenance_sha256=prov_sha, run_id=ctx.run_id):
        ctx.audit.record(ctx.actor, "result.written", folder,
                         after={"provenance_sha256": prov_sha})

