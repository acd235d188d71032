"""Compiled kernels: ``numba.njit``, imported and compiled only when a kernel first runs.

The kernels (:mod:`wearflow.streaming.kernels`, :mod:`wearflow.readers._cwa_kernels`,
:mod:`wearflow.readers._finish_kernels`) are compiled on their first call and cached
on disk (numba's ``cache=True``: in ``__pycache__`` next to their module, or in the
user's cache folder when that is read-only, or in ``NUMBA_CACHE_DIR``), so a worker
process loads them in under a second; where no cache folder can be written they
compile once per process (a few seconds). Numba itself (about 1.5 s of CPU to
import, 0.2 GB of resident memory with LLVM) is imported only then: a command that
never decodes a sample (``wearflow status``, the dashboard) does not pay for it.
Each kernel keeps a plain numpy reference beside it, and the tests compare the two
to the bit.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])

_LOCK = threading.Lock()


class _Lazy:
    """A kernel not compiled yet: its first call compiles every kernel of its module."""

    def __init__(self, function: Callable[..., Any]) -> None:
        functools.update_wrapper(self, function)
        self.function = function
        self.compiled: Callable[..., Any] | None = None

    def __call__(self, *args: Any) -> Any:
        if self.compiled is None:
            _compile_module(self.function.__module__)
        assert self.compiled is not None
        return self.compiled(*args)


def jit(function: F) -> F:
    """Mark ``function`` as a kernel (``numba.njit(cache=True, nogil=True)`` on first use)."""
    return cast(F, _Lazy(function))


def _compile_module(module_name: str) -> None:
    """Replace every lazy kernel of the module by its numba dispatcher (kernels calling
    kernels find dispatchers among the module's globals when numba types them)."""
    import numba  # here: its import is the cost this module defers

    with _LOCK:
        module = sys.modules[module_name]
        for name, value in list(vars(module).items()):
            if isinstance(value, _Lazy) and value.compiled is None:
                try:
                    value.compiled = numba.njit(cache=True, nogil=True)(value.function)
                except RuntimeError:  # "cannot cache function ...: no locator available"
                    value.compiled = numba.njit(cache=False, nogil=True)(value.function)
                setattr(module, name, value.compiled)


def prepare(*module_names: str) -> None:
    """Import numba and load (or compile) the kernels of these modules now, not in a
    task (a worker's warm-up): each module's ``warm()`` calls its kernels with the
    argument types its callers use, on a few values."""
    for name in module_names:
        module = importlib.import_module(name)
        _compile_module(name)
        module.warm()
