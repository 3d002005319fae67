"""What every trace format shares: the row view, Skip, FormatError and dotted field paths.

A format turns one parsed record (a JSON object from one line) into rows.  Each
row is a *view*: a dict with the canonical keys ``input`` and ``teacher`` (and
``id``, ``label``, ``timestamp`` when the format has them) plus ``record``, the
unit the row came from (the line's object, an OTel span, a joined batch pair).
``--input-field`` / ``--teacher-field`` are dotted paths into that view.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Union


@dataclass(frozen=True)
class Skip:
    """A record of another kind (a non-LLM span, a failed call): counted, not an error."""

    reason: str


class FormatError(ValueError):
    """A record of the expected kind whose structure is wrong; becomes ``TraceFileError``."""

    def __init__(self, field: str | None, message: str):
        self.field, self.message = field, message
        super().__init__(message)


View = dict
Rows = Iterable[Union[View, Skip]]


def view(input: Any, teacher: Any, record: Any, *, id: Any = None, timestamp: Any = None,
         label: Any = None) -> View:
    """A row of a log format.  Optional metadata of another type is dropped, not an error
    (logs put numbers or objects there); ``input``/``teacher`` are validated by the loader."""
    return {"input": input, "teacher": teacher, "record": record,
            "id": id if isinstance(id, (str, int)) and not isinstance(id, bool) else None,
            "timestamp": timestamp if isinstance(timestamp, str) else None,
            "label": label if isinstance(label, str) and label else None}


def kind(value: Any) -> str:
    """A short name for a JSON value's type, for error messages."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def get(obj: Any, key: str, expected: type, where: str, *, required: bool = True) -> Any:
    """``obj[key]`` checked to be an ``expected`` (None when absent and not required)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None and not required:
        return None
    if not isinstance(value, expected):
        name = {dict: "an object", list: "a list", str: "a string"}[expected]
        found = "nothing (the key is missing)" if not isinstance(obj, dict) or key not in obj \
            else kind(value)
        raise FormatError(f"{where}{key}", f"expected {name}, found {found}")
    return value


def maybe_json(value: Any) -> Any:
    """A string holding a JSON object or list is parsed; anything else is returned as is."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def resolve(obj: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``obj``; list items by index (``choices.0``), and a
    string holding JSON (a completion such as ``{"label": "x"}``) is parsed on the way down."""
    value = obj
    walked: list[str] = []
    for step in path.split("."):
        value = maybe_json(value)
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.lstrip("-").isdigit() and -len(value) <= int(step) < len(value):
            value = value[int(step)]
        else:
            at = ".".join(walked) or "the record"
            found = (f"only the keys {', '.join(map(repr, sorted(value)))}" if isinstance(value, dict)
                     else f"{kind(value)}" + (f" of {len(value)} items" if isinstance(value, list) else ""))
            raise FormatError(path, f"missing: expected a value at {path!r}, found no {step!r} "
                                    f"in {at} ({found})")
        walked.append(step)
    return value
