"""`wearflow init`: a new study folder with a commented study file and an empty raw/."""

from __future__ import annotations

from pathlib import Path

from wearflow.config import STUDY_FILE_NAME
from wearflow.errors import ConfigError

STUDY_TEMPLATE = """\
# wearflow study file. Every key: `wearflow --help` and the README of wearflow's
# repository; check it with `wearflow validate <this folder>`.
study: {name}
input: raw/                # folder (relative to this file), URI, or a list of them
output: results/           # per-wrist and participant results, logs, state database
time_zone: UTC             # participants' local time zone: days and nights are cut in it
files:
  sensor: ["{{participant}}_{{side}}.cwa", "{{participant}}_{{side}}.cwa.gz",
           "{{participant}}_{{side}}.bin", "{{participant}}_{{side}}.csv",
           "{{participant}}_{{side}}.csv.gz", "{{participant}}_{{side}}.gt3x",
           "{{participant}}_{{side}}.agdc"]
  sides: {{left: [L, LW, left], right: [R, RW, right]}}
solutions:
  - name: wrist
    pipeline: builtin:wrist-stream   # or builtin:wrist (SKDH), or a .skdh pipeline file
# state: sqlite:///results/wearflow.db   # the default
# alerts:                    # tell people when the study is in trouble (README: Alerts)
#   run_failed: true         # the latest run ended with failed files, or died
#   stalled_minutes: 120     # nothing finished for 2 hours while tasks wait to run
#   webhook: https://hooks.example.org/...   # and/or email: (smtp_host, from, to, ...)
# audit:                     # each run's audit-trail head, kept outside the database
#   anchors: s3://.../anchors/   # default results/audit-anchors/ (README: the anchors)
#   key_file: ~/.wearflow/audit.key   # signs them (else $WEARFLOW_AUDIT_KEY)
"""


def create_study(directory: Path, name: str) -> Path:
    """Write ``directory/study.yaml`` from the template and make ``directory/raw``;
    return the study file.

    Raises
    ------
    ConfigError
        A study file is already there (it is never overwritten), or the folder cannot
        be written.
    """
    target = directory / STUDY_FILE_NAME
    if target.exists():
        raise ConfigError("already exists; not overwritten", subject=str(target))
    try:
        (directory / "raw").mkdir(parents=True, exist_ok=True)
        with target.open("x", encoding="utf-8") as fh:
            fh.write(STUDY_TEMPLATE.format(name=name))
    except FileExistsError:
        raise ConfigError("already exists; not overwritten", subject=str(target)) from None
    except OSError as exc:
        raise ConfigError(f"cannot create the study ({exc.strerror})",
                          subject=str(directory)) from None
    return target
