"""What every stage of one run shares: the study, its state, who runs it, the report."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wearflow.config import Study
from wearflow.errors import EXIT_OK, EXIT_SOME_FAILED
from wearflow.logs import log_event
from wearflow.solutions import Solution
from wearflow.state import State
from wearflow.state.audit import AuditTrail

ProgressCallback = Callable[[str, int, int], None]  # (phase, completed, total)


@dataclass
class RunReport:
    """What one run did."""

    run_id: str
    files_total: int = 0
    executed: int = 0
    done: int = 0
    failed: int = 0  # files failed, including those held before processing
    # files held before any task: name does not parse, duplicate bytes, no solution applies
    unparsable: int = 0
    participants_aggregated: int = 0
    # result folders the state records that are gone from storage (deleted by hand)
    missing_outputs: int = 0
    summary_dirs: list[str] = field(default_factory=list)
    output: str = ""
    # seconds the workers spent per stage, summed over this run's finished tasks: wall
    # time, and CPU time of the threads that ran them
    task_stage_s: dict[str, float] = field(default_factory=dict)
    task_stage_cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 every current file is done; 1 some failed or were held (the rest completed),
        a result folder is gone from storage, or the input locations hold no sensor file
        at all."""
        return EXIT_SOME_FAILED if (self.failed or self.unparsable or self.missing_outputs
                                    or not self.files_total) else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready values (``wearflow run --json``)."""
        return {"run_id": self.run_id, "files_total": self.files_total,
                "executed": self.executed, "done": self.done, "failed": self.failed,
                "held": self.unparsable, "participants_aggregated":
                self.participants_aggregated, "summary_dirs": list(self.summary_dirs),
                "missing_outputs": self.missing_outputs,
                "output": self.output, "exit_code": self.exit_code,
                "task_stage_s": dict(self.task_stage_s),
                "task_stage_cpu_s": dict(self.task_stage_cpu_s)}


@dataclass(frozen=True)
class RunContext:
    """One run of one study: what its stages read and where they record."""

    study: Study
    state: State
    run_id: str
    actor: str  # who runs it, for the audit trail
    solutions: tuple[Solution, ...]
    report: RunReport
    progress: ProgressCallback | None = None
    stop: threading.Event | None = None

    @property
    def audit(self) -> AuditTrail:
        return self.state.audit

    @property
    def solutions_by_name(self) -> Mapping[str, Solution]:
        return {s.name: s for s in self.solutions}

    def stage(self, name: str, total: int = 0) -> None:
        """Tell the progress callback that stage ``name`` starts (``total`` items)."""
        if self.progress:
            self.progress(name, 0, total)

    def log(self, tag: str, message: str, *, level: int = logging.INFO,
            **fields: object) -> None:
        """One tagged log line about this study."""
        log_event(tag, message, level=level, study=self.study.study, **fields)
