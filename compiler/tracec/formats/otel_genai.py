"""``otel-genai``: OpenTelemetry spans as the OTLP/JSON file exporter writes them.

One line is ``{"resourceSpans": [{"scopeSpans": [{"spans": [...]}]}]}``; every span is a
candidate row (so one line may give several).  Attributes are OTLP ``[{"key": ...,
"value": {"stringValue" | "intValue" | "doubleValue" | "boolValue" | "arrayValue" |
"kvlistValue": ...}}]``.  The messages are read from, in this order:

- ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (current semantic conventions: JSON
  lists of ``{"role", "parts": [{"type": "text", "content"}]}``);
- ``gen_ai.prompt`` / ``gen_ai.completion`` (older: a JSON list of ``{"role", "content"}`` or
  plain text);
- ``gen_ai.prompt.N.content`` / ``gen_ai.completion.N.content`` (older, indexed, with
  ``.role`` beside them).

Skipped (counted): spans with no GenAI messages (HTTP, database and other non-LLM spans),
failed calls (status ``ERROR`` or an ``error.type`` attribute), and lines of logs or metrics
(``resourceLogs``, ``resourceMetrics``) when the exporter shares one file.
"""

from __future__ import annotations

from typing import Any

from tracec.formats.base import FormatError, Rows, Skip, get, kind, maybe_json, view
from tracec.formats.messages import ASSISTANT, last_user, reply, role

NAME = "otel-genai"
NOT_LLM = "span without GenAI messages (not an LLM call)"
FAILED = "failed call (span status ERROR)"
NO_TEXT = "LLM span without a text reply"
NOT_SPANS = "OTLP logs or metrics line (not spans)"


def sniff(obj: dict) -> bool:
    return "resourceSpans" in obj


def any_value(value: Any) -> Any:
    """An OTLP/JSON AnyValue as a Python value (int64 arrive as strings in OTLP/JSON)."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return value["doubleValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return attributes((value["kvlistValue"] or {}).get("values", []), "kvlistValue")
    return None


def attributes(items: Any, where: str) -> dict:
    if not isinstance(items, list):
        raise FormatError(where, f"expected a list of {{key, value}} attributes, found {kind(items)}")
    out = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise FormatError(f"{where}.{i}", f"expected an attribute {{key, value}}, found {kind(item)}")
        try:
            out[item["key"]] = any_value(item.get("value"))
        except (TypeError, ValueError):
            raise FormatError(f"{where}.{i}", f"expected an OTLP AnyValue, found "
                                              f"{item.get('value')!r}") from None
    return out


def rows(obj: dict) -> Rows:
    if "resourceSpans" not in obj and ("resourceLogs" in obj or "resourceMetrics" in obj):
        yield Skip(NOT_SPANS)
        return
    for r, resource in enumerate(get(obj, "resourceSpans", list, "")):
        for s, scope in enumerate(get(resource, "scopeSpans", list, f"resourceSpans.{r}.",
                                      required=False) or []):
            where = f"resourceSpans.{r}.scopeSpans.{s}."
            for k, span in enumerate(get(scope, "spans", list, where, required=False) or []):
                yield _span(span, f"{where}spans.{k}")


def _span(span: Any, where: str):
    if not isinstance(span, dict):
        raise FormatError(where, f"expected a span object, found {kind(span)}")
    attrs = attributes(span.get("attributes") or [], f"{where}.attributes")
    prompt, answer = _messages(attrs, where)
    if prompt is None and answer is None:
        return Skip(NOT_LLM)
    status = span.get("status") or {}
    if status.get("code") in (2, "STATUS_CODE_ERROR") or "error.type" in attrs:
        return Skip(FAILED)
    if prompt is None or answer is None:
        return Skip(NO_TEXT)
    text = prompt if isinstance(prompt, str) else last_user(prompt, f"{where}.input")
    teacher = answer if isinstance(answer, str) else _reply(answer, where)
    if not teacher:
        return Skip(NO_TEXT)
    record = {**span, "attributes": attrs}
    return view(text, teacher.strip(), record, id=span.get("spanId"),
                timestamp=str(span["startTimeUnixNano"]) if "startTimeUnixNano" in span else None)


def _messages(attrs: dict, where: str):
    """(prompt, answer): each a message list or plain text, or None when the span has none."""
    for inp, out in (("gen_ai.input.messages", "gen_ai.output.messages"),
                     ("gen_ai.prompt", "gen_ai.completion")):
        if inp in attrs or out in attrs:
            return _decode(attrs.get(inp), f"{where}.{inp}"), _decode(attrs.get(out), f"{where}.{out}")
    return _indexed(attrs, "gen_ai.prompt"), _indexed(attrs, "gen_ai.completion")


def _decode(value: Any, where: str) -> Any:
    if isinstance(value, str):
        parsed = maybe_json(value)
        if parsed is value and value.strip()[:1] in ("[", "{"):
            raise FormatError(where, "expected a JSON list of messages, found malformed JSON")
        return parsed if isinstance(parsed, list) else value if parsed is value else [parsed]
    return value


def _indexed(attrs: dict, prefix: str):
    """``prefix.N.role`` / ``prefix.N.content`` attributes as a message list (None if absent)."""
    found = {}
    for key, value in attrs.items():
        parts = key[len(prefix) + 1:].split(".") if key.startswith(prefix + ".") else []
        if len(parts) == 2 and parts[0].isdigit():
            found.setdefault(int(parts[0]), {})[parts[1]] = value
    return [found[i] for i in sorted(found)] or None


def _reply(messages: Any, where: str):
    if not isinstance(messages, list):
        raise FormatError(f"{where}.output", f"expected a list of messages, found {kind(messages)}")
    for i, m in enumerate(messages):
        if role(m) in ASSISTANT or (isinstance(m, dict) and "role" not in m):
            return reply(m, f"{where}.output.{i}")
    return None

