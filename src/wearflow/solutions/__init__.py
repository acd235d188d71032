"""Biomarker solutions: the protocol, the scikit-digital-health family, the registry."""

from __future__ import annotations

from collections.abc import Mapping

from wearflow.config import SolutionConfig, Study
from wearflow.errors import SolutionError
from wearflow.solutions.base import FileResult, Solution, solution_ref
from wearflow.solutions.skdh import SkdhSolution, builtin_pipeline_path
from wearflow.solutions.stream import STREAM_PIPELINE, StreamSolution

__all__ = ["STREAM_PIPELINE", "FileResult", "SkdhSolution", "Solution", "StreamSolution",
           "builtin_pipeline_path", "load_solution", "load_study_solutions", "solution_ref"]

_CACHE: dict[tuple[SolutionConfig, str | None], Solution] = {}


def load_solution(config: SolutionConfig, lock_text: str | None = None) -> Solution:
    """Build (once per process) the solution a study's configuration names.

    ``lock_text``: for a solution with its own environment, the lock to build it from
    (the study's stored lock, carried by its tasks); None: this machine's own lock.

    Raises
    ------
    SolutionError
        The pipeline file is missing, unreadable, or does not match its pinned sha256.
    """
    lock_text = lock_text if config.environment else None
    solution = _CACHE.get((config, lock_text))
    if solution is None:
        solution = (StreamSolution.from_config(config) if config.pipeline == STREAM_PIPELINE
                    else SkdhSolution.from_config(config, lock_text))
        _CACHE[(config, lock_text)] = solution
    return solution


def load_study_solutions(study: Study, locks: Mapping[str, str] | None = None
                         ) -> tuple[Solution, ...]:
    """Every solution of ``study``; an error names the study file and the key.

    ``locks``: solution name -> the lock its environment is built from (the study's
    stored locks); a solution with an environment and none here uses this machine's.

    Raises
    ------
    SolutionError
        A solution cannot be loaded (subject: the study file; the message names
        ``solutions.<n>`` and the solution).
    """
    loaded = []
    for n, config in enumerate(study.solutions):
        try:
            loaded.append(load_solution(config, (locks or {}).get(config.name)))
        except SolutionError as exc:
            raise SolutionError(f"solutions.{n} (solution {config.name}): "
                                f"{exc.subject}: {exc.message}" if exc.subject else exc.message,
                                subject=study.source or exc.subject) from None
    return tuple(loaded)
