"""Biomarker solutions: the protocol, the scikit-digital-health family, the registry."""

from __future__ import annotations

from wearflow.config import SolutionConfig
from wearflow.solutions.base import FileResult, Solution, solution_ref
from wearflow.solutions.skdh import SkdhSolution, builtin_pipeline_path

__all__ = ["FileResult", "SkdhSolution", "Solution", "builtin_pipeline_path", "load_solution",
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
