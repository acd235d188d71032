"""Shared pieces of the benchmarks: figures, machine facts, studies, child processes.

Every benchmark module exposes ``run(quick: bool) -> Iterator[Figure]``; the
driver (``python -m benchmarks``) prints each figure as one line as soon as it
is measured. Benchmarks never assert on times: they measure and print.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wearflow.config import Study, parse_study

REPO_ROOT = Path(__file__).resolve().parents[1]
GB = 1e9  # figures are in decimal gigabytes, as in the field notes

# The field notes' peers on the same 7-day 100 Hz .cwa (h of data per CPU-second, peak GB).
SKDH_FULL_H_PER_CPU_S, SKDH_FULL_PEAK_GB = 1.73, 9.0
SKDH_READ_CPU_S, SKDH_READ_PEAK_GB = 6.0, 2.5  # ReadCwa alone on that file


@dataclass(frozen=True)
class Figure:
    """One printed result: ``name: text``."""

    name: str
    text: str

    def line(self) -> str:
        return f"{self.name}: {self.text}"


@dataclass(frozen=True)
class Timed:
    """Wall-clock and CPU seconds of one measured call (CPU: this process, all threads)."""

    wall_s: float
    cpu_s: float


def timed(fn: Callable[[], Any]) -> tuple[Timed, Any]:
    """Call ``fn`` once; return its wall and CPU time and its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return Timed(time.perf_counter() - wall, time.process_time() - cpu), out


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far.

    Linux's ``VmHWM`` (high-water mark of this process's own address space)
    first: ``ru_maxrss`` of a child started with vfork + exec (as ``subprocess``
    does) starts at the parent's peak, so a small child would report its parent's.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / GB  # the value is in kB
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB  # KiB on Linux


def load_average() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f}/{five:.2f}"


def _total_ram_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
    except (ValueError, OSError):
        return float("nan")


def machine_facts() -> list[Figure]:
    """What the figures were measured on; printed before any benchmark."""
    from importlib.metadata import version

    import wearflow

    try:
        skdh = version("scikit-digital-health")
    except Exception:  # not installed: the solution benchmarks will say so themselves
        skdh = "not installed"
    cpu = platform.processor() or platform.machine()
    return [
        Figure("machine", f"{os.cpu_count()} cores ({cpu}), {_total_ram_gb():.1f} GB RAM, "
                          f"load average {load_average()} (1/5 min), {platform.platform()}"),
        Figure("software", f"Python {platform.python_version()}, wearflow "
                           f"{wearflow.__version__}, scikit-digital-health {skdh}, "
                           f"numpy {version('numpy')}, SQLAlchemy {version('sqlalchemy')}"),
        Figure("bytecode", _bytecode_fact()),
    ]


def _bytecode_fact() -> str:
    """Whether imports load compiled .pyc files or compile every module in every process."""
    import numpy

    package = Path(numpy.__file__).parent
    compiled = any(package.glob("__pycache__/*.pyc"))
    if compiled:
        return "installed packages are byte-compiled (.pyc present)"
    flag = os.environ.get("PYTHONDONTWRITEBYTECODE")
    return ("installed packages have no .pyc" + (f" and PYTHONDONTWRITEBYTECODE={flag}" if flag
                                                  else "")
            + ": every new process compiles what it imports (worker and CLI start-up pay it)")


def make_study(root: Path, *, name: str = "BENCH", output: str = "results",
               workers: int | None = None) -> Study:
    """A one-solution study (``builtin:wrist``) reading ``root/raw`` (as ``wearflow init``)."""
    data: dict[str, Any] = {
        "study": name,
        "input": "raw/",
        "output": output,
        "time_zone": "UTC",
        "files": {"sensor": ["{participant}_{side}.cwa"]},
        "solutions": [{"name": "wrist", "pipeline": "builtin:wrist"}],
    }
    if workers is not None:
        data["workers"] = workers
    return parse_study(data, source=str(root / "study.yaml"), base=root)


def run_child(module: str, *args: str, timeout_s: float = 1800) -> dict[str, Any]:
    """Run ``python -m benchmarks.<module> --child ARGS`` and return the JSON it prints last.

    A child process measures one task alone, so its peak memory is that task's
    and its CPU clock holds nothing else.
    """
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", "--child", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False,
    )
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])[:400]
        raise RuntimeError(f"child benchmarks.{module} {' '.join(args)} failed "
                           f"(exit {done.returncode}): {tail}")
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"child benchmarks.{module} {' '.join(args)} printed nothing")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def child_report(**values: Any) -> None:
    """Print a child's measurements (the last stdout line) with its peak memory."""
    print(json.dumps({**values, "peak_rss_gb": peak_rss_gb()}), flush=True)


def fmt_s(seconds: float) -> str:
    """Seconds with precision that fits their size."""
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 10:
        return f"{seconds:.2f} s"
    return f"{seconds:.1f} s"
