"""wearflow: reproducible, auditable processing of wearable-sensor studies.

The public names are imported when first used (PEP 562), so that ``wearflow --help``
and ``import wearflow.errors`` do not pay for the database, pandas and the readers.
"""

import importlib as _importlib
import typing as _typing
from importlib.metadata import version as _version

if _typing.TYPE_CHECKING:
    from wearflow.config import Study
    from wearflow.errors import WearflowError
    from wearflow.profiles import load_study
    from wearflow.recording import DeviceInfo, Recording
    from wearflow.runner import RunReport, run_study
    from wearflow.services.export import load_results
    from wearflow.services.status import study_status

__version__ = _version("wearflow")

_HOMES = {
    "DeviceInfo": "wearflow.recording",
    "Recording": "wearflow.recording",
    "RunReport": "wearflow.runner",
    "Study": "wearflow.config",
    "WearflowError": "wearflow.errors",
    "load_results": "wearflow.services.export",
    "load_study": "wearflow.profiles",
    "run_study": "wearflow.runner",
    "study_status": "wearflow.services.status",
}

__all__ = [
    "DeviceInfo",
    "Recording",
    "RunReport",
    "Study",
    "WearflowError",
    "__version__",
    "load_results",
    "load_study",
    "run_study",
    "study_status",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'wearflow' has no attribute {name!r}")
    value = getattr(_importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
