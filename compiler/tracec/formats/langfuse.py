"""``langfuse``: Langfuse observations (one exported observation object per line).

A row is an observation of ``"type": "GENERATION"``: ``input`` is a message list (the last
user message is the input), ``{"messages": [...]}`` or plain text; ``output`` is an assistant
message ``{"role": "assistant", "content": ...}``, a chat completion, or plain text.

Skipped (counted): observations of other types (``SPAN``, ``EVENT``, ...), and failed
generations (``level`` ``ERROR`` or no ``output``).
"""

from __future__ import annotations

from typing import Any

from tracec.formats.base import FormatError, Rows, Skip, kind, view
from tracec.formats.messages import last_user, reply
from tracec.formats.openai_chat import completion

NAME = "langfuse"
NOT_LLM = "observation that is not a GENERATION"
FAILED = "failed generation (level ERROR or no output)"
NO_TEXT = "generation without a text output"


def sniff(obj: dict) -> bool:
    return "traceId" in obj and "type" in obj and ("input" in obj or "output" in obj)


def prompt_text(value: Any, where: str) -> str:
    """Plain text, a message list, or an object holding ``messages`` (or a ``prompt`` string)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "messages" in value:
        return last_user(value["messages"], f"{where}.messages")
    if isinstance(value, dict) and isinstance(value.get("prompt"), str):
        return value["prompt"]
    if isinstance(value, list):
        return last_user(value, where)
    raise FormatError(where, f"expected text, a list of messages or {{\"messages\": [...]}}, "
                             f"found {kind(value)}")


def reply_text(value: Any, where: str) -> Any:
    """Plain text, an assistant message, or a chat completion (``choices``)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict) and "choices" in value:
        return completion(value, f"{where}.")
    if isinstance(value, dict):
        return reply(value, where)
    if isinstance(value, list) and value:
        return reply(value[-1], f"{where}.{len(value) - 1}")
    raise FormatError(where, f"expected text, an assistant message or a chat completion, "
                             f"found {kind(value)}")


def rows(obj: dict) -> Rows:
    if obj.get("type") != "GENERATION":
        yield Skip(NOT_LLM)
        return
    if obj.get("level") == "ERROR" or obj.get("output") is None:
        yield Skip(FAILED)
        return
    teacher = reply_text(obj["output"], "output")
    if isinstance(teacher, Skip) or not teacher:
        yield teacher if isinstance(teacher, Skip) else Skip(NO_TEXT)
        return
    yield view(prompt_text(obj.get("input"), "input"), teacher, obj, id=obj.get("id"),
               timestamp=obj.get("startTime"))
