"""Commands about where a study runs: slurm-script."""

from __future__ import annotations

import sys

from wearflow.cli._common import (
    ProfileOption,
    ProfilesOption,
    StudyArg,
    app,
    open_study,
    reports_errors,
)
from wearflow.errors import ConfigError


@app.command("slurm-script")
@reports_errors
def slurm_script(study: StudyArg, profile: ProfileOption = None,
                 profiles: ProfilesOption = None) -> None:
    """Print the batch script of one SLURM worker job (executor: slurm), as `run` would
    submit it, without submitting anything; SCHEDULER-HOST stands for the scheduler that
    `run` starts."""
    s = open_study(study, profile, profiles)
    if s.slurm is None:
        under = f" with profile {s.profile}" if s.profile else ""
        raise ConfigError(f"the study has no slurm: section{under} (queue, cores, memory_gb, "
                          "walltime, jobs)", subject=s.source)
    from wearflow.extras import require

    require("dask_jobqueue", "dask", "the slurm executor", subject="executor")
    from wearflow.executors.slurm import job_script

    sys.stdout.write(job_script(s.slurm))
