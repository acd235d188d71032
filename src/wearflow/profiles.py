"""Deployment profiles: where and how one study runs (``dev``, ``stage``, ``prod``, ...),
kept apart from what it computes.

A profiles file (``wearflow.profiles.yaml`` next to the study file, or the file named by
``--profiles`` or ``$WEARFLOW_PROFILES``) maps names to settings::

    profiles:
      dev:  {executor: inline, output: results-dev/}
      prod: {state: "postgresql+psycopg://wearflow:${PGPASSWORD}@db/trial", workers: 16}

``wearflow run STUDY --profile prod`` (or ``$WEARFLOW_PROFILE``) merges the profile
into the study file: a profile's mapping merges key by key into the study's, any other
value replaces it. A profile may set only the deployment keys
(:data:`~wearflow.deployment.DEPLOYMENT_FIELDS`), none of which enters the study
fingerprint: the science (solutions, files, metadata, qc, time zones) stays in the study
file, and the results are the same under every profile.

Secrets never sit in the profile's text: a value takes ``${VAR}`` from the environment
and ``${file:PATH}`` from a file (its content, the final newline cut; a relative PATH
from the profiles file's folder). A password written out in ``state:``, or a storage
option naming a credential (``key``, ``secret``, ``token``, ...) whose value is not such a
reference, is refused. Relative locations in a profile resolve against its file's folder.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from wearflow.config import Study, local_path, parse_study, read_yaml_file, study_file_path
from wearflow.deployment import DEPLOYMENT_FIELDS
from wearflow.errors import ConfigError, one_line
from wearflow.redact import is_credential_key

PROFILES_FILE_NAME = "wearflow.profiles.yaml"
PROFILE_VARIABLE = "WEARFLOW_PROFILE"  # the profile, when --profile is not given
PROFILES_VARIABLE = "WEARFLOW_PROFILES"  # the profiles file, when --profiles is not given
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_REFERENCE_RE = re.compile(r"\$\{(?:file:([^}]+)|([A-Za-z_][A-Za-z0-9_]*))\}")
_REFERENCE = "REFERENCE"  # what a reference reads as while a value is checked for secrets
_SCIENCE = ("it is the study's science (it changes results and the fingerprint): "
            "set it in the study file")


@dataclass(frozen=True)
class Profile:
    """One named profile as written in its file (references not yet resolved)."""

    name: str
    source: str  # the profiles file
    settings: Mapping[str, Any]

    @property
    def folder(self) -> Path:
        return Path(self.source).parent


def profiles_file(study_file: Path, given: str | Path | None = None,
                  environ: Mapping[str, str] | None = None) -> Path:
    """The profiles file: ``given``, else ``$WEARFLOW_PROFILES``, else
    ``wearflow.profiles.yaml`` next to the study file."""
    env = os.environ if environ is None else environ
    named = given or env.get(PROFILES_VARIABLE)
    return Path(named).expanduser() if named else study_file.parent / PROFILES_FILE_NAME


def read_profiles(path: Path) -> dict[str, Profile]:
    """Every profile of a profiles file, by name.

    Raises
    ------
    ConfigError
        The file is missing, not YAML, or not ``profiles:`` mapping names to settings.
    """
    source = str(path)
    data = read_yaml_file(path, "profiles file")
    if not isinstance(data, dict) or set(data) != {"profiles"} or not isinstance(
            data["profiles"], dict):
        raise ConfigError("a profiles file is one key, profiles:, mapping each profile's "
                          "name to its settings", subject=source)
    profiles: dict[str, Profile] = {}
    for name, settings in sorted(data["profiles"].items(), key=lambda kv: str(kv[0])):
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigError(f"profile name {name!r}: letters, digits, _ . - only",
                              subject=source)
        if settings is not None and not isinstance(settings, dict):
            raise ConfigError(f"profile {name}: its settings must be a mapping of keys",
                              subject=source)
        profiles[name] = Profile(name, source, dict(settings or {}))
    return profiles


def select_profile(profiles: Mapping[str, Profile], name: str, source: Path) -> Profile:
    """The profile called ``name``; a ConfigError listing the known ones otherwise."""
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(f"no profile {name!r}; known profiles: {known}", subject=str(source))
    return profiles[name]


def apply_profile(data: Mapping[str, Any], profile: Profile,
                  environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The study file's mapping with ``profile`` merged in: its keys checked (deployment
    keys only, no secret written out), its references resolved, its relative locations
    made absolute against its file's folder. ``data`` is left as it was.

    Raises
    ------
    ConfigError
        A key a profile may not set, a secret in the profile's text, an unset variable
        or an unreadable file reference; one line naming the profiles file and the key.
    """
    env = os.environ if environ is None else environ
    for key, value in profile.settings.items():
        _check_key(profile, str(key))
        _check_no_secret(profile, str(key), value)
    resolved = {key: _resolve_references(profile, key, value, env)
                for key, value in profile.settings.items()}
    return _merged(data, _absolute_locations(resolved, profile.folder))


def load_study(path: str | Path, *, profile: str | None = None,
               profiles: str | Path | None = None,
               environ: Mapping[str, str] | None = None) -> Study:
    """Load a study file with a deployment profile applied: ``profile``, else
    ``$WEARFLOW_PROFILE``; with neither, the study file as it is
    (:func:`wearflow.config.load_study`).

    Raises
    ------
    ConfigError
        The study file or the profiles file is invalid, the profile is unknown, or the
        study with the profile applied is invalid (the message names the profile).
    """
    env = os.environ if environ is None else environ
    file = study_file_path(path)
    name = profile or env.get(PROFILE_VARIABLE) or None
    data = read_yaml_file(file)
    if name is None:
        return _parse(data, file, env, None)
    source = profiles_file(file, profiles, env)
    if not source.exists():
        raise ConfigError(f"profile {name!r} asked for, but there is no profiles file (next "
                          f"to the study: {PROFILES_FILE_NAME}; or --profiles FILE, "
                          f"${PROFILES_VARIABLE})", subject=str(source))
    chosen = select_profile(read_profiles(source), name, source)
    if not isinstance(data, dict):
        return _parse(data, file, env, None)  # the study file's own error
    try:
        return _parse(apply_profile(data, chosen, env), file, env, name)
    except ConfigError as exc:
        if exc.subject != str(file):
            raise
        raise ConfigError(f"with profile {name} ({source}): {exc.message}",
                          subject=str(file)) from None


def _parse(data: Any, file: Path, environ: Mapping[str, str], name: str | None) -> Study:
    try:
        return parse_study(data, source=str(file), base=file.parent.resolve(),
                           environ=environ, profile=name)
    except (ValueError, RuntimeError, OSError) as exc:  # paths with NUL bytes, ~nouser, ...
        raise ConfigError(one_line(f"invalid path ({exc})"), subject=str(file)) from None


def _check_key(profile: Profile, key: str) -> None:
    if key in DEPLOYMENT_FIELDS:
        return
    allowed = ", ".join(sorted(DEPLOYMENT_FIELDS))
    if key in Study.model_fields and key not in ("source", "profile"):
        why = _SCIENCE
    else:
        close = difflib.get_close_matches(key, sorted(DEPLOYMENT_FIELDS), n=1)
        why = (f"not a key a profile can set{f' (did you mean {close[0]}?)' if close else ''}"
               f"; a profile sets: {allowed}")
    raise ConfigError(f"profile {profile.name}: {key}: refused: {why}", subject=profile.source)


def _check_no_secret(profile: Profile, key: str, value: Any) -> None:
    """A credential in a profile is a reference (``${VAR}``, ``${file:PATH}``), never text."""
    where = f"profile {profile.name}: {key}:"
    if key == "state" and isinstance(value, str):
        parts = urlsplit(_REFERENCE_RE.sub(_REFERENCE, value))
        query = [k for k, v in parse_qsl(parts.query) if is_credential_key(k) and v != _REFERENCE]
        if parts.password not in (None, "", _REFERENCE) or query:
            raise ConfigError(f"{where} refused: the database password is written out; write "
                              "it as ${VAR} (from the environment) or ${file:PATH} (e.g. "
                              "${file:/run/secrets/pg}), never in a profile",
                              subject=profile.source)
    if key == "storage_options" and isinstance(value, dict):
        for name, option in _leaves(value):
            if is_credential_key(name.rsplit(".", 1)[-1]) and isinstance(option, str) and (
                    _REFERENCE_RE.fullmatch(option) is None):
                raise ConfigError(f"{where} {name}: refused: a credential written out; write "
                                  "it as ${VAR} or ${file:PATH}, never in a profile",
                                  subject=profile.source)


def _leaves(value: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for key, item in value.items():
        name = f"{prefix}{key}"
        found += _leaves(item, f"{name}.") if isinstance(item, dict) else [(name, item)]
    return found


def _resolve_references(profile: Profile, key: str, value: Any,
                        environ: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_references(profile, f"{key}.{k}", v, environ)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_references(profile, key, v, environ) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        path, variable = match.group(1), match.group(2)
        if variable is not None:
            if variable not in environ:
                raise ConfigError(f"profile {profile.name}: {key}: the environment variable "
                                  f"{variable} is not set", subject=profile.source)
            return environ[variable]
        file = Path(path).expanduser()
        file = file if file.is_absolute() else profile.folder / file
        try:
            return file.read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"profile {profile.name}: {key}: cannot read ${{file:{path}}} "
                              f"({type(exc).__name__})", subject=profile.source) from None

    return _REFERENCE_RE.sub(one, value)


def _absolute_locations(settings: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Relative locations of a profile resolved against its file's folder (the study
    file's own resolve against the study's)."""
    def absolute(location: str) -> str:
        if local_path(location) != location:  # a URI (file:// included): as written
            return location
        path = Path(location).expanduser()
        return str(path if path.is_absolute() else (folder / path).resolve())

    out = dict(settings)
    if isinstance(out.get("output"), str):
        out["output"] = absolute(out["output"])
    if isinstance(out.get("input"), str | list):
        given = out["input"]
        out["input"] = ([absolute(x) if isinstance(x, str) else x for x in given]
                        if isinstance(given, list) else absolute(given))
    state = out.get("state")
    if isinstance(state, str) and state.startswith("sqlite:///") and ":memory:" not in state:
        out["state"] = "sqlite:///" + absolute(state.removeprefix("sqlite:///"))
    audit = out.get("audit")
    if isinstance(audit, dict):
        out["audit"] = {k: absolute(v) if k in ("anchors", "key_file") and isinstance(v, str)
                        else v for k, v in audit.items()}
    return out


def _merged(study: Mapping[str, Any], profile: Mapping[str, Any]) -> dict[str, Any]:
    """``study`` with ``profile`` over it: mappings merge key by key, the rest replaces."""
    merged = dict(study)
    for key, value in profile.items():
        below = merged.get(key)
        merged[key] = (_merged(below, value) if isinstance(below, dict)
                       and isinstance(value, dict) else value)
    return merged
