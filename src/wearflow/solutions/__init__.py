"""Biomarker solutions: the protocol, the scikit-digital-health family, the registry."""

from __future__ import annotations

from wearflow.config import SolutionConfig, Study
from wearflow.errors import SolutionError
from wearflow.solutions.base import FileResult, Solution, solution_ref
from wearflow.solutions.skdh import SkdhSolution, builtin_pipeline_path

__all__ = ["FileResult", "SkdhSolution", "Solution", "builtin_pipeline_path", "load_solution",
           "load_study_solutions",
           "solution_ref"]

_CACHE: dict[SolutionConfig, Solution] = {}


def load_solution(config: SolutionConfig) -> Solution:
    """Build (once per process) the solution a study's configuration names.

    Raises
    ------
    SolutionError
        The pipeline file is missing, unreadable, or does not match its pinned sha256.
    """
    solution = _CACHE.get(config)
    if solution is None:
        solution = SkdhSolution.from_config(config)
        _CACHE[config] = solution
    return solution


def load_study_solutions(study: Study) -> tuple[Solution, ...]:
    """Every solution of ``study``; an error names the study file and the key.

    Raises
    ------
    SolutionError
        A solution cannot be loaded (subject: the study file; the message names
        ``solutions.<n>`` and the solution).
    """
    loaded = []
    for n, config in enumerate(study.solutions):
        try:
            loaded.append(load_solution(config))
        except SolutionError as exc:
            raise SolutionError(f"solutions.{n} (solution {config.name}): "
                                f"{exc.subject}: {exc.message}" if exc.subject else exc.message,
                                subject=study.source or exc.subject) from None
    return tuple(loaded)
