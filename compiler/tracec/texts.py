"""Inputs without teacher labels: the texts of a JSONL file (``tracec embed``, ``tracec route``).

Each line is a JSON object with the text under ``input`` (or its aliases
``text``, ``prompt``); ``teacher`` and ``label`` are read when present (for
coverage and agreement), never required.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from tracec.errors import TraceFileError
from tracec.traces import ALIASES, AliasConflict, describe, resolve_aliases


@dataclass(frozen=True)
class Texts:
    path: str
    inputs: tuple[str, ...]
    teachers: Optional[tuple[str, ...]]   # None unless every line has a teacher
    labels: tuple[Optional[str], ...]

    @property
    def n(self) -> int:
        return len(self.inputs)


def read_texts(path: Union[str, Path]) -> Texts:
    """Read the texts of a JSONL file; ``TraceFileError`` naming the line otherwise."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise TraceFileError(name, None, f"expected a readable JSONL file, found "
                                         f"{e.strerror or e}") from None
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise TraceFileError(name, None, "expected one JSON object per line, found no records")
    inputs, teachers, labels = [], [], []
    for lineno, raw in enumerate(lines, start=1):
        try:
            obj = json.loads(raw.decode("utf-8"))
            obj = resolve_aliases(obj) if isinstance(obj, dict) else obj
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise TraceFileError(name, lineno, f"expected a UTF-8 JSON object, found unreadable "
                                               f"data ({e})") from None
        except AliasConflict as e:
            raise TraceFileError(name, lineno, str(e), e.field) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("input"), str):
            found = describe(obj.get("input")) if isinstance(obj, dict) and "input" in obj \
                else (describe(obj) if not isinstance(obj, dict) else "no such key")
            keys = ", ".join(map(repr, ("input", *ALIASES["input"])))
            raise TraceFileError(name, lineno, f"expected a string under one of the keys {keys}, "
                                               f"found {found}", "input")
        inputs.append(obj["input"])
        teacher = obj.get("teacher")
        teachers.append(teacher if isinstance(teacher, str) and teacher else None)
        label = obj.get("label")
        labels.append(label if isinstance(label, str) else None)
    return Texts(name, tuple(inputs),
                 None if any(t is None for t in teachers) else tuple(teachers), tuple(labels))
