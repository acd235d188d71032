"""``/metrics``: each served study's state in the Prometheus text format.

Gauges (files and tasks by state, queue length, open issues by tag, last successful
run), counters (task attempts by outcome and tag), and a histogram of task seconds.
Every value is read from the state database when scraped; nothing is kept in memory
between scrapes but the histogram, to which each scrape adds the attempts recorded since
the last, and the dashboard's costly counts (see :mod:`wearflow.services.dashboard`).
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
# state URL -> (last attempt id counted, cumulative bucket counts, sum, count)
_histograms: dict[str, tuple[int, list[int], float, int]] = {}
_lock = threading.Lock()


def _histogram(study: Study) -> tuple[list[int], float, int]:
    """Cumulative bucket counts, sum and count of task seconds. Kept per study between
    scrapes: each scrape reads only the attempts recorded since the last (attempts are
    never changed), and all of them again if those counted are no longer there (a new
    database at the same URL)."""
    with _lock:
        last, buckets, total, count = _histograms.get(study.state_url, (0, [], 0.0, 0))
    with State(study.state_url) as state:
        before, spans = state.dashboard.attempt_spans(last)
        if before != count:
            before, spans = state.dashboard.attempt_spans(0)
            last, buckets, total, count = 0, [], 0.0, 0
    buckets = list(buckets) or [0] * len(BUCKETS_S)
    for attempt_id, started, finished in spans:
        seconds = (parse_iso(finished) - parse_iso(started)).total_seconds()
        for n, edge in enumerate(BUCKETS_S):
            if seconds <= edge:
                buckets[n] += 1
        total += seconds
        count += 1
        last = attempt_id
    with _lock:
        _histograms[study.state_url] = (last, buckets, total, count)
    return buckets, total, count


def warm_up_metrics(studies: Sequence[Study]) -> None:
    """Count every study's attempts into its histogram (at server start, off the
    requests: the first scrape then reads only what came since)."""
    for study in studies:
        try:
            _histogram(study)
        except Exception:  # the first scrape counts them again and reports the error
            continue


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
