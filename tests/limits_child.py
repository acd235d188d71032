"""The child process of ``test_limits_fuzz.py``: run one study of hostile files inline.

``python limits_child.py <study folder> <address-space limit in bytes>``: loads the
alias-bomb study beside it (expecting a refusal), runs the study once on the inline
executor (reading, parsing and processing all happen in this process, so its peak
memory is the parent's measure) and prints what it saw as one JSON line.

The address-space limit is a safety net for the machine the tests share: a bound that
does not hold makes this process fail, not the machine run out of memory.
"""

from __future__ import annotations

import json
import resource
import sys
import warnings
from pathlib import Path


def main(root: Path, address_space_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (address_space_bytes, address_space_bytes))
    warnings.simplefilter("ignore")
    from wearflow import load_study, run_study
    from wearflow.errors import ConfigError
    from wearflow.executors import InlineExecutor

    seen: dict[str, object] = {}
    try:
        load_study(root / "alias-bomb.yaml")
    except ConfigError as exc:
        seen["alias_bomb"] = exc.message
    report = run_study(load_study(root), executor=InlineExecutor())
    seen.update(done=report.done, failed=report.failed,
                participants=report.participants_aggregated, peak_bytes=_peak_bytes())
    print(json.dumps(seen))


def _peak_bytes() -> int:
    """This process's peak resident memory: ``VmHWM``, the high-water mark of its own
    address space (not ``ru_maxrss``, which starts at the parent's peak after vfork +
    exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
