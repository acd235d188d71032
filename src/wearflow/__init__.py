"""wearflow: reproducible, auditable processing of wearable-sensor studies."""

from importlib.metadata import version as _version

from wearflow.config import Study, load_study
from wearflow.errors import WearflowError
from wearflow.recording import DeviceInfo, Recording
from wearflow.runner import RunReport, run_study
from wearflow.services.export import load_results
from wearflow.services.status import study_status

__version__ = _version("wearflow")

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
