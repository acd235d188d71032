"""The dashboard's figures without a browser: the counts it keeps per study and refreshes
in the background, the recent runs it sums, the metrics' histogram it adds to."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from study_helpers import write_csv
from wearflow import load_study, run_study
from wearflow.config import Study
from wearflow.executors import InlineExecutor
from wearflow.services import dashboard
from wearflow.services.runs import list_runs
from wearflow.services.status import _participant_visits, study_counts
from wearflow.state import State
from wearflow.web import metrics

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = """\
study: COUNTS
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Study]:
    root: Path = tmp_path_factory.mktemp("counts")
    (root / "raw").mkdir()
    (root / "study.yaml").write_text(STUDY)
    write_csv(root / "raw/P1_L.csv", seed=1, hours=0.2)
    write_csv(root / "raw/P1_R.csv", seed=2, hours=0.2)
    (root / "raw/P2_L.csv").write_text("timestamp,x,y,z\nnot,a,number,here\n")
    study = load_study(root)
    run_study(study, executor=InlineExecutor())
    yield study
    dashboard.forget(study)


def _visits_from_latest(state: State) -> dict[tuple[str, str], bool]:
    """The participant-visits as status computed them before: the latest result rows,
    each compared with the group's current done tasks."""
    expected: dict[tuple[str, str, str], set[str]] = {}
    for task, f in state.tasks.for_current_files():
        if f.participant:
            keys = expected.setdefault((task.solution, f.participant, f.visit or ""), set())
            if task.state == "done":
                keys.add(task.key)
    made = {(r.solution, r.participant, r.visit or "") for r in state.results.latest_participants()
            if set(json.loads(r.task_keys_json)) == expected.get(
                (r.solution, r.participant, r.visit or ""))}
    visits: dict[tuple[str, str], bool] = {}
    for group in expected:
        visits[(group[1], group[2])] = visits.get((group[1], group[2]), True) and group in made
    return visits


def test_counts_equal_the_walk_over_the_rows(study: Study) -> None:
    with State(study.state_url) as state:
        counts = study_counts(state)
        assert _participant_visits(state) == _visits_from_latest(state) == {
            ("P1", ""): True, ("P2", ""): False}
        # a newer result of P1 made from other tasks does not hide the current one
        state.results.add_participant(key="newer", solution="wrist", participant="P1",
                                      task_keys=["not-a-task"], result_dir="p/newer",
                                      provenance_sha256="q" * 64, flags=[], run_id="r")
        assert _participant_visits(state) == _visits_from_latest(state)
    assert counts["files"]["total"] == 3
    assert counts["files"]["by_state"]["done"] == 2 and counts["files"]["by_state"][
        "failed"] == 1
    assert counts["participants"] == {"total": 2, "processed": 1}
    assert counts["participant_visits"] == {"total": 2, "processed": 1}


def test_the_overview_serves_its_last_counts_and_refreshes_them_in_the_background(
        study: Study, monkeypatch: pytest.MonkeyPatch) -> None:
    dashboard.forget(study)
    first = dashboard.overview(study)  # the first request computes them
    assert first["files"]["by_state"]["failed"] == 1
    with State(study.state_url) as state:
        [failed] = [f for f in state.files.current() if f.name == "P2_L.csv"]
        state.files.set_excluded(failed.id, "broken device")
        state.audit.record("test", "file.excluded", failed.uri, reason="broken device")
    monkeypatch.setattr(dashboard, "FILES_REFRESH_S", 0.0)
    stale = dashboard.overview(study)  # the last answer at once; the next one computing
    assert stale["files"]["by_state"]["failed"] == 1
    entry = dashboard._counts[study.state_url]
    if entry.refreshing is not None:
        entry.refreshing.join()
    fresh = dashboard.overview(study)
    assert fresh["files"]["by_state"]["failed"] == 0
    assert fresh["files"]["by_state"]["excluded"] == 1
    with State(study.state_url) as state:
        state.files.set_excluded(failed.id, None)
        state.audit.record("test", "file.included", failed.uri, reason="it was fine")


def test_the_overview_sums_only_its_recent_runs(study: Study) -> None:
    run_study(study, executor=InlineExecutor())  # nothing to do: a second run
    every = list_runs(study)
    assert len(every) >= 2
    assert list_runs(study, limit=1) == every[:1]
    assert list_runs(study, limit=10) == every


def test_the_histogram_adds_the_new_attempts_to_those_counted(study: Study) -> None:
    metrics._histograms.clear()
    buckets, total, count = metrics._histogram(study)
    with State(study.state_url) as state:
        _, spans = state.dashboard.attempt_spans()
    assert count == len(spans) == 3 and buckets[-1] == count and total > 0
    again = metrics._histogram(study)  # nothing new: the same, from what it kept
    assert again == (buckets, total, count)
    metrics._histograms[study.state_url] = (10**6, buckets, total, count + 5)  # a new database
    assert metrics._histogram(study) == (buckets, total, count)
