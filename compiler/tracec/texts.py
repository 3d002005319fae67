"""Inputs without teacher labels: the texts of a trace source (``tracec embed``, ``tracec route``).

The same loader as compiling (``tracec.loader.load_traces``: every format, ``.gz``, ``-``,
field paths, the bounded JSON-line parser), with ``require_teacher=False``: ``teacher`` and
``label`` are read when present (for coverage and agreement), never required.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from tracec.loader import load_traces
from tracec.traces import Traces


@dataclass(frozen=True)
class Texts:
    path: str
    inputs: tuple[str, ...]
    teachers: Optional[tuple[str, ...]]   # None unless every row has a teacher
    labels: tuple[Optional[str], ...]
    traces: Traces

    @property
    def n(self) -> int:
        return len(self.inputs)


def read_texts(path: Union[str, Path], **trace_options) -> Texts:
    """Read the texts of a trace source; ``TraceFileError`` naming the line otherwise."""
    rows = load_traces(path, require_teacher=False, **trace_options)
    teachers = None if any(t is None for t in rows.teachers) else tuple(rows.teachers)
    return Texts(rows.path, tuple(rows.inputs), teachers, tuple(rows.labels), rows)
