"""``openai-batch``: an OpenAI Batch API input file joined with its output file on ``custom_id``.

Input lines: ``{"custom_id": ..., "method": "POST", "url": "/v1/chat/completions", "body":
{"messages": [...]}}`` — the last user message is the input.  Output lines: ``{"custom_id": ...,
"response": {"status_code": 200, "body": {"choices": [{"message": {...}}]}}, "error": null}``
— the first choice's text is the teacher.  Rows come in the input file's order.

Skipped (counted): requests whose result failed (``error`` set, status >= 400), requests with
no result in the output files (expired, cancelled), and results whose request is not in the input.
A ``custom_id`` twice in the input, or twice among the results, is an error.
"""

from __future__ import annotations

from typing import Any, Iterable

from tracec.formats.base import FormatError, Rows, Skip, get, view
from tracec.formats.messages import last_user
from tracec.formats.openai_chat import FAILED, completion

NAME = "openai-batch"
NO_RESULT = "batch request without a result (expired or cancelled)"
ORPHAN = "batch result without its request in the input file"


def sniff(obj: dict) -> bool:
    return "custom_id" in obj


def is_output(obj: dict) -> bool:
    return "custom_id" in obj and "body" not in obj and ("response" in obj or "error" in obj)


class Join:
    """The results by ``custom_id``; ``rows`` pairs each input line with its result."""

    def __init__(self, results: Iterable[tuple[str, int, Any]]):
        self.results: dict[str, Any] = {}
        self.seen: set[str] = set()
        where: dict[str, str] = {}
        for name, lineno, obj in results:
            if not is_output(obj):
                raise _at(name, lineno, FormatError(None, "expected an OpenAI Batch output line "
                          "(custom_id and response or error), found " + _keys(obj)))
            cid = _custom_id(obj, name, lineno)
            if cid in self.results:
                raise _at(name, lineno, FormatError("custom_id", f"expected each custom_id once among "
                          f"the results, found {cid!r} again (first at {where[cid]})"))
            self.results[cid], where[cid] = obj, f"{name}:{lineno}"

    def rows(self, obj: dict) -> Rows:
        if is_output(obj):
            raise FormatError(None, "expected an OpenAI Batch input line (custom_id and body), found "
                                    "a result line: pass the input file as TRACES and the output "
                                    "file with --batch-output")
        cid = get(obj, "custom_id", str, "")
        if cid in self.seen:
            raise FormatError("custom_id", f"expected each custom_id once in the input file, found "
                                           f"{cid!r} again")
        self.seen.add(cid)
        messages = get(get(obj, "body", dict, ""), "messages", list, "body.")
        text = last_user(messages, "body.messages")
        result = self.results.get(cid)
        if result is None:
            yield Skip(NO_RESULT)
            return
        if result.get("error") is not None or not isinstance(result.get("response"), dict):
            yield Skip(FAILED)
            return
        status = result["response"].get("status_code")
        if isinstance(status, int) and status >= 400:
            yield Skip(FAILED)
            return
        teacher = completion(result["response"], "response.")
        if isinstance(teacher, Skip):
            yield teacher
            return
        yield view(text, teacher, {"request": obj, "response": result}, id=cid)

    def orphans(self) -> int:
        return len(set(self.results) - self.seen)


def _custom_id(obj: dict, name: str, lineno: int) -> str:
    try:
        return get(obj, "custom_id", str, "")
    except FormatError as e:
        raise _at(name, lineno, e) from None


def _keys(obj: Any) -> str:
    return f"the keys {', '.join(map(repr, sorted(obj)))}" if isinstance(obj, dict) and obj else "no keys"


class LocatedFormatError(FormatError):
    """A FormatError in another file than the one being read (the batch output file)."""

    def __init__(self, path: str, line: int, error: FormatError):
        self.path, self.line = path, line
        super().__init__(error.field, error.message)


def _at(name: str, lineno: int, error: FormatError) -> LocatedFormatError:
    return LocatedFormatError(name, lineno, error)
