"""Trace input: one JSON object per line, ``input`` text and the ``teacher`` label.

``load_traces`` reads a JSONL file strictly (UTF-8, one object per line) and
raises ``TraceFileError`` naming the file, the 1-based line and the field at
the first problem.  The format is documented in ``docs/traces.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any, Optional, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, model_validator

from tracec import jsonline
from tracec.errors import TraceFileError
from tracec.schemas import register
from tracec_runtime.canonical import canonical_file_bytes

#: Canonical field -> accepted alternative keys, in the order they are looked up.
ALIASES: dict[str, tuple[str, ...]] = {
    "input": ("text", "prompt"),
    "teacher": ("llm_label", "output", "prediction"),
}

#: What each field must be, in the words used by error messages.
EXPECTED: dict[str, str] = {
    "input": "a non-empty string",
    "teacher": "a non-empty string",
    "id": "a string, an integer or null",
    "label": "a non-empty string or null",
    "timestamp": "a string or null",
    "metadata": "an object or null",
}

NonEmpty = Annotated[StrictStr, Field(min_length=1)]


class AliasConflict(ValueError):
    """Two keys naming the same field carry different values."""

    def __init__(self, field: str, keys: list[str], values: list[Any]):
        self.field = field
        shown = ", ".join(f"{k!r}={describe(v)}" for k, v in zip(keys, values))
        super().__init__(f"expected one value for {field!r} (keys {', '.join(map(repr, keys))} "
                         f"are aliases of it), found different values: {shown}")


def resolve_aliases(obj: dict[str, Any]) -> dict[str, Any]:
    """Return ``obj`` with alias keys renamed to their canonical field.

    Several keys for one field are fine when their values are equal; otherwise
    ``AliasConflict`` is raised.
    """
    out = dict(obj)
    for field, alternatives in ALIASES.items():
        keys = [k for k in (field, *alternatives) if k in obj]
        if not keys:
            continue
        values = [obj[k] for k in keys]
        if any(v != values[0] or type(v) is not type(values[0]) for v in values[1:]):
            raise AliasConflict(field, keys, values)
        for k in keys:
            del out[k]
        out[field] = values[0]
    return out


def _schema_with_aliases(schema: dict[str, Any]) -> None:
    """Make the JSON Schema accept the alias keys (exactly what the loader accepts)."""
    props = schema["properties"]
    required = [r for r in schema.get("required", []) if r not in ALIASES]
    any_of_required = []
    for field, alternatives in ALIASES.items():
        for alt in alternatives:
            props[alt] = {**props[field], "description": f"alias of {field!r}", "title": alt}
        any_of_required.append({"anyOf": [{"required": [k]} for k in (field, *alternatives)]})
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)
    schema["allOf"] = any_of_required


class TraceRecord(BaseModel):
    """One trace: the text sent to the LLM and the label the LLM returned.

    Unknown keys are ignored (production logs carry extra fields).
    """

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=_schema_with_aliases,
                              title="tracec trace record")

    input: NonEmpty = Field(description="the text that was classified; aliases: 'text', 'prompt'")
    teacher: NonEmpty = Field(description="the label the LLM (the teacher) returned; aliases: "
                                          "'llm_label', 'output', 'prediction'")
    id: Optional[Union[StrictStr, StrictInt]] = Field(None, description="an identifier, kept "
                                                      "for reference only")
    label: Optional[NonEmpty] = Field(None, description="the ground-truth label; used for "
                                                         "evaluation only, never for training")
    timestamp: Optional[StrictStr] = Field(None, description="when the trace was recorded "
                                                            "(free-form string)")
    metadata: Optional[dict[str, Any]] = Field(None, description="free-form, ignored by tracec")

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        return resolve_aliases(data) if isinstance(data, dict) else data


register("trace-record.schema.json", TraceRecord)


class _Unlabelled(TraceRecord):
    """A record read with ``require_teacher=False`` (e.g. traffic to embed): teacher optional."""

    teacher: Optional[NonEmpty] = None


@dataclass(frozen=True)
class Traces:
    """The columns of a trace file, row-aligned with its embeddings."""

    path: str
    inputs: tuple[str, ...]
    teachers: tuple[str, ...]
    labels: tuple[Optional[str], ...]
    ids: tuple[Union[str, int, None], ...]
    timestamps: tuple[Optional[str], ...]
    sha256: Optional[str]  # of the source's (decompressed) bytes; None for in-memory records
    format: str = "jsonl"
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)  # reason -> rows of other kinds
    #: Per row: usable for certification (a uniform traffic sample); None means every row is.
    certifiable: Optional[tuple[bool, ...]] = None
    sampling: Optional[dict[str, Any]] = None  # decision-log counts (formats.decision_log)
    #: Decision logs only: every decision line (``formats.decision_log.Logged``), for --previous.
    decisions: Optional[tuple] = dataclasses.field(default=None, repr=False, compare=False)

    @functools.cached_property
    def rows_sha256(self) -> str:
        """SHA-256 of the rows as canonical JSON lines ``{"input":...,"teacher":...}``: the same
        for the same rows whatever the format, file or in-memory source (the manifest's digest)."""
        h = hashlib.sha256()
        for text, teacher in zip(self.inputs, self.teachers):
            h.update(canonical_file_bytes({"input": text, "teacher": teacher}))
        return h.hexdigest()

    def summary(self) -> dict[str, Any]:
        """What was read: the format, the rows kept, the rows skipped by reason and (decision
        logs only, else None) the rows by use: the same document as ``compile --json``."""
        return {"format": self.format, "rows": self.n, "skipped": dict(self.skipped),
                "sampling": None if self.sampling is None else dict(self.sampling)}

    @property
    def n(self) -> int:
        return len(self.inputs)

    def __len__(self) -> int:
        return len(self.inputs)


def describe(value: Any) -> str:
    """A short rendering of a JSON value and its type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return "an empty string" if value == "" else f"{_short(json.dumps(value, ensure_ascii=False))} (str)"
    text = json.dumps(value, ensure_ascii=False, allow_nan=True, default=repr)
    return f"{_short(text)} ({type(value).__name__})"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        self.key = key
        super().__init__(key)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _parse_line(path: str, lineno: int, raw: bytes) -> dict[str, Any]:
    """The one place a line's bytes become a Python object (a JSON object)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TraceFileError(path, lineno, f"expected UTF-8 text, found byte 0x{raw[e.start]:02x} "
                                           f"at byte {e.start + 1} of the line") from None
    if not text.strip():
        raise TraceFileError(path, lineno, "expected a JSON object, found a blank line (blank "
                                           "lines are only allowed at the end of the file, so "
                                           "that line N is always record N)")
    try:
        obj = jsonline.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except jsonline.LineError as e:  # depth, integer length, lone surrogates
        raise TraceFileError(path, lineno, e.message, e.field) from None
    except json.JSONDecodeError as e:
        raise TraceFileError(path, lineno, f"expected a JSON object, found malformed JSON "
                                           f"({e.msg} at column {e.colno})") from None
    except _DuplicateKey as e:
        raise TraceFileError(path, lineno, f"expected each key once per object, found {e.key!r} "
                                           f"twice", e.key) from None
    if not isinstance(obj, dict):
        raise TraceFileError(path, lineno, f"expected a JSON object, found {describe(obj)}")
    return obj


def _validate(path: str, lineno: int, obj: dict[str, Any], require_teacher: bool = True) -> TraceRecord:
    try:
        obj = resolve_aliases(obj)
    except AliasConflict as e:
        raise TraceFileError(path, lineno, str(e), e.field) from None
    for field, alternatives in ALIASES.items():
        if field not in obj and (require_teacher or field != "teacher"):
            found = (f"only the keys {', '.join(map(repr, sorted(obj)))}" if obj
                     else "an empty object")
            accepted = ", ".join(map(repr, (field, *alternatives)))
            raise TraceFileError(path, lineno, f"missing: expected {EXPECTED[field]} under one of "
                                               f"the keys {accepted}, found {found}", field)
    try:
        return (TraceRecord if require_teacher else _Unlabelled).model_validate(obj)
    except ValidationError as e:
        err = e.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else None
        expected = EXPECTED.get(field or "", "a valid value")
        raise TraceFileError(path, lineno, f"expected {expected}, found {describe(err['input'])}",
                             field) from None


def load_traces(source: Any, **options: Any) -> Traces:
    """Read traces from a path or an iterable of mappings (``tracec.loader.load_traces``:
    formats, field paths, gzip, stdin, skip counts); raise ``TraceFileError`` at the first problem."""
    from tracec.loader import load_traces as load

    return load(source, **options)


def label_index(teachers: Union[tuple[str, ...], list[str]]) -> tuple[list[str], np.ndarray]:
    """The sorted label list and each teacher label's index in it (int64)."""
    labels = sorted(set(teachers))
    position = {label: i for i, label in enumerate(labels)}
    return labels, np.fromiter((position[t] for t in teachers), dtype=np.int64, count=len(teachers))
