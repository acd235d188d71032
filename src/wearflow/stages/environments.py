"""Pin the solution environments' locks in the study's state: the lock each environment
is first resolved to (every package with its hashes) is stored once, and every later
run builds from it and hands it to every worker with its tasks, so no machine resolves
the requirements again and every worker runs the same packages."""

from __future__ import annotations

from wearflow.config import Study
from wearflow.errors import SolutionError
from wearflow.solutions.environments import lock_key, requirements_text
from wearflow.stages.context import RunContext
from wearflow.state import State


def stored_locks(study: Study) -> dict[str, str]:
    """Solution name -> the lock the study's state holds for its environment; empty when
    no solution has one of its own, or the state does not exist yet (nothing is created
    here: a study that cannot run leaves nothing)."""
    pinned = [c for c in study.solutions if c.environment]
    if not pinned or not study.has_state():
        return {}
    with State(study.state_url) as state:
        found = {c.name: state.locks.get(lock_key(c.environment)) for c in pinned}
    return {name: stored.lock_text for name, stored in found.items() if stored is not None}


def pin_locks(ctx: RunContext) -> None:
    """Store the lock of each solution environment resolved for the first time in this
    run (audited ``environment.locked``).

    Raises
    ------
    SolutionError
        Another coordinator stored a different lock for the same requirements while this
        one was resolving them: this run would build other packages than the study's.
    """
    solutions = ctx.solutions_by_name
    for config in ctx.study.solutions:
        lock_text = solutions[config.name].environment_lock
        if not config.environment or not lock_text:
            continue
        stored = ctx.state.locks.keep_first(lock_key(config.environment),
                                            requirements_text(config.environment),
                                            lock_text, ctx.run_id)
        if stored.lock_text != lock_text:
            raise SolutionError(
                f"solution {config.name}: another run stored a different environment lock "
                f"({stored.lock_sha256[:12]}, run {stored.run_id}) while this one resolved "
                "its requirements; run again to use the stored one", subject=ctx.study.source)
        if stored.run_id == ctx.run_id:
            ctx.audit.record(ctx.actor, "environment.locked", f"solution {config.name}",
                             after={"requirements": sorted(config.environment),
                                    "lock_sha256": stored.lock_sha256})
