"""Optional dependencies: the heavy integrations are extras of the wearflow package.

A feature that needs one calls :func:`require` before importing it, so that a
missing extra is a one-line :class:`~wearflow.errors.ConfigError` saying what
to install, not a traceback::

    extra      module        needed by
    dask       distributed   the dask executor (``executor: dask``, ``--executor dask``)
    s3         s3fs          ``s3://`` storage locations
    s3         boto3         SQS notifications (``notifications: sqs_queue_url``)
    postgres   psycopg       a ``postgresql+psycopg://`` state database
    watch      watchdog      ``wearflow watch`` on a local folder
    serve      fastapi       ``wearflow serve`` (the dashboard)

``pip install 'wearflow[all]'`` installs every extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from wearflow.errors import ConfigError
from wearflow.redact import redact_url

# state URL scheme -> (module, extra) of the database driver wearflow ships as an extra
_STATE_DRIVERS = {"postgresql+psycopg": ("psycopg", "postgres")}


def require(module: str, extra: str, what: str, *, subject: str | None = None) -> ModuleType:
    """Import ``module`` of the optional dependency group ``extra`` and return it.

    Parameters
    ----------
    module
        The top-level module to import, e.g. ``"distributed"``.
    extra
        The wearflow extra that installs it, e.g. ``"dask"``.
    what
        The feature that needs it, as the error's sentence starts, e.g. ``"the dask executor"``.
    subject
        What the error is about (the executor name, a location, a queue URL).

    Raises
    ------
    ConfigError
        When the module cannot be imported; the message names the extra to install.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        why = "" if isinstance(exc, ModuleNotFoundError) else f" (importing it failed: {exc})"
        raise ConfigError(f"{what} needs the optional dependency {module}{why}: "
                          f"pip install 'wearflow[{extra}]'", subject=subject) from exc


def require_state_driver(url: str) -> None:
    """Check that the database driver of a state URL is installed, before an engine is made.

    SQLAlchemy's ``create_engine`` raises a bare ``ModuleNotFoundError`` for a
    missing driver; this names the extra instead. URLs of other drivers pass.

    Raises
    ------
    ConfigError
        When the URL needs an extra that is not installed (subject: the URL
        without its password).
    """
    scheme = url.partition("://")[0].lower()
    if scheme in _STATE_DRIVERS:
        module, extra = _STATE_DRIVERS[scheme]
        require(module, extra, "a PostgreSQL state database",
                subject=redact_url(url))
