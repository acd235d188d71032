"""``/metrics``: each served study's state in the Prometheus text format.

Gauges (files and tasks by state, queue length, open issues by tag, last successful
run), counters (task attempts by outcome and tag), and a histogram of task seconds.
Every value is read from the state database when scraped; nothing is kept in memory
between scrapes but the histogram, recomputed only when the state changed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from wearflow.clock import parse_iso
from wearflow.config import Study
from wearflow.services.dashboard import overview
from wearflow.state import State

BUCKETS_S = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_histograms: dict[str, tuple[int, list[int], float, int]] = {}
_lock = threading.Lock()


def _histogram(study: Study) -> tuple[list[int], float, int]:
    """Cumulative bucket counts, sum and count of task seconds (cached per state change)."""
    with State(study.state_url) as state:
        marker = state.dashboard.change_marker()
        with _lock:
            hit = _histograms.get(study.state_url)
        if hit is not None and hit[0] == marker:
            return hit[1], hit[2], hit[3]
        spans = state.dashboard.attempt_spans()
    seconds = [(parse_iso(b) - parse_iso(a)).total_seconds() for a, b in spans]
    buckets = [sum(1 for s in seconds if s <= edge) for edge in BUCKETS_S]
    value = (buckets, float(sum(seconds)), len(seconds))
    with _lock:
        _histograms[study.state_url] = (marker, *value)
    return value


class StudyCollector:
    """A prometheus_client collector over the studies' state databases."""

    def __init__(self, studies: Sequence[Study]) -> None:
        self._studies = list(studies)

    def collect(self) -> Iterator[Metric]:
        files = GaugeMetricFamily("wearflow_files", "Current sensor files by state",
                                  labels=["study", "state"])
        tasks = GaugeMetricFamily("wearflow_tasks", "Current tasks by state",
                                  labels=["study", "state"])
        queue = GaugeMetricFamily("wearflow_queue_length",
                                  "Tasks pending or waiting", labels=["study"])
        issues = GaugeMetricFamily("wearflow_issues_open", "Open issues by tag",
                                   labels=["study", "tag"])
        last_ok = GaugeMetricFamily("wearflow_last_successful_run_timestamp_seconds",
                                    "End of the newest run without failed tasks",
                                    labels=["study"])
        attempts = CounterMetricFamily("wearflow_task_attempts",
                                       "Task attempts finished, by outcome and tag",
                                       labels=["study", "outcome", "tag"])
        started = CounterMetricFamily("wearflow_tasks_started",
                                      "Task attempts started (finished + running)",
                                      labels=["study"])
        seconds = HistogramMetricFamily("wearflow_task_seconds",
                                        "Seconds from a task's start to its finish",
                                        labels=["study"])
        for study in self._studies:
            view = overview(study)
            name = study.study
            for state, n in sorted(view["files"]["by_state"].items()):
                files.add_metric([name, state], n)
            for state, n in sorted(view["tasks_by_state"].items()):
                tasks.add_metric([name, state], n)
            queue.add_metric([name], view["queue"])
            for tag, n in view["issues_by_tag"].items():
                issues.add_metric([name, tag], n)
            if view["last_successful_run_utc"]:
                last_ok.add_metric([name], parse_iso(view["last_successful_run_utc"])
                                   .timestamp())
            with State(study.state_url) as state:
                counts = state.dashboard.attempt_counts()
            for outcome, tag, n in counts:
                attempts.add_metric([name, outcome, tag], n)
            started.add_metric([name], sum(n for _, _, n in counts) + len(view["running"]))
            buckets, total, count = _histogram(study)
            seconds.add_metric([name], [(str(edge), float(c)) for edge, c in
                                        zip(BUCKETS_S, buckets, strict=True)]
                               + [("+Inf", float(count))], total)
        yield from (files, tasks, queue, issues, last_ok, attempts, started, seconds)


def exposition(studies: Sequence[Study]) -> bytes:
    """The text exposition of every study's metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StudyCollector(studies))
    return generate_latest(registry)
