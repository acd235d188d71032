"""Reference load: 250 left/right pairs dropped at once into a watched folder.

Prints the time from a file landing to its task starting (median, maximum),
the total wall time, and checks that all 500 files were processed, 250
participants aggregated, none twice (audit trail), none lost.

    python -m benchmarks.load [--pairs 250] [--workers 2] [--minutes 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from wearflow import load_study
from wearflow.demo.cwa_writer import write_cwa
from wearflow.demo.synthetic import generate_recording
from wearflow.executors import LocalExecutor
from wearflow.services.status import study_status
from wearflow.state import State
from wearflow.state.audit import AuditTrail
from wearflow.watch import watch_study

STUDY = """\
study: LOAD
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.cwa"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=250)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=10.0, help="recording length")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wearflow-load-") as tmp:
        root = Path(tmp)
        (root / "raw").mkdir()
        (root / "study.yaml").write_text(STUDY)
        staging = root / "staging"
        staging.mkdir()
        for k in range(args.pairs):
            for side in ("left", "right"):
                rec, _ = generate_recording(seed=k, days=args.minutes / 1440,
                                            sampling_rate_hz=25.0, side=side)
                assert rec.temperature_c is not None
                write_cwa(staging / f"P{k:04d}_{side[0].upper()}.cwa", rec.time_s,
                          rec.accel_g, rec.temperature_c, rec.sampling_rate_hz, serial=k)
        study = load_study(root)
        stop = threading.Event()
        landed: dict[str, float] = {}

        def on_cycle(_report: object) -> None:
            info = study_status(study)
            if (info["files"]["by_state"]["done"] + info["files"]["by_state"]["failed"]
                    >= 2 * args.pairs and info["participants"]["processed"] >= args.pairs):
                stop.set()

        watcher = threading.Thread(target=watch_study, kwargs={
            "study": study, "executor": LocalExecutor(args.workers, persistent=True),
            "stop": stop, "poll_s": 1.0, "settle_s": 1.0, "on_cycle": on_cycle,
            "install_signal_handlers": False})
        watcher.start()
        time.sleep(3)
        t0 = time.time()
        for f in sorted(staging.iterdir()):  # "upload": a rename into the watched folder
            f.rename(root / "raw" / f.name)
            landed[f"file://{root / 'raw' / f.name}"] = time.time()
        watcher.join(timeout=3 * 3600)
        wall = time.time() - t0
        report(study, root, landed, wall, args.pairs)


def report(study: object, root: Path, landed: dict[str, float], wall: float,
           pairs: int) -> None:
    from wearflow.config import Study

    assert isinstance(study, Study)
    info = study_status(study)
    state = State(study.state_url)
    try:
        entries = AuditTrail(state.engine).entries()
        uri_of = {t.key: f.uri for t, f in state.tasks.for_current_files()}
    finally:
        state.close()
    starts = [(e.object, e.entry_utc) for e in entries if e.action == "task.started"]
    keys = [k for k, _ in starts]
    latencies = []
    for key, stamp in starts:
        started = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)
        latencies.append(started.timestamp() - landed[uri_of[key]])
    print(f"load_files_done: {info['files']['by_state']['done']} of {2 * pairs} "
          f"(failed {info['files']['by_state']['failed']})")
    print(f"load_participants_aggregated: {info['participants']['processed']} of {pairs}")
    print(f"load_tasks_started_twice: {len(keys) - len(set(keys))}")
    print(f"load_files_lost: {2 * pairs - info['files']['total']}")
    print(f"load_landing_to_start_s: median {statistics.median(latencies):.1f}, "
          f"max {max(latencies):.1f}")
    print(f"load_total_wall_s: {wall:.1f} ({2 * pairs / wall:.2f} files/s)")


if __name__ == "__main__":
    main()
