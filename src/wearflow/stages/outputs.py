"""Outputs: whether the result folders the state records are still on storage.

A result folder deleted by hand (or lost with a disk) leaves its rows saying it is
there. Each run looks for the folders of the current done tasks and of the current
participant results with one listing per folder, not one request per file
(:meth:`~wearflow.storage.Store.present_folders`); each one that is gone is an issue,
and `wearflow retry STUDY --missing` has the next run write it again (the participant
results once their wrists are back).
"""

from __future__ import annotations

from collections.abc import Sequence

from wearflow.errors import Tag
from wearflow.issue import IssueSpec
from wearflow.state import State
from wearflow.state.tables import ParticipantResultRow
from wearflow.state.tasks import TaskWithFile
from wearflow.storage import Store

RESOLUTION = ("run `wearflow retry <study> --missing --reason ...`: the next run writes it "
              "again (audited)")


def lost_task_results(state: State, out: Store, done: Sequence[TaskWithFile] | None = None
                      ) -> list[TaskWithFile]:
    """The done current tasks (``done``, when the caller has read them already) whose
    result folder is not on storage, by URI."""
    done = [(t, f) for t, f in (state.tasks.done_for_current_files() if done is None
                                else done) if t.result_dir]
    present = out.present_folders({t.result_dir or "" for t, _ in done})
    return [(t, f) for t, f in done if t.result_dir not in present]


def lost_participant_results(state: State, out: Store) -> list[ParticipantResultRow]:
    """The current participant results (:meth:`~wearflow.state.results.ResultRepository.
    latest_participants`) whose folder is not on storage."""
    latest = state.results.latest_participants()
    present = out.present_folders({r.result_dir for r in latest})
    return [r for r in latest if r.result_dir not in present]


def lost_output_issues(out: Store, tasks: Sequence[TaskWithFile],
                       participants: Sequence[ParticipantResultRow]) -> list[IssueSpec]:
    """One issue per result folder gone."""
    issues = [IssueSpec(Tag.PIPELINE_ISSUE.value,
                        f"its result folder is gone from the output "
                        f"({out.uri(t.result_dir or '')}); participant {f.participant} is not "
                        "combined until it is written again",
                        uri=f.uri, participant=f.participant, resolution=RESOLUTION)
              for t, f in tasks]
    issues += [IssueSpec(Tag.PIPELINE_ISSUE.value,
                         f"the participant result folder is gone from the output "
                         f"({out.uri(r.result_dir)})", participant=r.participant,
                         resolution=RESOLUTION)
               for r in participants]
    return issues
