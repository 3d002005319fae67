"""SIGTERM as an exception, so staging directories are cleaned up on the way out.

``Terminated`` derives from ``BaseException`` (like ``KeyboardInterrupt``): ``except
Exception`` does not swallow it, ``except BaseException`` cleanup (``bundle.staging``)
runs.  The CLI maps it to exit code 143.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


class Terminated(BaseException):
    """The process received SIGTERM."""


def _raise(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Terminated()


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` in the main thread (no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
