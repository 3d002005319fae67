"""Keep large temporary blocks out of the glibc heap while the embedder session is built.

Building the session folds the int8 weights into fp32 tensors through temporary buffers of
megabytes.  glibc raises its mmap threshold each time such a block is freed, so the next
ones come from the heap, whose freed space is not returned: the peak RSS of a cold start
varied from 194 to 213 MiB.  A fixed threshold (128 KiB, glibc's own default before it
adapts) keeps every large block mmap-backed and returned on free: 178 MiB, run after run
(docs/embedder.md).  Process-wide, set once; off with ``TRACEC_RUNTIME_MALLOPT=0`` or when
the process already sets ``MALLOC_MMAP_THRESHOLD_``; a no-op outside glibc.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_MMAP_THRESHOLD = -3          # glibc <malloc.h>
THRESHOLD_BYTES = 128 * 1024
_state = {"set": False}


def fix_mmap_threshold() -> bool:
    """Set glibc's mmap threshold once; True when it is (now or before) set by us."""
    if _state["set"]:
        return True
    if (not sys.platform.startswith("linux") or os.environ.get("TRACEC_RUNTIME_MALLOPT") == "0"
            or "MALLOC_MMAP_THRESHOLD_" in os.environ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):   # not glibc
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _state["set"] = mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES) == 1
    return _state["set"]
