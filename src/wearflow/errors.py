"""The wearflow exception tree.

Every error wearflow raises derives from :class:`WearflowError` and names the
object it is about (a file URI, a study file, a task key) and carries a
problem tag, so that callers can report it without a traceback::

    WearflowError                      tag: ERROR
    ├── ConfigError                    PIPELINE_ISSUE  study file missing, unreadable or invalid,
    │                                                  or an optional extra not installed
    ├── StorageError                   PIPELINE_ISSUE  a location cannot be listed, read or written
    ├── StateError                     PIPELINE_ISSUE  the state database cannot be used
    ├── SolutionError                  PIPELINE_ISSUE  a solution cannot be loaded or fingerprinted
    │   └── SoftwareMismatchError                      a worker's wearflow, environment lock or
    │                                                  solution differs from its coordinator's
    ├── DeliveryError                  PIPELINE_ISSUE  an alert could not be sent (webhook, e-mail);
    │                                                  transient: tried again later
    ├── DataError                      DATA_ISSUE      the input itself is bad
    │   ├── ReaderError                                a sensor file cannot be decoded
    │   └── NameParseError                             a file name does not parse into its fields
    ├── AlgorithmError                 ALGORITHM_ISSUE a solution failed on valid data
    └── OutputExistsError              PIPELINE_ISSUE  a write-once output already exists

An error never carries a credential: its message and subject are masked as
:func:`wearflow.redact.redact_text` masks a URL's password and tokens, so that no error
line, log, issue or alert repeats one.
"""

from __future__ import annotations

from enum import StrEnum

from wearflow.redact import redact_text

# exit codes of every command and of run_study's report: 0 every current file is done;
# 1 some files failed or were held (the rest completed); 2 the command could not do its job
EXIT_OK, EXIT_SOME_FAILED, EXIT_CANNOT_RUN = 0, 1, 2


class Tag(StrEnum):
    """Problem tags used in logs, the issues queue and the dashboard."""

    ERROR = "ERROR"
    PIPELINE_ISSUE = "PIPELINE_ISSUE"
    ALGORITHM_ISSUE = "ALGORITHM_ISSUE"
    DATA_ISSUE = "DATA_ISSUE"
    METADATA_ISSUE = "METADATA_ISSUE"
    WAITING = "WAITING"


class WearflowError(Exception):
    """Root of every wearflow error.

    Parameters
    ----------
    message
        One line saying what is wrong and, where known, how to resolve it.
    subject
        What the error is about: a file URI, a study file path, a task key.
    """

    tag: Tag = Tag.ERROR
    # True when trying again later may succeed (a network or storage hiccup): the
    # task is retried with backoff instead of failing at once
    transient: bool = False

    def __init__(self, message: str, *, subject: str | None = None,
                 transient: bool | None = None) -> None:
        self.message = message = redact_text(message)
        self.subject = subject = None if subject is None else redact_text(subject)
        if transient is not None:
            self.transient = transient
        super().__init__(f"{subject}: {message}" if subject else message)


def one_line(text: str, limit: int = 300) -> str:
    """``text`` with every run of white space (line breaks too) made one space, cut to
    ``limit`` characters: the form of every message wearflow records or prints."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class ConfigError(WearflowError):
    tag = Tag.PIPELINE_ISSUE


class StorageError(WearflowError):
    tag = Tag.PIPELINE_ISSUE


class StateError(WearflowError):
    tag = Tag.PIPELINE_ISSUE


class SolutionError(WearflowError):
    tag = Tag.PIPELINE_ISSUE


class SoftwareMismatchError(SolutionError):
    """A worker refuses a task planned with other software than its own: another wearflow
    version, another environment lock, another solution fingerprint. Not transient: the
    task fails with it until the workers are fixed and ``wearflow retry`` runs it again."""


class DeliveryError(WearflowError):
    tag = Tag.PIPELINE_ISSUE
    transient = True


class DataError(WearflowError):
    tag = Tag.DATA_ISSUE


class ReaderError(DataError):
    pass


class NameParseError(DataError):
    pass


class AlgorithmError(WearflowError):
    tag = Tag.ALGORITHM_ISSUE


class OutputExistsError(WearflowError):
    tag = Tag.PIPELINE_ISSUE
