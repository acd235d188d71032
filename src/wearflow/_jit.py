"""Compiled kernels: ``numba.njit`` with its on-disk cache where one can be written.

The kernels (:mod:`wearflow.streaming.kernels`, :mod:`wearflow.readers._cwa_kernels`)
are compiled on their first call and cached on disk (numba's ``cache=True``: in
``__pycache__`` next to their module, or in the user's cache folder when that is
read-only, or in ``NUMBA_CACHE_DIR``), so a worker process loads them in
milliseconds; where no cache folder can be written they compile once per process
(a few seconds). Numba adds about 0.2 GB to a process's resident memory (LLVM).
Each kernel keeps a plain numpy reference beside it, and the tests compare the two
to the bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])


def jit(function: F) -> F:
    """``numba.njit`` with the on-disk cache where a cache folder can be written."""
    compiled: Any
    try:
        compiled = numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        compiled = numba.njit(cache=False, nogil=True)(function)
    return cast(F, compiled)
