"""The study file: a validated, frozen :class:`Study`.

This module reads YAML and nothing else. Relative paths in the study file are
resolved against the folder that holds it, so a study folder can be moved or
shared as a whole.

Credentials stay out of what is recorded: ``state:`` takes ``${VAR}`` from the
environment (a password need not be written in the file), or comes whole from
``$WEARFLOW_STATE_URL`` when the file has no ``state:``; the study's configuration as
recorded and printed (:meth:`Study.public_dump`) and its fingerprint mask every credential
(:mod:`wearflow.redact`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from wearflow.config_messages import validation_message, yaml_message
from wearflow.config_sections import (
    AlertsConfig,
    AuditConfig,
    EmailConfig,
    FrozenModel,
    NotificationsConfig,
    ReportsConfig,
    RetryConfig,
)
from wearflow.deployment import DEPLOYMENT_FIELDS, SlurmConfig
from wearflow.errors import ConfigError, one_line
from wearflow.memory import DEFAULT_BYTES_PER_SAMPLE, STREAM_BYTES_PER_SAMPLE
from wearflow.redact import redact_config

STUDY_FILE_NAME = "study.yaml"
ANCHORS_FOLDER = "audit-anchors"  # under the output, unless the study file names a place
_URI_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_FIELD_RE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
KNOWN_FIELDS = frozenset({"participant", "side", "visit", "device", "location"})
# the state database's URL when the study file has no `state:` (a deployment's, e.g. a
# Kubernetes secret's, so that the password is never in the study file)
STATE_URL_VARIABLE = "WEARFLOW_STATE_URL"
_VARIABLE_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SIDES = ("left", "right")


_Frozen = FrozenModel


class FilesConfig(_Frozen):
    """Which files are sensor files and how their names parse."""

    sensor: tuple[str, ...] = Field(min_length=1)
    sides: dict[Literal["left", "right"], tuple[str, ...]] = Field(
        default_factory=lambda: {"left": ("L", "LW", "left"), "right": ("R", "RW", "right")}  # type: ignore[arg-type]
    )
    metadata: tuple[str, ...] = ()

    @field_validator("sensor")
    @classmethod
    def _patterns_are_valid(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            fields = _FIELD_RE.findall(pattern)
            unknown = sorted(set(fields) - KNOWN_FIELDS)
            if unknown:
                raise ValueError(
                    f"pattern {pattern!r} has unknown field(s) {unknown}; "
                    f"known fields are {sorted(KNOWN_FIELDS)}"
                )
            if "participant" not in fields:
                raise ValueError(f"pattern {pattern!r} must contain {{participant}}")
            if len(fields) != len(set(fields)):
                raise ValueError(f"pattern {pattern!r} repeats a field")
            if "." not in pattern.rsplit("}", 1)[-1]:
                raise ValueError(f"pattern {pattern!r} must end in a file extension like .cwa")
        return patterns

    @field_validator("sides")
    @classmethod
    def _sides_are_disjoint(
        cls, sides: dict[Literal["left", "right"], tuple[str, ...]]
    ) -> dict[Literal["left", "right"], tuple[str, ...]]:
        left = {s.lower() for s in sides.get("left", ())}
        right = {s.lower() for s in sides.get("right", ())}
        both = sorted(left & right)
        if both:
            raise ValueError(f"labels {both} are listed for both left and right")
        return sides


METADATA_FIELDS = frozenset({"participant", "height_m", "height_cm", "weight_kg", "age_years",
                             "sex", "dominant_hand", "time_zone", "device_left", "device_right",
                             "visit", "protocol_start", "protocol_end", "bed_time",
                             "wake_time"})
REQUIRABLE = METADATA_FIELDS - {"participant", "height_cm", "bed_time", "wake_time"}


class MetadataConfig(_Frozen):
    """How metadata files map to canonical fields, and what the study insists on."""

    columns: dict[str, str] = Field(default_factory=dict)
    required: bool = False
    wait_deadline_h: float | None = Field(default=None, gt=0)

    @field_validator("columns")
    @classmethod
    def _known_targets(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = sorted(v for v in columns.values() if v not in METADATA_FIELDS)
        if unknown:
            raise ValueError(f"unknown metadata field(s) {unknown}; "
                             f"known: {sorted(METADATA_FIELDS)}")
        return columns


class QcConfig(_Frozen):
    """Data-quality rules."""

    min_wear_hours: float = Field(default=16.0, ge=0, le=24)
    # recordings (partly) outside these UTC dates are flagged outside_study_window
    study_start: date | None = None
    study_end: date | None = None


# keys that do not change any result, left out of the study fingerprint
EXECUTION_FIELDS = frozenset({"executor", "workers", "memory_limit_gb", "retries", "reports",
                              "alerts", "task_timeout_s", "task_memory_limit_gb",
                              "audit"})
_NOT_FINGERPRINTED = EXECUTION_FIELDS | DEPLOYMENT_FIELDS | {"profile"}
DEFAULT_TASK_TIMEOUT_S = 7200.0  # a week at 100 Hz takes minutes; hours is a stuck task


class AppliesTo(_Frozen):
    """Which sensor files a solution runs on, by the fields their names parse into.

    Each key lists the values accepted (a file whose field has another value, or no
    value, is not run by the solution); a key left out accepts every file. Values
    are compared as the names give them, ``side`` after mapping to left/right.
    """

    side: tuple[Literal["left", "right"], ...] | None = Field(default=None, min_length=1)
    visit: tuple[str, ...] | None = Field(default=None, min_length=1)
    location: tuple[str, ...] | None = Field(default=None, min_length=1)
    device: tuple[str, ...] | None = Field(default=None, min_length=1)

    def accepts(self, fields: Mapping[str, str | None]) -> bool:
        """Whether a file whose name parsed into ``fields`` is one of the solution's."""
        for name in APPLIES_TO_FIELDS:
            allowed = getattr(self, name)
            if allowed is not None and fields.get(name) not in allowed:
                return False
        return True

    def describe(self) -> str:
        """``visit in (V1, V2), side in (left)``, or ``every file``."""
        parts = [f"{name} in ({', '.join(getattr(self, name))})" for name in APPLIES_TO_FIELDS
                 if getattr(self, name) is not None]
        return ", ".join(parts) or "every file"


APPLIES_TO_FIELDS = ("side", "visit", "location", "device")


class SolutionConfig(_Frozen):
    """One biomarker solution: a scikit-digital-health pipeline file or a built-in."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    pipeline: str
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    requires: tuple[str, ...] = ()
    short_recording_h: float = Field(default=24.0, gt=0)
    environment: tuple[str, ...] = ()  # requirements of its own environment, e.g. skdh==0.17.16
    # peak memory per sample of the recording, for memory-aware scheduling (measured on the
    # builtin wrist solution: ~157 bytes per sample; builtin:wrist-stream's own default is
    # memory.STREAM_BYTES_PER_SAMPLE)
    bytes_per_sample: float = Field(default=DEFAULT_BYTES_PER_SAMPLE, gt=0)
    # which files it runs on (default: every sensor file; then left out of the dump, so
    # that the fingerprint of a study that does not scope its solutions stays as it was)
    applies_to: AppliesTo = Field(default_factory=AppliesTo,
                                  exclude_if=lambda value: value == AppliesTo())

    @model_validator(mode="before")
    @classmethod
    def _streaming_footprint(cls, data: Any) -> Any:
        # the streaming solution needs less memory per sample than scikit-digital-health's
        if (isinstance(data, Mapping) and data.get("pipeline") == "builtin:wrist-stream"
                and "bytes_per_sample" not in data):
            return {**data, "bytes_per_sample": STREAM_BYTES_PER_SAMPLE}
        return data

    @field_validator("requires")
    @classmethod
    def _requirable(cls, fields: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(fields) - REQUIRABLE)
        if unknown:
            raise ValueError(f"cannot require {unknown}; requirable: {sorted(REQUIRABLE)}")
        return fields


class Study(_Frozen):
    """A validated study configuration.

    ``input`` and ``output`` are resolved to absolute paths or URIs; ``source``
    is the study file itself.
    """

    study: str = Field(min_length=1)
    input: tuple[str, ...]
    output: str
    files: FilesConfig
    solutions: tuple[SolutionConfig, ...] = Field(min_length=1)
    metadata: MetadataConfig = Field(default_factory=MetadataConfig)
    qc: QcConfig = Field(default_factory=QcConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    # each may hold credentials: never shown whole (repr, public_dump)
    webhook: str | None = Field(default=None, pattern=r"^https?://", repr=False)
    state: str | None = Field(default=None, repr=False)
    time_zone: str = "UTC"
    device_time_zone: str | None = None
    # where tasks run: inline | local | dask (a local Dask cluster) | dask://host:8786 |
    # slurm (Dask workers as SLURM jobs, as its `slurm:` section says)
    executor: str = Field(default="local",
                          pattern=r"^(inline|local|dask|slurm|(dask|tcp|tls)://\S+)$")
    slurm: SlurmConfig | None = Field(default=None, exclude_if=lambda value: value is None)
    workers: int | None = Field(default=None, ge=1)
    # memory all workers of one machine may use together (default: 80% of physical memory)
    memory_limit_gb: float | None = Field(default=None, gt=0)
    # one task's limits, a hostile file's cost bounded: wall-clock seconds (null: none),
    # and the memory it may take on top of its worker's own (default: memory_limit_gb,
    # or 80% of physical memory); a task over either fails naming its file
    task_timeout_s: float | None = Field(default=DEFAULT_TASK_TIMEOUT_S, gt=0)
    task_memory_limit_gb: float | None = Field(default=None, gt=0)
    retries: RetryConfig = Field(default_factory=RetryConfig)
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    single_wrist_grace_h: float = Field(default=0.0, ge=0)
    # fsspec options for object-store locations (endpoint_url, key, secret, ...); never
    # logged or written to outputs. Credentials may also come from AWS_* variables.
    storage_options: dict[str, Any] = Field(default_factory=dict, repr=False)
    identity: str | None = None  # who runs this study, for the audit trail (default: OS user)
    source: str = Field(default="", exclude=True)
    # the deployment profile applied (wearflow.profiles): recorded with each run
    profile: str | None = Field(default=None, exclude_if=lambda value: value is None)

    @field_validator("webhook")
    @classmethod
    def _webhook_without_credentials(cls, url: str | None) -> str | None:
        # the message never repeats the URL: it holds the credentials
        if url is not None and "@" in urlsplit(url).netloc:
            raise ValueError("must not hold a user or password (user:password@host): put "
                             "the receiver's token in its path or query")
        return url

    @field_validator("input", mode="before")
    @classmethod
    def _input_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("time_zone", "device_time_zone")
    @classmethod
    def _known_time_zone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time-zone name") from exc
        return value

    @model_validator(mode="after")
    def _slurm_needs_its_section(self) -> Study:
        if self.executor == "slurm" and self.slurm is None:
            raise ValueError("executor: slurm needs a slurm: section (queue, cores, "
                             "memory_gb, walltime, jobs)")
        return self

    @model_validator(mode="after")
    def _unique_solution_names(self) -> Study:
        names = [s.name for s in self.solutions]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"solution names must be unique; repeated: {dupes}")
        return self

    @model_validator(mode="after")
    def _applies_to_fields_exist(self) -> Study:
        """A solution scoped by a field no sensor pattern gives would run on no file."""
        given = {f for pattern in self.files.sensor for f in _FIELD_RE.findall(pattern)}
        for sol in self.solutions:
            for name in APPLIES_TO_FIELDS:
                if getattr(sol.applies_to, name) is not None and name not in given:
                    raise ValueError(
                        f"solution {sol.name!r}: applies_to.{name} needs a {{{name}}} field in "
                        f"a sensor pattern (patterns give: {sorted(given)})")
        return self

    @property
    def state_url(self) -> str:
        """SQLAlchemy URL of the state database (default: SQLite in the output folder)."""
        if self.state:
            return self.state
        folder = local_path(self.output)
        if folder is None:
            raise ConfigError(
                "an object-store output needs an explicit `state:` database URL",
                subject=self.source,
            )
        return f"sqlite:///{Path(folder) / 'wearflow.db'}"

    @property
    def anchors_location(self) -> str:
        """Where each run writes the audit trail's head (default: ``<output>/audit-anchors``)."""
        return self.audit.anchors or f"{self.output.rstrip('/')}/{ANCHORS_FOLDER}"

    def has_state(self) -> bool:
        """Whether the state database exists (a SQLite file is looked for; a server
        database is taken to exist)."""
        url = self.state_url
        if url.startswith("sqlite:///") and ":memory:" not in url:
            return Path(url.removeprefix("sqlite:///")).exists()
        return True

    def public_dump(self) -> dict[str, Any]:
        """The configuration as it is recorded (the runs table, the audit trail) and shown:
        without storage options (which may hold credentials), every credential masked
        (:func:`wearflow.redact.redact_config`: the state's password, the webhooks cut to
        their scheme and host)."""
        dump = self.model_dump(mode="json", exclude={"storage_options"})
        dump["alerts"] = self.alerts.model_dump(mode="json", by_alias=True)
        return dict(redact_config(dump))

    @property
    def clock_time_zone(self) -> str:
        """Time zone the devices' clocks were set to (defaults to the study's)."""
        return self.device_time_zone or self.time_zone

    def fingerprint(self) -> str:
        """sha256 of the configuration as recorded (:meth:`public_dump`: credentials
        masked, so a rotated password or token keeps it), key-order stable. Storage
        options, where and how tasks run (executor, workers, memory, retries), reports and
        alerts are left out: they do not change any result. So is everything a deployment
        profile may set (:data:`~wearflow.deployment.DEPLOYMENT_FIELDS`: the locations, the
        state database, ...): one study has one fingerprint under every profile."""
        dump = {k: v for k, v in self.public_dump().items() if k not in _NOT_FINGERPRINTED}
        canonical = json.dumps(dump, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


# the model of each section of the study file, by its key path (list indexes left out)
_SECTIONS: dict[tuple[str, ...], type[BaseModel]] = {
    (): Study, ("files",): FilesConfig, ("metadata",): MetadataConfig, ("qc",): QcConfig,
    ("solutions",): SolutionConfig, ("solutions", "applies_to"): AppliesTo,
    ("retries",): RetryConfig, ("notifications",): NotificationsConfig,
    ("reports",): ReportsConfig, ("alerts",): AlertsConfig, ("alerts", "email"): EmailConfig,
    ("audit",): AuditConfig, ("slurm",): SlurmConfig}


def strip_file_scheme(location: str) -> str:
    return location[len("file://"):] if location.startswith("file://") else location


def local_path(location: str) -> str | None:
    """The local folder a location names (a path or a ``file://`` URI); None for an
    object store or any other URI."""
    if location.startswith("file://") or not _URI_RE.match(location):
        return strip_file_scheme(location)
    return None


def _resolve(location: str, base: Path) -> str:
    if _URI_RE.match(location):
        return location
    path = Path(location).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _resolve_sqlite(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str((base / url[len(prefix):]).resolve())
    return url


def study_file_path(path: str | Path) -> Path:
    """Accept either a study file or the folder that holds ``study.yaml``."""
    p = Path(path)
    return p / STUDY_FILE_NAME if p.is_dir() else p


def parse_study(data: Any, *, source: str, base: Path,
                environ: Mapping[str, str] | None = None, profile: str | None = None) -> Study:
    """Validate an already-parsed study mapping; relative paths resolve against ``base``,
    ``${VAR}`` in ``state:`` (and ``$WEARFLOW_STATE_URL`` when there is none) from
    ``environ`` (default: the process's environment); ``profile``: the name of the
    deployment profile merged into ``data`` (:mod:`wearflow.profiles`), recorded."""
    if not isinstance(data, dict):
        raise ConfigError("the study file must be a YAML mapping of keys", subject=source)
    try:
        study = Study.model_validate({**data, "source": source, "profile": profile})
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, _SECTIONS, Study), subject=source) from None
    return study.model_copy(
        update={
            "input": tuple(_resolve(x, base) for x in study.input),
            "output": _resolve(study.output, base),
            "state": _state_url(study.state, base, os.environ if environ is None else environ,
                                source),
            "audit": study.audit.model_copy(update={
                "anchors": _resolve(study.audit.anchors, base) if study.audit.anchors else None,
                "key_file": (_resolve(study.audit.key_file, base) if study.audit.key_file
                             else None)}),
            "solutions": tuple(
                s.model_copy(update={"pipeline": _resolve_pipeline(s.pipeline, base)})
                for s in study.solutions
            ),
        }
    )


def _state_url(written: str | None, base: Path, environ: Mapping[str, str],
               source: str) -> str | None:
    """The state URL: the study file's with every ``${VAR}`` taken from ``environ``, else
    ``$WEARFLOW_STATE_URL`` as it is; a relative SQLite path resolved against ``base``.

    Raises
    ------
    ConfigError
        A variable is not set, or the URL is not a database URL (the message never
        repeats the URL: it may hold a password).
    """
    key = "state"
    if written is None:
        url, key = environ.get(STATE_URL_VARIABLE) or None, STATE_URL_VARIABLE
        if url is None:
            return None
    else:
        unset = sorted({name for name in _VARIABLE_RE.findall(written) if name not in environ})
        if unset:
            raise ConfigError(f"state: the environment variable{'s' * (len(unset) > 1)} "
                              f"{', '.join(unset)} {'are' if len(unset) > 1 else 'is'} not "
                              "set (${...} in state: is read from the environment)",
                              subject=source)
        url = _VARIABLE_RE.sub(lambda m: environ[m.group(1)], written)
    # imported here: `wearflow --help` and the study file's loading stay quick
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        why = "an @ in the user or password must be written %40" if "@" in (
            make_url(url).host or "") else ""
    except (ArgumentError, ValueError, TypeError) as exc:
        why = "its port is not a number" if isinstance(exc, ValueError) else "it does not parse"
    if why:
        raise ConfigError(f"{key}: not a database URL ({why}); expected "
                          "dialect+driver://<user>:<password>@<host>:<port>/<database> or "
                          "sqlite:///<path>", subject=source)
    return _resolve_sqlite(url, base)


def _resolve_pipeline(pipeline: str, base: Path) -> str:
    return pipeline if pipeline.startswith("builtin:") else _resolve(pipeline, base)


class _StudyLoader(yaml.SafeLoader):
    """YAML without aliases: ``*name`` refused where it stands. An alias repeats what its
    anchor names without copying it, so nine nested lines of aliases make a billion
    values; a study file writes its values out (an anchor alone is harmless)."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None,
                f"YAML alias *{event.anchor} refused: a study file writes its values out "
                "(aliases can expand a small file without bound)", event.start_mark)
        return super().compose_node(parent, index)


def read_yaml_file(file: Path, what: str = "study file") -> Any:
    """The YAML in ``file`` (without aliases), parsed; ``what`` names the file in errors.

    Raises
    ------
    ConfigError
        The file is missing, unreadable or not YAML (YAML aliases included).
    """
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} not found", subject=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {what} ({exc})", subject=source) from None
    try:
        return yaml.load(text, Loader=_StudyLoader)  # a SafeLoader, without aliases
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_message(exc), subject=source) from None
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        # yaml's constructors raise these on values like `!!int abc` or 2020-13-45
        raise ConfigError(one_line(f"not valid YAML ({type(exc).__name__}: {exc})"),
                          subject=source) from None


def load_study(path: str | Path) -> Study:
    """Load and validate a study file (or a folder holding ``study.yaml``).

    Raises
    ------
    ConfigError
        The file is missing, not YAML (YAML aliases included), or invalid; the message
        names the file and every offending key.
    """
    file = study_file_path(path)
    data = read_yaml_file(file)
    try:
        return parse_study(data, source=str(file), base=file.parent.resolve())
    except (ValueError, RuntimeError, OSError) as exc:  # paths with NUL bytes, ~nouser, ...
        raise ConfigError(one_line(f"invalid path ({exc})"), subject=str(file)) from None
