"""The dashboard under load: every page of ``wearflow serve`` over a large state database.

The state database is generated once and cached under ``.bench-cache/`` (git-ignored;
delete the folder to build it again): 100,000 current files of 1,000 participants
(quick: 5,000 of 50), 100 recordings each, ``P0001_L_d001.cwa`` ... ``P1000_R_d050.cwa``
(participant, side, visit; 50 visits of two wrists), as one ``wearflow run`` a visit
would have left it. Nothing is read or processed; the state is written through the
state's own code where that is fast enough and in bulk where the real path is one
transaction per task:

* the catalog and sync of a generated listing (``catalog.scan`` with an injected
  inspector, as in ``benchmarks/planning.py``; ``state.files.sync``), including held
  files (names that do not parse, copies of another file's bytes), a few excluded by
  hand and a few wrists recorded twice in one visit (one task combining both:
  ``parts_json``);
* the real plan (``plan.make_plan`` with ``builtin:wrist``, ``state.tasks.record_plan``);
* 50 runs, one a visit (the last one still running), each task's outcome (done, failed
  with a DATA_ISSUE or ALGORITHM_ISSUE, waiting for metadata, running, pending) and
  its attempts (a transient failure retried for a few percent): bulk UPDATE and INSERT
  of what ``state.tasks.finish`` and ``state.attempts.record`` write;
* the issues queue (``stages.issues.derive_issues`` + ``state.issues.sync``; earlier
  issues closed), one participant result per participant-visit whose wrists are
  settled (bulk INSERT of what ``state.results.add_participant`` writes), a study
  summary per run;
* the audit trail ``run_study`` appends (file cataloged, task started, finished,
  failed, result written; ``AuditTrail.record_many``), and two users
  (``services.users.add_user``).

Then the real application (``wearflow.web.app.create_app``) is served by uvicorn in a
thread on 127.0.0.1 and asked over HTTP (httpx, in this process), with a viewer's bearer
token, for each page and API answer: wall time of the first call (cold: the dashboard's
kept figures and the metrics' histogram dropped first, so the request computes them, as
a request does that reaches a server before its start-up computation is done) and the
median of 5 more (warm). Two more figures: the very first request to the server just
started, and the overview asked for right after a change of the state (one audit entry
appended: the only write the benchmark makes to its cached state), when its figures are
recomputed in the background. The project's target: every page under 1 s at 100,000
files.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fsspec import AbstractFileSystem

from benchmarks._common import REPO_ROOT, Figure, fmt_s, load_average, median

FULL = (100_000, 1_000)  # files, participants
QUICK = (5_000, 50)
VISITS = 50  # of two wrists each: 100 recordings a participant
TARGET_S = 1.0
WARM_CALLS = 5
BUILD_VERSION = 1  # bump when the generated state changes: the cache is rebuilt
CACHE = REPO_ROOT / ".bench-cache"
SEED = 20_260_101
HOST = "bench-node"  # the runs' coordinator host (not this one: the last run is "running")

STUDY_YAML = """\
study: LOAD
input: raw/
output: results/
time_zone: UTC
files:
  sensor: ["{participant}_{side}_{visit}_{device}.cwa", "{participant}_{side}_{visit}.cwa"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


class _Listing(AbstractFileSystem):  # type: ignore[misc]
    """An fsspec filesystem holding one generated listing; ``find`` answers from memory."""

    cachable = False

    def __init__(self, found: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        self._found = found

    def exists(self, _path: str, **_kwargs: Any) -> bool:
        return True

    def isdir(self, _path: str) -> bool:
        return True

    def invalidate_cache(self, _path: str | None = None) -> None:
        return None

    def find(self, _path: str, *_args: Any, **_kwargs: Any) -> dict[str, dict[str, Any]]:
        return dict(self._found)


@dataclass(frozen=True)
class Site:
    """A built study: where it is and what the benchmark asks for."""

    root: Path
    facts: dict[str, Any]  # what was built, how long it took, what to ask for


def run(quick: bool) -> Iterator[Figure]:
    n_files, n_participants = QUICK if quick else FULL
    site, cached = _site(n_files, n_participants)
    facts = site.facts
    yield Figure(f"dashboard_state_{n_files}_files", (
        f"{'cached' if cached else 'built'} ({fmt_s(facts['build_s'])} to build: "
        + ", ".join(f"{k} {fmt_s(v)}" for k, v in facts["build_stages_s"].items())
        + f"): {facts['files']:,} current files of {facts['participants']:,} participants, "
        f"files by state {facts['file_states']}, {facts['open_issues']:,} open and "
        f"{facts['closed_issues']:,} closed issues, {facts['participant_results']:,} "
        f"participant results, {facts['runs']} runs, {facts['attempts']:,} attempts, "
        f"{facts['audit_entries']:,} audit entries; SQLite {facts['db_mb']:.0f} MB "
        f"under {site.root.relative_to(REPO_ROOT)}"))
    yield from _measure(site)


# ---------------------------------------------------------------------------- building

def _site(n_files: int, n_participants: int) -> tuple[Site, bool]:
    """The cached site of this size, built first if missing (or of an older builder)."""
    root = CACHE / f"dashboard-{n_files}-v{BUILD_VERSION}"
    facts_path = root / "facts.json"
    if facts_path.exists():
        return Site(root, json.loads(facts_path.read_text())), True
    building = CACHE / f"{root.name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        facts = _build(building, n_files, n_participants)
        (building / "facts.json").write_text(json.dumps(facts, indent=1))
        shutil.rmtree(root, ignore_errors=True)
        building.rename(root)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    gc.collect()
    return Site(root, facts), False


def _names(n_files: int, n_participants: int) -> list[tuple[str, int, int, str]]:
    """(file name, participant index, visit 1.., side) of every generated file, with
    the study's oddities: a wrist recorded twice in one visit (its second part named
    ``..._d049_b.cwa``, and no recording of that wrist at visit 50), a name that does
    not parse, and (see :func:`_sha256`) copies of another file's bytes."""
    per = n_files // n_participants
    visits = per // 2
    out = []
    for k in range(n_participants):
        pid = f"P{k + 1:04d}"
        for v in range(1, visits + 1):
            for side in ("L", "R"):
                name = f"{pid}_{side}_d{v:03d}.cwa"
                if k % 20 == 19 and side == "L" and v == visits:
                    name = f"{pid}_L_d{v - 1:03d}_b.cwa"  # a battery swap in visit 49
                elif k % 50 == 7 and side == "R" and v == 25:
                    name = f"{pid}-R-d025.cwa"  # a name the patterns do not parse
                out.append((name, k, v, side))
    return out


def _sha256(name: str, k: int, v: int, side: str) -> str:
    if k % 100 == 3 and side == "L" and v == 30:  # the bytes of the visit before, copied
        name = f"P{k + 1:04d}_L_d029.cwa"
    return hashlib.sha256(name.encode()).hexdigest()


def _build(root: Path, n_files: int, n_participants: int) -> dict[str, Any]:
    import numpy as np
    from sqlalchemy import bindparam, func, select, update

    from wearflow import catalog
    from wearflow.config import load_study
    from wearflow.identity import Role
    from wearflow.plan import make_plan
    from wearflow.services.users import add_user
    from wearflow.solutions import load_solution
    from wearflow.stages.issues import derive_issues
    from wearflow.state import State
    from wearflow.state.audit import AuditEvent
    from wearflow.state.bulk import insert_many
    from wearflow.state.tables import (
        AttemptRow,
        IssueRow,
        ParticipantResultRow,
        RunRow,
        SummaryRow,
        TaskRow,
        audit_table,
    )
    from wearflow.storage import Store

    began = time.perf_counter()
    stages: dict[str, float] = {}

    def lap(stage: str) -> None:
        stages[stage] = time.perf_counter() - began - sum(stages.values())

    rng = np.random.default_rng(SEED)
    (root / "raw").mkdir()
    (root / "study.yaml").write_text(STUDY_YAML)
    study = load_study(root)
    [store] = [Store(loc, study.storage_options) for loc in study.input]
    names = _names(n_files, n_participants)
    visits = max(v for _, _, v, _ in names)
    now = datetime.now(UTC).replace(microsecond=0)
    # run v processes visit v, a week apart; the last one started 3 hours ago and runs
    run_start = [now - timedelta(weeks=visits - v, hours=3) for v in range(1, visits + 1)]
    run_ids = [f"{t:%Y%m%dT%H%M%S}-{hashlib.sha256(str(v).encode()).hexdigest()[:8]}"
               for v, t in enumerate(run_start, 1)]
    store.fs = _Listing({f"{store._root}/{name}": {
        "type": "file", "size": 300_000_000 + i, "mtime": run_start[v - 1].timestamp() - 3600}
        for i, (name, _k, v, _side) in enumerate(names)})
    by_name = {name: (k, v, side) for name, k, v, side in names}

    def inspector(_store: Store, path: str) -> tuple[str, str | None]:
        k, v, side = by_name[path]
        return _sha256(path, k, v, side), f"{60_000 + k * 2 + (side == 'R')}"

    with State(study.state_url) as state:
        files = catalog.scan([store], study.files, inspector=inspector)
        state.files.sync(files, [store.root_uri])
        current = state.files.current()
        excluded = [f for f in current if f.participant and f.visit == "d010"
                    and f.side == "right" and int(f.participant[1:]) % 100 == 6]
        for f in excluded:
            state.files.set_excluded(f.id, "device failure reported by the site")
        current = state.files.current()
        lap("catalog")
        solutions = [load_solution(c) for c in study.solutions]
        plan = make_plan(study, current, solutions, {}, {}, {}, set())
        state.tasks.record_plan(plan.records)
        lap("plan")

        # ------------------------------------------------ outcomes, attempts, runs
        visit_of = {f.id: int(f.visit[1:]) for f in current if f.visit}
        file_of = {f.id: f for f in current}
        tasks = sorted(plan.records, key=lambda t: file_of[t.file_id].uri)
        draws = rng.random((len(tasks), 4))
        updates: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        audit: list[list[AuditEvent]] = [[] for _ in range(visits)]
        waiting: list[Any] = []
        worker_free = [[run_start[v] + timedelta(minutes=2)] * 4 for v in range(visits)]
        actor = "bench (wearflow run)"
        from wearflow.issue import IssueSpec
        for (task, draw) in zip(tasks, draws, strict=True):
            f = file_of[task.file_id]
            v = visit_of[task.file_id]
            run = v - 1
            k = int((f.participant or "P0")[1:]) - 1
            if k % 25 == 0 and visits - 9 <= v <= visits - 5:
                state_ = "waiting"
            elif v == visits:
                state_ = "done" if draw[0] < 0.4 else "running" if draw[0] < 0.45 else "pending"
            else:
                state_ = "failed" if draw[0] < 0.016 else "done"
            row: dict[str, Any] = {"b_key": task.key, "b_state": state_, "b_tag": None,
                                   "b_message": None, "b_attempts": 0, "b_run_id": None,
                                   "b_result_dir": None, "b_provenance": None,
                                   "b_started": None, "b_finished": None, "b_lease": None}
            if state_ == "waiting":
                message = (f"waiting for height_m of participant {f.participant} "
                           "(solution wrist)")
                row.update(b_tag="WAITING", b_message=message)
                waiting.append(IssueSpec("WAITING", message, uri=f.uri,
                                         participant=f.participant,
                                         resolution=f"upload metadata with height_m for "
                                                    f"{f.participant}"))
                updates.append(row)
                continue
            if state_ == "pending":
                updates.append(row)
                continue
            lanes = worker_free[run]
            lane = min(range(4), key=lambda w: lanes[w])
            worker = f"{HOST}-{lane}:{41_000 + v * 10 + lane}"
            n_tries = 2 if draw[1] < 0.03 and state_ != "running" else 1
            for attempt in range(1, n_tries + 1):
                start = lanes[lane]
                wall_s = 60.0 + 240.0 * float(draw[2])
                end = start + timedelta(seconds=wall_s)
                lanes[lane] = end + timedelta(seconds=1)
                audit[run].append(AuditEvent(actor, "task.started", task.key,
                                             after={"uri": f.uri, "solution": "wrist"}))
                if state_ == "running":
                    row.update(b_attempts=attempt, b_run_id=run_ids[run],
                               b_started=_iso(start), b_lease=_iso(now + timedelta(hours=1)))
                    break
                last = attempt == n_tries
                final = state_ if last else "failed"
                tag: str | None = None
                why: str | None = None
                if final == "failed":
                    tag, why = (("PIPELINE_ISSUE", "storage: connection reset by peer")
                                if not last else
                                ("DATA_ISSUE", f"the file's header is corrupt (sector "
                                 f"{int(draw[3] * 90_000)})") if draw[3] < 0.6 else
                                ("ALGORITHM_ISSUE", "gait: no walking bouts found in "
                                 f"{1 + int(draw[3] * 6)} valid days"))
                stage_wall = {"fetch": 0.05 * wall_s, "decode": 0.25 * wall_s,
                              "verify": 0.01 * wall_s, "solution": 0.6 * wall_s,
                              "qc": 0.04 * wall_s, "write": 0.05 * wall_s}
                attempts.append({
                    "run_id": run_ids[run], "task_key": task.key, "attempt": attempt,
                    "uri": f.uri, "solution": "wrist", "participant": f.participant or "",
                    "visit": f.visit or "", "worker": worker, "started_utc": _iso(start),
                    "finished_utc": _iso(end), "state": final, "transient": not last,
                    "tag": tag, "message": why, "cpu_s": round(0.93 * wall_s, 2),
                    "peak_rss_bytes": int(1.5e9 + 1.5e9 * float(draw[3])),
                    "stage_json": json.dumps({"wall": {s: round(x, 3) for s, x in
                                                       stage_wall.items()},
                                              "cpu": {s: round(0.93 * x, 3) for s, x in
                                                      stage_wall.items()}})})
                if not last:
                    audit[run].append(AuditEvent(actor, "task.failed", task.key, after={
                        "tag": tag, "message": why, "attempt": attempt,
                        "retry_after_utc": _iso(end + timedelta(seconds=30))}))
                    continue
                row.update(b_attempts=attempt, b_run_id=run_ids[run], b_started=_iso(start),
                           b_finished=_iso(end), b_tag=tag, b_message=why)
                if final == "done":
                    folder = (f"single-wrist-processed/wrist/{f.participant}/{f.name}/"
                              f"{task.key}")
                    provenance = hashlib.sha256(folder.encode()).hexdigest()
                    row.update(b_result_dir=folder, b_provenance=provenance)
                    audit[run] += [
                        AuditEvent(actor, "task.finished", task.key, after={"state": "done"}),
                        AuditEvent(actor, "result.written", folder, after={
                            "task": task.key, "provenance_sha256": provenance})]
                else:
                    audit[run].append(AuditEvent(actor, "task.failed", task.key,
                                                 after={"tag": tag, "message": why}))
            updates.append(row)
        with state.engine.begin() as conn:
            conn.execute(update(TaskRow).where(TaskRow.key == bindparam("b_key")).values(
                state=bindparam("b_state"), tag=bindparam("b_tag"),
                message=bindparam("b_message"), attempts=bindparam("b_attempts"),
                run_id=bindparam("b_run_id"), result_dir=bindparam("b_result_dir"),
                provenance_sha256=bindparam("b_provenance"),
                started_utc=bindparam("b_started"), finished_utc=bindparam("b_finished"),
                lease_until_utc=bindparam("b_lease")), updates)
            insert_many(conn, AttemptRow, attempts)
        lap("outcomes")

        # ------------------------------------------------ results, runs, issues
        states = {r["b_key"]: r["b_state"] for r in updates}
        groups: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        for t in tasks:
            f = file_of[t.file_id]
            if f.participant and f.visit:
                groups.setdefault((f.participant, f.visit), []).append(
                    (t.key, states[t.key], f.side or ""))
        results: list[dict[str, Any]] = []
        for (participant, visit), members in sorted(groups.items()):
            done = sorted(key for key, s, _side in members if s == "done")
            if not done or any(s not in ("done", "failed") for _, s, _side in members):
                continue
            run = int(visit[1:]) - 1
            key = hashlib.sha256("\x1f".join(["wrist", participant, visit, *done])
                                 .encode()).hexdigest()
            folder = f"processed/wrist/{participant}/{visit}/{key}"
            created = _iso(max(worker_free[run]) + timedelta(minutes=5))
            sides = sorted(side for _key, s, side in members if s == "done")
            results.append({"key": key, "solution": "wrist", "participant": participant,
                            "task_keys_json": json.dumps(done), "result_dir": folder,
                            "provenance_sha256": hashlib.sha256(key.encode()).hexdigest(),
                            "flags_json": json.dumps([f"single_wrist:{sides[0]}"]
                                                     if len(sides) == 1 else []),
                            "run_id": run_ids[run], "created_utc": created, "visit": visit})
            audit[run].append(AuditEvent(actor, "result.written", folder, after={
                "provenance_sha256": results[-1]["provenance_sha256"]}))
        runs, summaries = [], []
        for v in range(visits):
            last = v == visits - 1
            finished = max(worker_free[v]) + timedelta(minutes=10)
            n_done = sum(1 for r in updates if r["b_run_id"] == run_ids[v]
                         and r["b_state"] == "done")
            n_failed = sum(1 for r in updates if r["b_run_id"] == run_ids[v]
                           and r["b_state"] == "failed")
            runs.append({"id": run_ids[v], "study": study.study,
                         "study_fingerprint": study.fingerprint(),
                         "config_json": json.dumps(study.public_dump(), sort_keys=True),
                         "host": HOST, "pid": 4242 + v, "user": actor,
                         "started_utc": _iso(run_start[v]),
                         "finished_utc": None if last else _iso(finished),
                         "counts_json": "{}" if last else json.dumps(
                             {"done": n_done, "executed": n_done + n_failed,
                              "failed": n_failed}, sort_keys=True)})
            if not last:
                key = hashlib.sha256(f"summary {v}".encode()).hexdigest()
                summaries.append({"key": key, "solution": "wrist",
                                  "result_dir": f"processed/wrist/study-summary/{key}",
                                  "provenance_sha256": key, "run_id": run_ids[v],
                                  "created_utc": _iso(finished)})
        with state.engine.begin() as conn:
            insert_many(conn, ParticipantResultRow, results)
            insert_many(conn, RunRow, runs)
            insert_many(conn, SummaryRow, summaries)
        lap("results")
        # issues: a queue that once held more (waiting for metadata that came), then the
        # problems of the last run
        earlier = [IssueSpec("WAITING", f"waiting for height_m of participant "
                             f"P{k + 1:04d} (solution wrist)", participant=f"P{k + 1:04d}",
                             resolution="upload metadata with height_m")
                   for k in range(n_participants)]
        final = derive_issues([*plan.held, *waiting], state.tasks.for_current_files(), [],
                              set(), False)
        state.issues.sync(study.study, [*earlier, *final])
        state.issues.sync(study.study, final)
        with state.engine.begin() as conn:  # first seen in the run of their visit
            ids = [i for i, in conn.execute(select(IssueRow.id).order_by(IssueRow.id))]
            conn.execute(update(IssueRow).where(IssueRow.id == bindparam("b_id")).values(
                first_seen_utc=bindparam("b_first")), [
                {"b_id": i, "b_first": _iso(run_start[(n * 7) % visits])}
                for n, i in enumerate(ids)])
        lap("issues")

        # ------------------------------------------------ audit trail, users
        cataloged = [AuditEvent(actor, "file.cataloged", f.uri, before=None, after={
            "sha256": f.sha256, "size_bytes": f.size_bytes, "kind": f.kind}) for f in files]
        by_visit: dict[int, list[AuditEvent]] = {}
        for event, f in zip(cataloged, files, strict=True):
            v = int(f.visit[1:]) if f.visit else 1
            by_visit.setdefault(v - 1, []).append(event)
        for v in range(visits):
            state.audit.record_many([
                AuditEvent(actor, "study.loaded", study.source, after={"run": run_ids[v]}),
                *by_visit.get(v, []), *audit[v]])
        for f in excluded:
            state.audit.record("bench (wearflow exclude)", "file.excluded", f.uri,
                               reason="device failure reported by the site")
        lap("audit")
        tokens = {"viewer": add_user(study, "vera", Role.VIEWER),
                  "operator": add_user(study, "otto", Role.OPERATOR)}

        with state.engine.connect() as conn:
            n_attempts = conn.execute(select(func.count()).select_from(AttemptRow)).scalar()
            n_audit = conn.execute(select(func.count()).select_from(audit_table)).scalar()
            issue_counts = dict(conn.execute(select(IssueRow.open, func.count())
                                             .group_by(IssueRow.open)).all())
        file_states = dict(sorted(state.tasks.file_state_counts().items()))
        failed = sorted((file_of[t.file_id].uri, t.file_id) for t in tasks
                        if states[t.key] == "failed")
        the_file = failed[len(failed) // 2][1]
    lap("users")
    db = Path(study.state_url.removeprefix("sqlite:///"))
    biggest_run = max(range(visits - 1), key=lambda v: sum(
        1 for a in attempts if a["run_id"] == run_ids[v]))
    return {
        "build_s": time.perf_counter() - began, "build_stages_s": stages,
        "files": len(current), "participants": n_participants,
        "file_states": file_states, "tasks": len(tasks),
        "open_issues": int(issue_counts.get(True, 0)),
        "closed_issues": int(issue_counts.get(False, 0)),
        "participant_results": len(results), "runs": len(runs), "attempts": int(n_attempts or 0),
        "audit_entries": int(n_audit or 0), "db_mb": db.stat().st_size / 1e6,
        "tokens": tokens, "file_id": the_file,
        "participant": file_of[the_file].participant, "run_id": run_ids[biggest_run],
        "tag": "DATA_ISSUE",
    }


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------------------- measuring

@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    what: str


def _measure(site: Site) -> Iterator[Figure]:
    import httpx
    import uvicorn

    from wearflow.config import load_study
    from wearflow.web.app import create_app, study_id

    study = load_study(site.root)
    facts = site.facts
    sid = study_id(study)
    app = create_app([study], session_secret="bench")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="bench-uvicorn", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=600.0, headers={
                "Authorization": f"Bearer {facts['tokens']['viewer']}"}) as client:
            for _ in range(200):
                if server.started:
                    break
                time.sleep(0.05)
            endpoints = [
                Endpoint("overview_page", f"/s/{sid}/", "overview page (HTML)"),
                Endpoint("api_overview", f"/api/s/{sid}/overview", "overview JSON"),
                Endpoint("issues_page", f"/s/{sid}/issues", "issues page, open"),
                Endpoint("issues_page_by_tag", f"/s/{sid}/issues?tag={facts['tag']}",
                         f"issues page, tag {facts['tag']}"),
                Endpoint("issues_page_by_participant",
                         f"/s/{sid}/issues?participant={facts['participant']}&state=all",
                         f"issues page, participant {facts['participant']}, all states"),
                Endpoint("file_page", f"/s/{sid}/files/{facts['file_id']}",
                         "file page of a failed file"),
                Endpoint("participant_page", f"/s/{sid}/participants/{facts['participant']}",
                         "participant page"),
                Endpoint("run_page", f"/s/{sid}/runs/{facts['run_id']}",
                         "run page of the run with the most attempts"),
                Endpoint("metrics", "/metrics", "Prometheus metrics"),
            ]
            slowest: tuple[float, str] = (0.0, "")
            first, _ = _call(client, endpoints[0].path)
            yield Figure("dashboard_first_request", (
                f"{fmt_s(first)}: the overview page, first request to the server just "
                f"started (its figures computed, or awaited, in that request); load "
                f"average {load_average()}"))
            for endpoint in endpoints:
                _forget_caches(study)
                cold, size = _call(client, endpoint.path)
                warm = [_call(client, endpoint.path)[0] for _ in range(WARM_CALLS)]
                worst = max(cold, *warm)
                slowest = max(slowest, (worst, endpoint.name))
                verdict = "within" if worst < TARGET_S else "OVER"
                yield Figure(f"dashboard_{endpoint.name}", (
                    f"cold {fmt_s(cold)}, warm {fmt_s(median(warm))} (median of {WARM_CALLS}, "
                    f"{fmt_s(min(warm))}-{fmt_s(max(warm))}); {size / 1000:.0f} kB; "
                    f"{endpoint.what}; {verdict} the {TARGET_S:g} s target; load average "
                    f"{load_average()}"))
            yield _after_change(client, study, endpoints[1].path)
            yield Figure("dashboard_slowest", (
                f"{slowest[1]} {fmt_s(slowest[0])} (cold or warm) over {facts['files']:,} "
                f"files; {'every page within' if slowest[0] < TARGET_S else 'OVER'} the "
                f"{TARGET_S:g} s target"))
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _after_change(client: Any, study: Any, path: str) -> Figure:
    """The overview JSON right after the state changed: one audit entry appended (the
    only change the benchmark makes to its cached state), then, once the answer is
    ``FILES_REFRESH_S`` old, the first request (served the previous answer while the next
    is computed in the background) and the time until the next answer is served."""
    from wearflow.services import dashboard
    from wearflow.state import State

    with State(study.state_url) as state:
        state.audit.record("benchmarks.dashboard", "bench.touched", "the state",
                           reason="the dashboard benchmark measures a change")
        marker = state.dashboard.change_marker()
    time.sleep(getattr(dashboard, "FILES_REFRESH_S", 10.0) + 0.5)
    served, _ = _call(client, path)
    began = time.perf_counter()
    polls = []
    while True:
        wall, _ = _call(client, path)
        polls.append(wall)
        entry = getattr(dashboard, "_counts", {}).get(study.state_url)
        if entry is None or entry.marker >= marker or time.perf_counter() - began > 120:
            break
        time.sleep(0.05)
    fresh = time.perf_counter() - began + served
    return Figure("dashboard_api_overview_after_change", (
        f"first request {fmt_s(served)} (the previous answer, the next one computed in "
        f"the background), the next answer served {fmt_s(fresh)} after the change was "
        f"first asked for ({len(polls)} requests meanwhile, slowest {fmt_s(max(polls))}); "
        f"load average {load_average()}"))


def _call(client: Any, path: str) -> tuple[float, int]:
    began = time.perf_counter()
    response = client.get(path)
    wall = time.perf_counter() - began
    if response.status_code != 200:
        raise RuntimeError(f"GET {path}: HTTP {response.status_code} {response.text[:200]}")
    return wall, len(response.content)


def _forget_caches(study: Any) -> None:
    """Empty the dashboard's per-study figures and the metrics' histogram, as a server
    has them at start: the next request computes them (or waits for them)."""
    from wearflow.services import dashboard
    from wearflow.web import metrics

    forget = getattr(dashboard, "forget", None)
    if forget is not None:
        forget(study)
    for module, name in ((dashboard, "_cache"), (metrics, "_histograms")):
        cache = getattr(module, name, None)
        if cache is not None:
            cache.clear()
