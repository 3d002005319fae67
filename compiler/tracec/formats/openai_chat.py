"""``openai-chat``: Chat Completions logs, the last user message in, the assistant reply out.

Two shapes are accepted, per line:

- a request/response pair: ``{"request": {"messages": [...]}, "response": {"choices":
  [{"message": {"role": "assistant", "content": ...}}]}}`` (``request.body`` and
  ``response.body`` are looked through too, as proxies log them);
- a conversation: ``{"messages": [..., {"role": "assistant", "content": ...}]}`` whose last
  message is the assistant's reply (the fine-tuning file shape).

Skipped (counted): a call that failed (``error`` set, ``response`` null, HTTP status >= 400, a
conversation with no final assistant message) and a reply with no text (tool calls, refusals).
"""

from __future__ import annotations

from typing import Any, Union

from tracec.formats.base import FormatError, Rows, Skip, View, get, kind, view
from tracec.formats.messages import ASSISTANT, last_user, reply, role

NAME = "openai-chat"
FAILED = "failed call (error or no response)"
NO_TEXT = "assistant reply without text (tool call or refusal)"


def sniff(obj: dict) -> bool:
    return "messages" in obj or ("request" in obj and "response" in obj)


def completion(response: Any, where: str) -> Union[str, Skip]:
    """The first choice's text from a Chat Completions response object."""
    if isinstance(response, dict) and isinstance(response.get("body"), dict):
        response, where = response["body"], f"{where}body."
    if not isinstance(response, dict):
        raise FormatError(where.rstrip("."), f"expected a chat completion object, found {kind(response)}")
    if response.get("error") is not None:
        return Skip(FAILED)
    choices = get(response, "choices", list, where)
    if not choices:
        return Skip(FAILED)
    value = reply(get(choices[0], "message", dict, f"{where}choices.0."), f"{where}choices.0.message")
    return Skip(NO_TEXT) if not value else value


def rows(obj: dict) -> Rows:
    if "messages" in obj and "request" not in obj:
        messages = get(obj, "messages", list, "")
        if not messages or role(messages[-1]) not in ASSISTANT:
            yield Skip(FAILED)
            return
        value = reply(messages[-1], f"messages.{len(messages) - 1}")
        yield Skip(NO_TEXT) if not value else _view(obj, last_user(messages[:-1], "messages"), value)
        return
    if obj.get("error") is not None or obj.get("response") is None:
        yield Skip(FAILED)
        return
    status = obj.get("status_code", obj.get("status"))
    if isinstance(status, int) and status >= 400:
        yield Skip(FAILED)
        return
    request = get(obj, "request", dict, "")
    if isinstance(request.get("body"), dict):
        messages = get(request["body"], "messages", list, "request.body.")
        where = "request.body.messages"
    else:
        messages, where = get(request, "messages", list, "request."), "request.messages"
    value = completion(obj["response"], "response.")
    yield value if isinstance(value, Skip) else _view(obj, last_user(messages, where), value)


def _view(obj: dict, text: str, teacher: str) -> View:
    response = obj.get("response") if isinstance(obj.get("response"), dict) else {}
    return view(text, teacher, obj, id=obj.get("id", response.get("id")),
                timestamp=obj.get("timestamp"), label=obj.get("label"))
