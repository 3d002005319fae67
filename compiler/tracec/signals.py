"""SIGTERM as an exception, so ``finally`` and ``except BaseException`` clean up.

``terminate_as_exception()`` turns SIGTERM into :class:`Terminated` for the
duration of a ``with`` block (main thread only; elsewhere it does nothing) and
restores the previous handler on exit.  ``critical()`` holds SIGTERM and SIGINT
back over a few steps that must not be split (the renames of publish): a signal
that arrives inside is raised when the block ends.  The CLI maps ``Terminated``
to exit 143 and ``KeyboardInterrupt`` to 130.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator, Optional

from tracec_runtime.errors import Terminated  # one class for both command lines

__all__ = ["Terminated", "critical", "terminate_as_exception"]


_held: list[Optional[int]] = []  # one slot per active critical() block: the signal held back


def _raise_for(signum: int):
    return Terminated(signum) if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_sigterm(signum, _frame):
    raise Terminated(signum)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def terminate_as_exception() -> Iterator[None]:
    """Raise :class:`Terminated` in the main thread when SIGTERM arrives inside the block."""
    if not _main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """Hold SIGTERM and SIGINT back until the block ends, then raise the first one that came."""
    if not _main_thread():
        yield
        return

    def hold(signum, _frame):
        _held[-1] = _held[-1] or signum

    _held.append(None)
    before = {s: signal.signal(s, hold) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    except BaseException as exc:
        pending = _release(before)
        if pending is not None and not _held:
            raise _raise_for(pending) from exc
        raise
    pending = _release(before)
    if pending is not None and not _held:
        raise _raise_for(pending)


def _release(before: dict) -> Optional[int]:
    """Restore the handlers; the held signal, passed on to an enclosing block if nested."""
    for s, handler in before.items():
        signal.signal(s, handler)
    pending = _held.pop()
    if pending is not None and _held:
        _held[-1] = _held[-1] or pending
    return pending
