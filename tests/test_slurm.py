"""executor: slurm: the job script dask-jobqueue renders, and a run through it.

There is no SLURM here. The job script is rendered and checked line by line; a run goes
through a stand-in ``sbatch`` that runs the submitted script on this machine (as a node
would) and a stand-in ``scancel`` that ends it, so the script's worker command is the
one that really joins the scheduler and runs the tasks.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from study_helpers import write_csv
from wearflow.cli import app
from wearflow.deployment import SlurmConfig
from wearflow.errors import ConfigError
from wearflow.profiles import load_study

pytest.importorskip("dask_jobqueue")

runner = CliRunner()

STUDY = """\
study: HPC
input: raw/
output: results/
files: {sensor: ["{participant}_{side}.csv"]}
solutions: [{name: wrist, pipeline: builtin:wrist}]
"""

PROFILES = """\
profiles:
  hpc:
    executor: slurm
    slurm:
      queue: short
      account: proj-42
      cores: 4
      memory_gb: 16
      walltime: "02:30:00"
      jobs: 3
      job_extra: ["--qos=long", "--constraint=skylake"]
"""


def study_dir(tmp_path: Path, profiles: str = PROFILES) -> Path:
    (tmp_path / "raw").mkdir(parents=True, exist_ok=True)
    (tmp_path / "study.yaml").write_text(STUDY)
    (tmp_path / "wearflow.profiles.yaml").write_text(profiles)
    return tmp_path


def sbatch_lines(script: str) -> list[str]:
    return [line for line in script.splitlines() if line.startswith("#SBATCH")]


def test_the_job_script_is_shown_without_submitting(tmp_path: Path) -> None:
    root = study_dir(tmp_path)
    result = runner.invoke(app, ["slurm-script", str(root), "--profile", "hpc"])
    assert result.exit_code == 0, result.output
    script = result.stdout
    assert script.startswith("#!/usr/bin/env bash\n")
    assert sbatch_lines(script) == [
        "#SBATCH -J wearflow-worker", "#SBATCH -p short", "#SBATCH -A proj-42",
        "#SBATCH -n 1", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=16G",
        "#SBATCH -t 02:30:00", "#SBATCH --qos=long", "#SBATCH --constraint=skylake"]
    worker = script.strip().splitlines()[-1].split()
    # the python of this virtual environment, the Dask worker, one thread per process,
    # one process per core sharing the job's memory, advertised as MEMORY
    assert worker[:4] == [sys.executable, "-m", "distributed.cli.dask_worker",
                          "tcp://SCHEDULER-HOST:8786"]
    text = " ".join(worker)
    assert "--nthreads 1 " in text and "--nworkers 4 " in text
    assert "--memory-limit 4.00GiB" in text and f"--resources MEMORY={4 * 1024**3}" in text


def test_the_cluster_renders_the_same_script_with_its_scheduler(tmp_path: Path) -> None:
    from dask_jobqueue.slurm import SLURMCluster

    from wearflow.executors.slurm import cluster_options, job_script

    config = load_study(study_dir(tmp_path), profile="hpc").slurm
    assert config is not None
    cluster = SLURMCluster(**cluster_options(config),
                           scheduler_options={"dashboard_address": None})
    try:
        script = cluster.job_script()
        assert f" {cluster.scheduler_address} " in script
    finally:
        cluster.close()
    assert sbatch_lines(script) == sbatch_lines(job_script(config))


def test_slurm_without_sbatch_is_one_line(tmp_path: Path) -> None:
    root = study_dir(tmp_path)
    result = runner.invoke(app, ["run", str(root), "--profile", "hpc"],
                           env={"PATH": str(tmp_path / "no-bin")})
    assert result.exit_code == 2
    assert result.stderr == ("error [PIPELINE_ISSUE] executor: executor slurm: sbatch is not "
                             "on PATH; run wearflow on a SLURM login node (`wearflow "
                             "slurm-script STUDY` shows the job script without submitting "
                             "it)\n")


def test_slurm_needs_its_section_and_valid_values(tmp_path: Path) -> None:
    root = study_dir(tmp_path, "profiles:\n  a: {executor: slurm}\n"
                               "  b: {executor: slurm, slurm: {queue: q, memory_gb: 1, "
                               "walltime: 2h}}\n")
    for name, expected in (("a", "executor: slurm needs a slurm: section"),
                           ("b", "slurm.walltime")):
        with pytest.raises(ConfigError) as info:
            load_study(root, profile=name)
        assert expected in str(info.value) and f"with profile {name}" in str(info.value)
    result = runner.invoke(app, ["slurm-script", str(study_dir(tmp_path / "plain", ""))])
    assert result.exit_code == 2 and "the study has no slurm: section" in result.stderr


def test_slurm_memory_is_shared_by_the_processes_of_a_job() -> None:
    from wearflow.executors.slurm import worker_memory_bytes

    config = SlurmConfig(queue="q", cores=8, processes=2, memory_gb=16)
    assert (config.worker_processes, worker_memory_bytes(config)) == (2, 8 * 1024**3)
    assert SlurmConfig(queue="q", cores=2, processes=5, memory_gb=1).worker_processes == 2


# a node, as far as a job can tell: sbatch runs the submitted script in the background
# (its own process group), scancel ends that group
SBATCH = """#!/bin/sh
script="{jobs}/job-$$.sh"
cp "$1" "$script"
setsid sh "$script" > "$script.out" 2>&1 < /dev/null &
echo "Submitted batch job $!"
"""
SCANCEL = """#!/bin/sh
for job in "$@"; do kill -TERM -- "-$job" 2>/dev/null; echo "$job" >> {jobs}/cancelled; done
exit 0
"""


def test_a_run_through_slurm_jobs_completes(tmp_path: Path) -> None:
    bin_dir, jobs = tmp_path / "bin", tmp_path / "jobs"
    bin_dir.mkdir()
    jobs.mkdir()
    for name, body in (("sbatch", SBATCH), ("scancel", SCANCEL)):
        (bin_dir / name).write_text(body.format(jobs=jobs))
        (bin_dir / name).chmod(stat.S_IRWXU)
    root = study_dir(tmp_path / "study", PROFILES.replace("cores: 4", "cores: 1").replace(
        "memory_gb: 16", "memory_gb: 2").replace("jobs: 3", "jobs: 1\n      start_timeout_s: 120"))
    for name, seed in (("P1_L", 1), ("P1_R", 2)):
        write_csv(root / "raw" / f"{name}.csv", seed=seed, hours=0.2)
    result = runner.invoke(app, ["run", str(root), "--profile", "hpc"],
                           env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert result.exit_code == 0, result.output
    assert "2 files: 2 done, 0 failed; 2 tasks executed" in result.stdout
    submitted = sorted(jobs.glob("job-*.sh"))
    assert len(submitted) == 1
    assert "#SBATCH -p short" in submitted[0].read_text()
    assert (jobs / "cancelled").exists()  # the job ended with the run
    assert len(list((root / "results/processed/wrist").glob("P1/*/provenance.json"))) == 1


def test_make_executor_slurm_needs_the_section() -> None:
    from wearflow.executors import make_executor

    with pytest.raises(ConfigError, match=r"executor slurm needs the study's slurm: section"):
        make_executor("slurm")
