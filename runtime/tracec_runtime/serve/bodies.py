"""Request bodies of the routing service: strict JSON in, typed values out.

Every problem is a :class:`RequestError` with the HTTP status, a stable code,
the offending field and a message; the app renders them in one JSON shape:
``{"error": {"status", "code", "message", "field"}}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from tracec_runtime.canonical import strict_json

__all__ = ["Limits", "RequestError", "RouteRequest", "FeedbackItem", "parse_json",
           "parse_route", "parse_feedback", "parse_predict"]


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 4 * 1024 * 1024
    max_batch: int = 1024
    max_text_chars: int = 20_000
    max_depth: int = 8


class RequestError(Exception):
    def __init__(self, status: int, code: str, message: str, field: Optional[str] = None):
        self.status, self.code, self.message, self.field = status, code, message, field
        super().__init__(message)

    def document(self) -> dict:
        return {"error": {"status": self.status, "code": self.code, "message": self.message,
                          "field": self.field}}


_NUMBERS = frozenset((int, float))


def _invalid(field: str, message: str) -> RequestError:
    return RequestError(422, "invalid_field", message, field)


def parse_json(raw: bytes, limits: Limits) -> dict:
    """Bytes -> a JSON object, or a 400 naming what is wrong."""
    try:  # the runtime's one strict parser: depth bounded before parsing, no NaN, no duplicates
        doc = strict_json(raw, floats=True, max_depth=limits.max_depth, max_int_digits=4300)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(400, "malformed_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RequestError(400, "malformed_json",
                           f"request body must be a JSON object; found {type(doc).__name__}")
    return doc


def _only(doc: dict, allowed: set[str]) -> None:
    extra = sorted(set(doc) - allowed)
    if extra:
        raise _invalid(extra[0], f"unknown field {extra[0]!r}; allowed: {', '.join(sorted(allowed))}")


@dataclass(frozen=True)
class RouteRequest:
    kind: str                      # "text" or "embedding"
    single: bool                   # the body used text/embedding (not texts/embeddings)
    texts: Optional[list] = None
    matrix: Optional[np.ndarray] = None

    @property
    def n(self) -> int:
        return len(self.texts) if self.kind == "text" else int(self.matrix.shape[0])


def _matrix(value: Any, field: str, dim: int, limits: Limits, single: bool) -> np.ndarray:
    rows = [value] if single else value
    if not isinstance(rows, list) or (not single and not rows):
        raise _invalid(field, f"{field!r} must be a {'list of numbers' if single else 'non-empty list of lists of numbers'}")
    if len(rows) > limits.max_batch:
        raise _invalid(field, f"{field!r} holds {len(rows)} rows; at most {limits.max_batch} per request")
    for i, row in enumerate(rows):
        where = field if single else f"{field}[{i}]"
        if not isinstance(row, list) or len(row) != dim:
            found = len(row) if isinstance(row, list) else type(row).__name__
            raise _invalid(where, f"{where!r} must be a list of {dim} numbers "
                                  f"(the bundle's embedding dimension); found {found}")
        if not _NUMBERS.issuperset(map(type, row)):  # C-speed check; the loop only names the culprit
            j, v = next((j, v) for j, v in enumerate(row) if type(v) not in _NUMBERS)
            raise _invalid(f"{where}[{j}]", f"{where}[{j}] must be a finite number; found {v!r:.40}")
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            x = np.asarray(rows, dtype=np.float32)
    except (OverflowError, ValueError):  # an integer beyond any float: name it
        r, c = next((r, c) for r, row in enumerate(rows) for c, v in enumerate(row)
                    if type(v) is int and abs(v) > 2 ** 128)
        where = f"{field}[{r}][{c}]" if not single else f"{field}[{c}]"
        raise _invalid(where, f"{where} is outside the float32 range") from None
    if not np.isfinite(x).all():  # JSON has no NaN; an integer or float too large for float32
        r, c = (int(v) for v in np.argwhere(~np.isfinite(x))[0])
        where = f"{field}[{r}][{c}]" if not single else f"{field}[{c}]"
        raise _invalid(where, f"{where} must be a finite number within the float32 range; "
                              f"found {rows[r][c]!r:.40}")
    return np.ascontiguousarray(x)


def _texts(value: Any, field: str, limits: Limits, single: bool) -> list:
    items = [value] if single else value
    if not isinstance(items, list) or (not single and not items):
        raise _invalid(field, f"{field!r} must be {'a string' if single else 'a non-empty list of strings'}")
    if len(items) > limits.max_batch:
        raise _invalid(field, f"{field!r} holds {len(items)} texts; at most {limits.max_batch} per request")
    for i, t in enumerate(items):
        where = field if single else f"{field}[{i}]"
        if not isinstance(t, str):
            raise _invalid(where, f"{where!r} must be a string; found {type(t).__name__}")
        if len(t) > limits.max_text_chars:
            raise _invalid(where, f"{where!r} is {len(t)} characters; at most {limits.max_text_chars}")
    return items


def parse_route(doc: dict, dim: int, limits: Limits) -> RouteRequest:
    _only(doc, {"text", "texts", "embedding", "embeddings"})
    given = [k for k in ("text", "texts", "embedding", "embeddings") if k in doc]
    if len(given) != 1:
        raise _invalid(given[1] if len(given) > 1 else "text",
                       "exactly one of 'text', 'texts', 'embedding', 'embeddings' is required"
                       + (f"; found {', '.join(given)}" if given else ""))
    key = given[0]
    single = key in ("text", "embedding")
    if key.startswith("text"):
        return RouteRequest("text", single, texts=_texts(doc[key], key, limits, single))
    return RouteRequest("embedding", single, matrix=_matrix(doc[key], key, dim, limits, single))


def parse_predict(doc: dict, dim: int, limits: Limits, batch: bool) -> RouteRequest:
    """TRACER's shapes: ``{"embedding": [...]}`` or ``{"embeddings": [[...], ...]}``."""
    key = "embeddings" if batch else "embedding"
    _only(doc, {key})
    if key not in doc:
        raise _invalid(key, f"missing {key!r} field")
    return RouteRequest("embedding", not batch, matrix=_matrix(doc[key], key, dim, limits, not batch))


@dataclass(frozen=True)
class FeedbackItem:
    request_id: str
    teacher: str


def parse_feedback(doc: dict, limits: Limits) -> list[FeedbackItem]:
    """``{"request_id", "teacher"}`` or ``{"feedback": [{"request_id", "teacher"}, ...]}``."""
    if "feedback" in doc:
        _only(doc, {"feedback"})
        items, base = doc["feedback"], "feedback"
        if not isinstance(items, list) or not items:
            raise _invalid("feedback", "'feedback' must be a non-empty list of objects")
        if len(items) > limits.max_batch:
            raise _invalid("feedback", f"at most {limits.max_batch} feedback items per request")
    else:
        items, base = [doc], None
    out = []
    for i, item in enumerate(items):
        pre = f"{base}[{i}]." if base else ""
        if not isinstance(item, dict):
            raise _invalid(f"{base}[{i}]", "each feedback item must be an object")
        extra = sorted(set(item) - {"request_id", "teacher"})
        if extra:
            raise _invalid(pre + extra[0], f"unknown field {extra[0]!r}; allowed: request_id, teacher")
        for key in ("request_id", "teacher"):
            v = item.get(key)
            if not isinstance(v, str) or not v or len(v) > 1000:
                raise _invalid(pre + key, f"{pre + key!r} must be a non-empty string (at most "
                                          f"1,000 characters); found {v!r:.40}")
        out.append(FeedbackItem(item["request_id"], item["teacher"]))
    return out
